#!/bin/bash
# On a CUDA machine, from the repository root: the GPU tests (tests/test_gpu.py) and the
# speed benchmark with prediction on the GPU, written to OUTDIR/gpu_tests.txt and
# OUTDIR/speed_cuda.md. Used on a lent GPU machine (README, Speed); needs the sample data in
# ../shared/data/shale-sem or gpu/shale-sem (copied there by hand and carried).
#
#   bash benchmarks/gpu_checks.sh OUTDIR [SIZES...]     # sizes of the streaming rows, MP
# PARTS picks the tables of speed.py (default: predict breakdown stream; stream needs zarr).
set -u
OUT=${1:?usage: gpu_checks.sh OUTDIR [SIZES...]}
shift
SIZES=${*:-1 16 64}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ ! -d ../shared/data/shale-sem ]; then
  mkdir -p ../shared/data && cp -r gpu/shale-sem ../shared/data/ || exit 1
fi
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu_tests.txt"
t0=$(date +%s)
if $PY -c "import pytest" 2>/dev/null; then
  $PY -m pytest tests/test_gpu.py -p no:cacheprovider -q -rs 2>&1 | tail -15 | tee -a "$OUT/gpu_tests.txt"
else  # no pytest there: call the test functions with the fixtures they use
  (cd tests && $PY - <<'EOF'
import builtins, inspect, io, sys, tempfile, traceback, types
from pathlib import Path

class _Mark:  # pytest.mark.x, pytest.mark.x(...), pytest.fixture(...): markers do nothing here
    def __getattr__(self, name):
        return lambda *a, **k: a[0] if len(a) == 1 and callable(a[0]) and not k else (lambda f: f)

class _Approx:
    def __init__(self, v, rel=None, abs=None):
        self.v, self.tol = v, abs if abs is not None else (rel or 1e-6) * builtins.abs(v)
    def __eq__(self, other):
        return builtins.abs(other - self.v) <= self.tol

shim = types.ModuleType("pytest")
shim.mark, shim.approx = _Mark(), _Approx
shim.fixture = lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f: f)
sys.modules["pytest"] = shim
import conftest, test_gpu

class Capsys:  # pytest's capsys as the tests use it: what was printed since the last call
    def __init__(self):
        self.real, sys.stdout = sys.stdout, io.StringIO()
    def readouterr(self):
        out = sys.stdout.getvalue()
        sys.stdout.seek(0), sys.stdout.truncate()
        return type("R", (), {"out": out, "err": ""})()

pair = (conftest.SHARED / "test" / "images" / "1.tif", conftest.SHARED / "test" / "labels" / "1.tif")
for name, fn in inspect.getmembers(test_gpu, inspect.isfunction):
    if name.startswith("test_"):
        cap = Capsys()
        kw = {"test_pair": pair, "tmp_path": Path(tempfile.mkdtemp()), "capsys": cap}
        try:
            fn(**{k: v for k, v in kw.items() if k in inspect.signature(fn).parameters})
            result = "PASSED"
        except Exception:
            result = "FAILED\n" + traceback.format_exc()
        sys.stdout = cap.real
        print(result, name)
EOF
  ) 2>&1 | tail -30 | tee -a "$OUT/gpu_tests.txt"
fi
echo "tests took $(( $(date +%s) - t0 )) s" | tee -a "$OUT/gpu_tests.txt"
$PY benchmarks/speed.py --device cuda --parts ${PARTS:-predict breakdown stream} --threads "$(nproc)" --sizes $SIZES \
  2>&1 | tee "$OUT/speed_cuda.md"
echo "checks took $(( $(date +%s) - t0 )) s"

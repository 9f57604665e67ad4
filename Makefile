# The README's commands.  `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of this release lies on the development machines' disk; elsewhere
# pip takes it from the normal index.  Installed first so that nothing pulls a
# newer (CUDA, several GB) build through an unpinned dependency.
TORCH ?= torch==2.13.0
PIP_QUIET := 2> >(grep -v "^WARNING: Location" >&2)
DEMO_OUT ?= demo-output

.PHONY: setup demo test lint napari screenshots benchmark clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)" $(PIP_QUIET)
	$(PY) -m pip install -q -e ".[qt,testing]" $(PIP_QUIET)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/rockseg predict src/napari_rockseg/data/shale_test.tif --out $(DEMO_OUT)
	@echo
	@echo "Per-class IoU against the sample's ground truth:"
	$(VENV)/bin/rockseg evaluate $(DEMO_OUT)/shale_test_labels.tif src/napari_rockseg/data/shale_test_labels.tif
	@echo
	@echo "Outputs (labels TIFF, overlay PNG, JSON report) are in $(DEMO_OUT)/"

# ruff (the configured rules and line length, formatting), no import cycles, the size limits
lint: setup
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts
	$(PY) scripts/check_imports.py src
	$(PY) scripts/check_size.py src

test: setup lint
	bash scripts/ensure-display-packages.sh
	xvfb-run -a -s "-screen 0 1600x1200x24" $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

napari: setup
	$(VENV)/bin/napari -w napari-rockseg

screenshots: setup
	bash scripts/ensure-display-packages.sh
	xvfb-run -a -s "-screen 0 1600x1200x24" $(PY) scripts/screenshots.py

benchmark: setup
	$(PY) benchmarks/accuracy.py --default src/napari_rockseg/models/default.safetensors

clean:
	rm -rf $(VENV) $(DEMO_OUT) build src/*.egg-info

"""torch.compile (inductor) of the shipped bag's members on the CPU against eager mode (issue #30).

    python research/experiments/compile_cpu.py

The six U-Nets on a batch of two 320 x 448 tiles (the sample at the model's scale), bfloat16
autocast and channels-last as prediction runs them; mean of 3 after warm-up; the compile
time (with the first call) apart.  Run on the 2-core development CPU: eager 0.406 s,
compiled 0.370 s, compile + first call 29.8 s, logits up to 0.25 apart (bfloat16 kernels
fused differently).
"""
import time, torch, numpy as np
torch.set_num_threads(2)
from napari_rockseg.engine.models.bundle import load_model
m = load_model("src/napari_rockseg/models/default.safetensors")
x = torch.randn(2, 1, 320, 448).contiguous(memory_format=torch.channels_last)
nets = [n.to(memory_format=torch.channels_last).eval() for n in m.members]
def run(ns):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return [n(x) for n in ns]
for _ in range(2): run(nets)
t=time.perf_counter(); 
for _ in range(3): run(nets)
eager=(time.perf_counter()-t)/3
t=time.perf_counter(); comp=[torch.compile(n) for n in nets]; run(comp); ct=time.perf_counter()-t
for _ in range(2): run(comp)
t=time.perf_counter()
for _ in range(3): run(comp)
compiled=(time.perf_counter()-t)/3
a=run(nets); b=run(comp)
print(f"eager {eager:.3f} s, compiled {compiled:.3f} s, compile+first {ct:.1f} s, max diff {max((p-q).abs().max().item() for p,q in zip(a,b)):.3g}")

#!/usr/bin/env python3
"""Settings that make this CPU round float32 like another x86-64 CPU, checked to change numbers.

    python scripts/other_cpu.py   # prints the settings, e.g. MKL_ENABLE_INSTRUCTIONS=AVX2 ...
    env $(python scripts/other_cpu.py) python -m pytest notebooks

A seeded training gives other last digits on another CPU: MKL, oneDNN and PyTorch's own
vectorised kernels pick their code path (AVX-512, AVX2, SSE) from the processor, and each path
rounds float32 sums in its own order. Capping every library one instruction-set level below this
CPU's reproduces that: on an AVX-512 machine it rounds like an AVX2-only one (an AMD EPYC of the
Zen 2/3 generations), on an AVX2 machine like one without AVX2. The script trains a small seeded
autoencoder with and without the cap and exits 1 if the losses agree to the last bit: then the cap
changes nothing here and a test under it would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys

# One level below each instruction set: (ATen's ATEN_CPU_CAPABILITY, MKL's and oneDNN's names)
LEVELS = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
               "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
             "ONEDNN_MAX_CPU_ISA": "SSE41"},
}  # fmt: skip

PROBE = """
import torch, aelib
torch.set_num_threads(1)
data = aelib.load_dataset("mnist", source="embedded", verbose=False)
aelib.seed_everything(0)
model = aelib.Autoencoder()
x = data.x_train[aelib.evidence.shuffled(len(data.x_train), 512, seed=0)]
history = aelib.fit(model, x, num_epochs=2, verbose=0)
print(*(f"{v!r}" for v in history.train_loss))
"""


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            line = next(line for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def settings() -> dict[str, str]:
    """The cap one level below this CPU's best instruction set."""
    flags = cpu_flags()
    if "avx512f" in flags:
        return LEVELS["avx512"]
    if "avx2" in flags:
        return LEVELS["avx2"]
    raise SystemExit("other_cpu.py: this CPU has neither AVX-512 nor AVX2: no lower level to cap")


def losses(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in LEVELS["avx512"]}
    env.update(extra, AELIB_SEED_OFFSET="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"other_cpu.py: the probe training failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def main() -> int:
    cap = settings()
    plain, capped = losses({}), losses(cap)
    words = " ".join(f"{k}={v}" for k, v in cap.items())
    if plain == capped:
        print(
            f"other_cpu.py: {words} did not change a seeded training's losses ({plain}): "
            "it would not perturb rounding here",
            file=sys.stderr,
        )
        return 1
    print(f"other_cpu.py: losses {plain} become {capped} under the cap", file=sys.stderr)
    print(words)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Settings that make this CPU round float32 like another x86-64 CPU, checked to change numbers.

    python scripts/other_cpu.py   # prints the settings, e.g. MKL_ENABLE_INSTRUCTIONS=AVX2 ...
    env $(python scripts/other_cpu.py) python -m pytest notebooks

A seeded training gives other last digits on another CPU: MKL, oneDNN and PyTorch's own
vectorised kernels pick their code path (AVX-512, AVX2, SSE) from the processor, and each path
rounds float32 sums in its own order. Capping every library below this CPU's best instruction set
reproduces that. The script trains a small seeded autoencoder with and without a cap and keeps
the first cap, from the highest level down, that changes its losses: on an Intel AVX-512 Xeon the
AVX2 cap does (it rounds like an AVX2-only AMD EPYC); on an AMD EPYC with AVX-512 (Zen 4) MKL
does not take its AVX-512 code, the AVX2 cap changes nothing, and the SSE cap is kept.
It exits 1 if no cap changes the losses: a test under it would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys

# The caps, highest first: (the CPU flag a cap lies below, ATen's, MKL's and oneDNN's names)
CAPS = [
    ("avx512f", {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                 "ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("avx2", {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
              "ONEDNN_MAX_CPU_ISA": "SSE41"}),
]  # fmt: skip
NAMES = {name for _, cap in CAPS for name in cap}

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


def candidates() -> list[dict[str, str]]:
    """The caps below this CPU's best instruction set, highest first."""
    flags = cpu_flags()
    caps = [cap for flag, cap in CAPS if flag in flags]
    if not caps:
        raise SystemExit("other_cpu.py: this CPU has neither AVX-512 nor AVX2: nothing to cap")
    return caps


def losses(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in NAMES}
    env.update(extra, AELIB_SEED_OFFSET="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"other_cpu.py: the probe training failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def words(cap: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in cap.items())


def main() -> int:
    plain = losses({})
    for cap in candidates():
        capped = losses(cap)
        if capped != plain:
            print(f"other_cpu.py: losses {plain} become {capped} under the cap", file=sys.stderr)
            print(words(cap))
            return 0
        print(f"other_cpu.py: {words(cap)} changes nothing here; one level lower", file=sys.stderr)
    print(
        f"other_cpu.py: no cap changed a seeded training's losses ({plain}): "
        "it would not perturb rounding here",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

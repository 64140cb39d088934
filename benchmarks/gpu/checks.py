"""Determinism and device checks for the GPU run (stage c of benchmarks/gpu/run.sh).

(i)   aelib.generator(s) + aelib.utils.draw give the same numbers on the CPU and on DEVICE, the
      corruptions (GaussianNoise, MaskingNoise, SaltAndPepper) too, and aelib.fit visits the
      training images in the same order on both (and in the order epoch_order documents);
(ii)  the seed's 784-400-20 network, trained with aelib.fit on the embedded MNIST subset
      (4,000 train / 1,000 test), twice on DEVICE with the same seed: bit-identical losses and
      weights; against the same training on the CPU: every loss within a relative 1e-4.

Written for the NEW fit signature: fit trains where the model is (model.to(device) first),
verbose is 0/1/2, check_every/divergence_factor live in aelib.FitOptions.

Usage: python3 benchmarks/gpu/checks.py --device cuda [--epochs 2] [--json FILE]
Exit status: 0 when every check holds, 1 otherwise (every check runs either way).
"""

from __future__ import annotations

import argparse
import json
import time
import traceback

import torch

import aelib
from aelib.regularizers import GaussianNoise, MaskingNoise, SaltAndPepper
from aelib.train import epoch_order
from aelib.utils import draw

RESULTS: dict = {"checks": {}}


def record(name: str, ok: bool, **facts) -> None:
    RESULTS["checks"][name] = {"ok": bool(ok), **facts}
    shown = ", ".join(
        f"{k}={v}" for k, v in facts.items() if not isinstance(v, list) or len(v) <= 6
    )
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {shown}" if shown else ""), flush=True)


def check_draws(device: torch.device) -> None:
    """(i) a: the library's draws are made on the CPU, then moved: identical everywhere."""
    for seed in (0, 1, 42):
        for kind in ("normal", "uniform"):
            a = draw(kind, (1000, 784), aelib.generator(seed), "cpu")
            b = draw(kind, (1000, 784), aelib.generator(seed), device)
            record(
                f"draw {kind} seed {seed}",
                torch.equal(a, b.cpu()) and b.device.type == device.type,
                on=str(b.device),
            )
    x = torch.rand((512, 784), generator=aelib.generator(7))
    for corruption in (GaussianNoise(0.5), MaskingNoise(0.3), SaltAndPepper(0.2)):
        a = corruption(x, aelib.generator(3))
        b = corruption(x.to(device), aelib.generator(3)).cpu()
        diff = (a - b).abs().max().item()
        # elementwise arithmetic after the same draws: equal, or equal up to one rounding
        record(f"corruption {type(corruption).__name__}", diff <= 1e-6, max_abs_diff=diff)


def _coded(x: torch.Tensor) -> torch.Tensor:
    """A copy of uint8 images whose first two pixels hold the image's index (i // 256, i % 256)."""
    x = x.clone().reshape(len(x), -1)
    index = torch.arange(len(x))
    x[:, 0], x[:, 1] = (index // 256).to(torch.uint8), (index % 256).to(torch.uint8)
    return x.reshape(-1, 1, 28, 28)


def _visits(x_train: torch.Tensor, device: torch.device, epochs: int, seed: int) -> list[int]:
    """The indices of the training images, in the order fit feeds them to the model."""
    aelib.seed_everything(0)
    model = aelib.Autoencoder(784, 16, 4).to(device)
    seen: list[torch.Tensor] = []

    def hook(module, args):
        if module.training:
            xb = args[0].detach().float().cpu() * 255
            seen.append(xb[:, 0].round().long() * 256 + xb[:, 1].round().long())

    model.register_forward_pre_hook(hook)
    aelib.fit(model, x_train, None, num_epochs=epochs, batch_size=128, seed=seed, verbose=0)
    return torch.cat(seen).tolist()


def check_order(data: aelib.Dataset, device: torch.device, epochs: int) -> None:
    """(i) b: fit's epoch order on the CPU, on the device, and as epoch_order documents it."""
    x = _coded(data.x_train)
    n, seed = len(x), 42
    expected = torch.cat(
        [torch.randperm(n, generator=epoch_order(seed, e)) for e in range(1, epochs + 1)]
    ).tolist()
    on_cpu = _visits(x, torch.device("cpu"), epochs, seed)
    on_dev = _visits(x, device, epochs, seed)
    record("fit order: CPU == epoch_order", on_cpu == expected, images=len(on_cpu))
    record(f"fit order: {device.type} == CPU", on_dev == on_cpu, images=len(on_dev))


def _train(data: aelib.Dataset, device: torch.device, epochs: int, seed: int):
    aelib.seed_everything(seed)  # the initial weights: drawn on the CPU, then moved
    model = aelib.Autoencoder(784, 400, 20).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    history = aelib.fit(model, data.x_train, data.x_test, num_epochs=epochs, seed=seed, verbose=0)
    seconds = time.perf_counter() - start
    losses = [history.first_batch_loss, *history.train_loss, *history.test_loss]
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return losses, state, seconds


def check_losses(data: aelib.Dataset, device: torch.device, epochs: int, seed: int = 42) -> None:
    """(ii) two runs on the device: bit-identical; the device against the CPU: rel. 1e-4."""
    cpu, cpu_state, cpu_s = _train(data, torch.device("cpu"), epochs, seed)
    dev1, state1, dev1_s = _train(data, device, epochs, seed)
    dev2, state2, dev2_s = _train(data, device, epochs, seed)
    names = (
        ["first batch"]
        + [f"train epoch {e}" for e in range(1, epochs + 1)]
        + [f"test epoch {e}" for e in range(1, epochs + 1)]
    )
    print(f"{'loss':<15} {'cpu':>20} {device.type + ' run 1':>20} {device.type + ' run 2':>20}")
    for name, c, a, b in zip(names, cpu, dev1, dev2):
        print(f"{name:<15} {c!r:>20} {a!r:>20} {b!r:>20}")
    print(f"seconds: cpu {cpu_s:.2f}, {device.type} {dev1_s:.2f} and {dev2_s:.2f}")
    same_weights = all(torch.equal(state1[k], state2[k]) for k in state1)
    record(
        f"{device.type} twice: bit-identical losses and weights",
        dev1 == dev2 and same_weights,
        run1=dev1,
        run2=dev2,
        same_weights=same_weights,
    )
    rel = max(abs(a - c) / abs(c) for a, c in zip(dev1, cpu))
    weight_diff = max((state1[k] - cpu_state[k]).abs().max().item() for k in state1)
    record(
        f"{device.type} vs CPU: losses within relative 1e-4",
        rel < 1e-4,
        max_rel_diff=f"{rel:.3e}",
        max_abs_weight_diff=f"{weight_diff:.3e}",
        cpu=cpu,
        device=dev1,
        seconds={"cpu": cpu_s, "device": [dev1_s, dev2_s]},
    )


def check_amp(data: aelib.Dataset, device: torch.device, epochs: int, seed: int = 42) -> None:
    """Not a pass/fail claim: mixed precision's losses next to float32's, for the record."""
    aelib.seed_everything(seed)
    model = aelib.Autoencoder(784, 400, 20).to(device)
    history = aelib.fit(
        model,
        data.x_train,
        data.x_test,
        num_epochs=epochs,
        seed=seed,
        verbose=0,
        options=aelib.FitOptions(amp=True),
    )
    record(
        f"{device.type} amp=True trains (finite losses)",
        all(v == v and abs(v) < float("inf") for v in history.test_loss),
        train=[round(v, 4) for v in history.train_loss],
        test=[round(v, 4) for v in history.test_loss],
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = aelib.pick_device(args.device)
    RESULTS.update(
        torch=torch.__version__,
        device=str(device),
        device_name=aelib.utils.device_name(device),
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
    )
    print(f"torch {torch.__version__} on {RESULTS['device_name']} ({device})", flush=True)
    data = aelib.load_dataset("mnist", source="embedded")
    for name, fn in (
        ("draws", lambda: check_draws(device)),
        ("order", lambda: check_order(data, device, args.epochs)),
        ("losses", lambda: check_losses(data, device, args.epochs)),
        ("amp", lambda: check_amp(data, device, args.epochs)),
    ):
        print(f"--- {name}", flush=True)
        try:
            fn()
        except Exception:  # a broken check is a failed check; the others still run
            traceback.print_exc()
            record(f"{name} (raised)", False)
    failed = [k for k, v in RESULTS["checks"].items() if not v["ok"]]
    print(f"checks: {len(RESULTS['checks']) - len(failed)} passed, {len(failed)} failed")
    for name in failed:
        print(f"  FAILED: {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(RESULTS, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

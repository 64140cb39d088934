"""``python -m aelib train``: the seed's experiment, reproduced and recorded.

By default it runs exactly the seed's configuration (MNIST, 784-400-20, batch 128, Adam 1e-3,
10 epochs, seed 42), prints the seed's log lines and writes to ``--out``: per-epoch
reconstruction grids, ``reconstructions.png``, ``loss_curve.png``, ``metrics.json`` and
``checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib
import torch
from torchvision.utils import save_image

from . import __version__
from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from .data import DATASETS, SOURCES, DataUnavailableError, IdxFormatError, load_dataset, to_float
from .models import Autoencoder, count_parameters
from .train import History, NonFiniteLossError, fit, make_optimizer
from .utils import DEVICES, DeviceUnavailableError, device_name, pick_device, seed_everything

SEED_DEFAULTS = {"epochs": 10, "batch_size": 128, "lr": 1e-3, "hidden_dim": 400, "latent_dim": 20, "seed": 42}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aelib", description="Train the book's MNIST autoencoder.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the seed's autoencoder and write results to --out",
                       description="Train the seed's 784-400-20 autoencoder. Defaults reproduce the seed run.")
    t.add_argument("--dataset", choices=DATASETS, default="mnist")
    t.add_argument("--data-source", choices=SOURCES, default="auto",
                   help="where the images come from (default: the first that works, see README)")
    t.add_argument("--data-dir", default=None, help="folder with <DIR>/MNIST/raw/*-ubyte[.gz] (default $AELIB_DATA_DIR)")
    t.add_argument("--epochs", type=_non_negative_int, default=None,
                   help=f"epochs to train in total (default {SEED_DEFAULTS['epochs']})")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="default 128")
    t.add_argument("--lr", type=_positive_float, default=None, help="Adam's learning rate, default 1e-3")
    t.add_argument("--hidden-dim", type=_positive_int, default=None, help="default 400")
    t.add_argument("--latent-dim", type=_positive_int, default=None, help="default 20")
    t.add_argument("--seed", type=_non_negative_int, default=None, help="default 42")
    t.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    t.add_argument("--out", default="results", help="output folder (default results/)")
    t.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue the run saved in this checkpoint up to --epochs in total")
    t.add_argument("--amp", action="store_true", help="mixed precision forward passes (losses stay float32)")
    t.add_argument("--compile", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                   help="torch.compile the model in this mode (reduce-overhead uses CUDA graphs on a GPU)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _resolve(args: argparse.Namespace, saved: dict | None) -> dict:
    """Settings of the run: the flags, the checkpoint's when resuming, else the seed's defaults."""
    settings = {}
    for key, default in SEED_DEFAULTS.items():
        given = getattr(args, key)
        if saved is not None and key in saved and key != "epochs":
            if given is not None and given != saved[key]:
                raise CheckpointError(f"--{key.replace('_', '-')} {given} differs from the checkpoint's "
                                      f"{saved[key]}; drop the flag to resume, or start a new run")
            settings[key] = saved[key]
        else:
            settings[key] = default if given is None else given
    return settings


def _distributed(device_flag: str) -> tuple[int, int, torch.device]:
    """Join the process group when started by ``torchrun``; return (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_flag)
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def train_command(args: argparse.Namespace) -> dict | None:
    """Run ``train`` with parsed arguments; return the metrics written to ``metrics.json``.

    Under ``torchrun --nproc_per_node=N -m aelib train ...`` every process trains its shard of each
    batch; only rank 0 prints, saves checkpoints and writes figures and metrics (it returns None
    on the other ranks).
    """
    rank, world, device = _distributed(args.device)
    try:
        return _train(args, rank, world, device)
    finally:
        if world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()


def _train(args: argparse.Namespace, rank: int, world: int, device: torch.device) -> dict | None:
    writer = rank == 0
    state = load_checkpoint(args.resume) if args.resume else None
    cfg = _resolve(args, state["train_config"] if state else None)
    if state:
        for key in ("dataset", "data_source"):
            if getattr(args, key) != state["train_config"].get(key, getattr(args, key)):
                raise CheckpointError(f"--{key.replace('_', '-')} {getattr(args, key)} differs from the "
                                      f"checkpoint's {state['train_config'][key]}")
    out = Path(args.out)
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset, source=args.data_source, root=args.data_dir, verbose=writer)
    seed_everything(cfg["seed"])
    model = Autoencoder(hidden_dim=cfg["hidden_dim"], latent_dim=cfg["latent_dim"]).to(device)
    optimizer = make_optimizer(model, cfg["lr"])
    history = History()
    if state:
        load_model_state(model, state)
        optimizer.load_state_dict(state["optimizer_state"])
        history = History.from_dict(state["history"])
        if writer:
            print(f"Resuming from {args.resume} after epoch {len(history)}")
    train_config = {**cfg, "dataset": args.dataset, "data_source": args.data_source}
    fixed = to_float(data.x_test[:8])

    def after_epoch(epoch: int, hist: History) -> None:
        # the seed's per-epoch picture, without its second de-normalisation: reconstruct() is in [0, 1]
        pair = torch.cat([fixed, model.reconstruct(fixed.to(device)).cpu()]).reshape(-1, 1, 28, 28)
        save_image(pair, out / f"reconstruction_{epoch}.png", nrow=8)
        save_checkpoint(out / "checkpoint.pt", model, optimizer, hist, train_config)

    start = time.perf_counter()
    fit(model, data.x_train, data.x_test, num_epochs=cfg["epochs"], batch_size=cfg["batch_size"],
        seed=cfg["seed"], optimizer=optimizer, history=history, amp=args.amp, compile_mode=args.compile,
        progress=not args.quiet, on_epoch_end=after_epoch if writer else None)
    wall = time.perf_counter() - start
    if not writer:
        return None
    if len(history) == 0:
        save_checkpoint(out / "checkpoint.pt", model, optimizer, history, train_config)
    _write_figures(model, data, history, out)
    metrics = _metrics(data, cfg, history, wall, device, model)
    metrics.update(world_size=world, amp=args.amp, compile=args.compile)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"Wrote {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))} to {out}/")
    return metrics


def _write_figures(model: Autoencoder, data, history: History, out: Path) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import loss_curves, reconstruction_grid
    for fig in (reconstruction_grid(model, data.x_test, n=8, path=out / "reconstructions.png"),
                loss_curves(history, path=out / "loss_curve.png")):
        plt.close(fig)


def _metrics(data, cfg: dict, history: History, wall: float, device, model) -> dict:
    import numpy
    import torchvision
    return {
        "data": data.record(), "config": cfg, "parameters": count_parameters(model),
        "train_loss": history.train_loss, "test_loss": history.test_loss,
        "final_test_loss": history.test_loss[-1] if history.test_loss else None,
        "epoch_seconds": history.epoch_seconds, "wall_seconds": wall,
        "device": str(device), "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "versions": {"aelib": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "numpy": numpy.__version__},
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m aelib``; returns the exit code (2 for bad input, 1 for a failed run)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        train_command(args)
    except (ValueError, DeviceUnavailableError, CheckpointError, DataUnavailableError,
            IdxFormatError, FileNotFoundError) as err:
        parser.exit(2, f"{parser.prog} {args.command}: error: {err}\n")
    except NonFiniteLossError as err:
        parser.exit(1, f"{parser.prog} {args.command}: training failed: {err}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

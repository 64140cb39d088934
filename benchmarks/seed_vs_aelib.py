"""Time the seed's training pipeline against ``aelib.fit`` and against the pure compute floor.

All three train the seed's 784-400-20 autoencoder (batch 128, Adam 1e-3, seed 42) for the same
number of epochs on the same data, evaluating the test set after every epoch:

* seed:  the seed script's own pipeline: torchvision dataset with ``ToTensor`` + ``Normalize`` in a
         ``DataLoader``, a model ending in ``nn.Sigmoid``, ``F.binary_cross_entropy`` summed,
         default Adam, ``loss.item()`` every batch;
* aelib: ``aelib.fit`` (resident tensors, seeded permutation, fused Adam, BCE from logits);
* floor: the same forward + backward + Adam steps and the same test forward passes on
         batches already sliced in memory, with nothing else: no shuffling, no progress bar,
         no bookkeeping.

Usage: ``python benchmarks/seed_vs_aelib.py [--epochs 3] [--dataset fashion-mnist] [--json FILE]``.
Full Fashion-MNIST (60k/10k) is the default: it is the one full-size set available offline here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

import aelib

INPUT_DIM, HIDDEN_DIM, LATENT_DIM, BATCH_SIZE, LR, SEED = 784, 400, 20, 128, 1e-3, 42
CPU = torch.device("cpu")


class SeedAutoencoder(nn.Module):
    """The seed script's model, verbatim."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(INPUT_DIM, HIDDEN_DIM), nn.ReLU(), nn.Linear(HIDDEN_DIM, LATENT_DIM)
        )
        self.decoder = nn.Sequential(
            nn.Linear(LATENT_DIM, HIDDEN_DIM),
            nn.ReLU(),
            nn.Linear(HIDDEN_DIM, INPUT_DIM),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x.view(-1, INPUT_DIM)))


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as an uncompressed IDX file (the format torchvision's MNIST reads)."""
    array = array.to(torch.uint8).contiguous()
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(
        f">{array.dim()}I", *array.shape
    )
    path.write_bytes(header + array.numpy().tobytes())


def torchvision_datasets(data: aelib.Dataset, workdir: Path):
    """The same images as torchvision datasets, read from raw IDX files as the seed reads them."""
    from torchvision import datasets, transforms

    cls = datasets.FashionMNIST if data.name == "fashion-mnist" else datasets.MNIST
    raw = workdir / cls.__name__ / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", data.x_train.squeeze(1))
    write_idx(raw / "train-labels-idx1-ubyte", data.y_train)
    write_idx(raw / "t10k-images-idx3-ubyte", data.x_test.squeeze(1))
    write_idx(raw / "t10k-labels-idx1-ubyte", data.y_test)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    return (
        cls(root=str(workdir), train=True, transform=transform, download=False),
        cls(root=str(workdir), train=False, transform=transform, download=False),
    )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def run_seed(
    train_dataset,
    test_dataset,
    epochs: int,
    seed: int = SEED,
    device: torch.device = CPU,
) -> tuple[float, float]:
    """The seed's train() and test() loops; returns (final test loss, seconds)."""
    torch.manual_seed(seed)
    train_loader = DataLoader(train_dataset, batch_size=BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=BATCH_SIZE, shuffle=False)
    model = SeedAutoencoder().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def loss_function(recon_x, x):
        x = (x.view(-1, INPUT_DIM) + 1) / 2
        return F.binary_cross_entropy(recon_x, x, reduction="sum")

    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        train_loss = 0.0
        for data, _ in train_loader:
            data = data.to(device)
            optimizer.zero_grad()
            loss = loss_function(model(data), data)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data, _ in test_loader:
                data = data.to(device)
                test_loss += loss_function(model(data), data).item()
        test_loss /= len(test_loader.dataset)  # .item() above already waited for the device
    return test_loss, time.perf_counter() - start


def run_loader_only(train_dataset, test_dataset, epochs: int) -> float:
    """Seconds for the seed's DataLoaders alone (PIL image, ToTensor, Normalize, collate)."""
    torch.manual_seed(SEED)
    train_loader = DataLoader(train_dataset, batch_size=BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=BATCH_SIZE, shuffle=False)
    start = time.perf_counter()
    for _ in range(epochs):
        for loader in (train_loader, test_loader):
            for _batch in loader:
                pass
    return time.perf_counter() - start


def run_aelib(
    data: aelib.Dataset, epochs: int, seed: int = SEED, device: torch.device = CPU
) -> tuple[float, float]:
    aelib.seed_everything(seed)
    model = aelib.Autoencoder(INPUT_DIM, HIDDEN_DIM, LATENT_DIM)
    start = time.perf_counter()
    history = aelib.fit(
        model.to(device),
        data.x_train,
        data.x_test,
        num_epochs=epochs,
        batch_size=BATCH_SIZE,
        lr=LR,
        seed=seed,
        verbose=0,
    )  # ends in .item(): synchronous
    return history.test_loss[-1], time.perf_counter() - start


def run_floor(data: aelib.Dataset, epochs: int, device: torch.device = CPU) -> float:
    """Only the arithmetic: the same steps and test forward passes on batches already in memory."""
    aelib.seed_everything(SEED)
    model = aelib.Autoencoder(INPUT_DIM, HIDDEN_DIM, LATENT_DIM).to(device)
    optimizer = aelib.make_optimizer(model, LR)
    x = aelib.to_float(data.x_train).to(device)
    batches = list(x.split(BATCH_SIZE))
    test_batches = list(aelib.to_float(data.x_test).to(device).split(4096))
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for xb in batches:
            optimizer.zero_grad(set_to_none=True)
            aelib.bce_loss(model(xb), xb).backward()
            optimizer.step()
        with torch.inference_mode():
            for xb in test_batches:
                aelib.bce_loss(model(xb), xb)
    synchronize(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="fashion-mnist", choices=aelib.data.DATASETS)
    parser.add_argument("--data-source", default="auto", choices=aelib.data.SOURCES)
    parser.add_argument("--device", default="cpu", help="cpu (the default), cuda, mps or auto")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="run each pipeline this many times, alternating, with seeds 42, 43, ...; "
        "report the median time and the median and range of the final test loss",
    )
    parser.add_argument("--skip-seed", action="store_true", help="time only aelib and the floor")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--markdown",
        default=None,
        help="also write them as a Markdown table (the book includes it)",
    )
    args = parser.parse_args(argv)

    try:
        device = aelib.pick_device(args.device)
    except (ValueError, aelib.utils.DeviceUnavailableError) as err:
        parser.error(str(err))
    data = aelib.load_dataset(args.dataset, source=args.data_source)
    result = {
        "dataset": data.describe(),
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": aelib.utils.device_name(device),
        "torch": torch.__version__,
    }
    seeds = [SEED + i for i in range(max(1, args.repeats))]
    floor_times, runs = [], {"aelib": [], "seed": []}  # runs: (final test loss, seconds) per seed
    with tempfile.TemporaryDirectory() as tmp:
        train_ds, test_ds = (
            (None, None) if args.skip_seed else torchvision_datasets(data, Path(tmp))
        )
        for seed in seeds:
            floor_times.append(run_floor(data, args.epochs, device))
            runs["aelib"].append(run_aelib(data, args.epochs, seed, device))
            if not args.skip_seed:
                runs["seed"].append(run_seed(train_ds, test_ds, args.epochs, seed, device))
        if not args.skip_seed:
            result["seed_loader_seconds"] = run_loader_only(train_ds, test_ds, args.epochs)
    result["seeds"] = seeds
    result["floor_runs_seconds"], result["floor_seconds"] = (
        floor_times,
        statistics.median(floor_times),
    )
    for name, values in runs.items():
        if values:
            losses, times = (list(column) for column in zip(*values, strict=True))
            result[f"{name}_runs_seconds"], result[f"{name}_seconds"] = (
                times,
                statistics.median(times),
            )
            result[f"{name}_runs_test_loss"], result[f"{name}_test_loss"] = (
                losses,
                statistics.median(losses),
            )
    e = args.epochs
    print(
        f"{data.describe()}; {e} epochs on {result['device_name']}, "
        f"{result['threads']} CPU threads, torch {torch.__version__}"
    )
    print(f"{'pipeline':<8} {'s/epoch':>8} {'test loss':>10}")
    if "seed_seconds" in result:
        print(f"{'seed':<8} {result['seed_seconds'] / e:8.2f} {result['seed_test_loss']:10.2f}")
    print(f"{'aelib':<8} {result['aelib_seconds'] / e:8.2f} {result['aelib_test_loss']:10.2f}")
    print(f"{'floor':<8} {result['floor_seconds'] / e:8.2f} {'':>10}")
    if "seed_loader_seconds" in result:
        print(
            "the seed's DataLoaders alone take "
            f"{result['seed_loader_seconds'] / e:.2f} s per epoch"
        )
    if "seed_seconds" in result:
        result["speedup"] = result["seed_seconds"] / result["aelib_seconds"]
        result["loss_gap"] = result["aelib_test_loss"] - result["seed_test_loss"]
        print(
            f"aelib is {result['speedup']:.1f}x faster than the seed pipeline "
            f"(median test loss {result['loss_gap']:+.2f} from the seed's)"
        )
        for name in ("seed", "aelib"):
            losses = result[f"{name}_runs_test_loss"]
            print(
                f"  {name} final test losses over seeds {seeds}: "
                + ", ".join(f"{v:.2f}" for v in losses)
            )
    result["aelib_over_floor"] = result["aelib_seconds"] / result["floor_seconds"]
    print(f"aelib takes {result['aelib_over_floor']:.2f}x the compute floor")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(
            markdown_table(
                result,
                " ".join(
                    [
                        "python benchmarks/seed_vs_aelib.py",
                        *(sys.argv[1:] if argv is None else argv),
                    ]
                ),
            )
        )
    return result


def markdown_table(result: dict, command: str) -> str:
    """The figures as a Markdown table, with the command and machine that produced them."""
    e = result["epochs"]
    rows = [
        ("seed pipeline", result.get("seed_seconds"), result.get("seed_test_loss")),
        ("aelib.fit", result["aelib_seconds"], result["aelib_test_loss"]),
        ("compute floor", result["floor_seconds"], None),
        ("seed's DataLoaders alone", result.get("seed_loader_seconds"), None),
    ]
    table = [
        "| pipeline | seconds per epoch | × floor | final test loss |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds, loss in rows:
        if seconds is None:
            continue
        loss_text = f"{loss:.2f}" if loss is not None else "-"
        ratio = seconds / result["floor_seconds"]
        table.append(f"| {name} | {seconds / e:.2f} | {ratio:.2f} | {loss_text} |")
    seeds, notes = result["seeds"], []  # each note is a paragraph of its own
    where = (
        result["device_name"]
        if result["device"] == "cpu"
        else f"{result['device_name']} ({result['device']})"
    )
    notes.append(
        f"{result['dataset']}; {e} epochs on {where} with {result['threads']} CPU threads, "
        f"torch {result['torch']}. Times and losses are medians over {len(seeds)} runs with seeds "
        f"{', '.join(map(str, seeds))} (the pipelines alternate); the loader row is one run."
    )
    for name, label in (("seed", "the seed pipeline"), ("aelib", "aelib.fit")):
        if f"{name}_runs_test_loss" in result:
            values = result[f"{name}_runs_test_loss"]
            notes.append(
                f"Final test losses of {label}, one per seed: "
                f"{', '.join(f'{v:.2f}' for v in values)}."
            )
    notes.append(f"Produced by `{command}`.")
    return "\n".join(table) + "\n\n" + "\n\n".join(notes) + "\n"


if __name__ == "__main__":
    main()

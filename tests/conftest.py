"""Helpers and fixtures shared by the unit tests.

torch and aelib are imported inside the helpers, not here: pytest-xdist's controller loads this
file before it starts the workers, and an import here would delay them by seconds.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    import aelib


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (the format of the MNIST files)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def write_idx_folder(
    folder: Path, n_train: int = 12, n_test: int = 6, compress: bool = True
) -> dict:
    """Four small synthetic IDX files in torchvision's layout; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, array in arrays.items():
        write_idx(folder / stem, array, compress)
    return arrays


@pytest.fixture(scope="session")
def mnist():
    """The embedded real MNIST subset (4,000 train / 1,000 test), each split in a fixed random
    order: the files are sorted by class, and a test's ``x_test[:64]`` should be digits of every
    class, not 64 zeros."""
    import dataclasses

    import torch

    import aelib

    data = aelib.load_dataset("mnist", source="embedded", verbose=False)
    train = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))
    test = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(1))
    return dataclasses.replace(
        data,
        x_train=data.x_train[train],
        y_train=data.y_train[train],
        x_test=data.x_test[test],
        y_test=data.y_test[test],
    )


@pytest.fixture
def small(mnist):
    """512 training and 256 test images of the embedded subset, of every class."""
    return mnist.x_train[:512], mnist.x_test[:256]


def tiny_model(seed: int = 0, **kwargs) -> aelib.Autoencoder:
    import torch

    import aelib

    torch.manual_seed(seed)
    return aelib.Autoencoder(**{"hidden_dim": 64, "latent_dim": 8, **kwargs})


def fails(capsys, argv, code=2):
    """Run the CLI in this process; return its one line on stderr, checking the exit code."""
    from aelib import cli

    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]

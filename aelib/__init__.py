"""aelib: the small library behind the Autoencoder book.

Importing it only defines things: seeding, plotting styles and downloads are explicit calls. The
names below are loaded on first use (PEP 562), so ``import aelib`` takes no time and
``python -m aelib`` can install its Ctrl-C handler before torch is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Dataset": "data",
    "DataUnavailableError": "data",
    "IdxFormatError": "data",
    "load_dataset": "data",
    "read_idx": "data",
    "History": "history",
    "to_float": "images",
    "bce_loss": "losses",
    "gaussian_kl": "losses",
    "mse_loss": "losses",
    "negative_elbo": "losses",
    "Autoencoder": "models",
    "AutoencoderBase": "models",
    "ConvAutoencoder": "models",
    "LinearAutoencoder": "models",
    "VAEOutput": "models",
    "VariationalAutoencoder": "models",
    "count_parameters": "models",
    "FitOptions": "train",
    "LossDivergedError": "train",
    "NonFiniteLossError": "train",
    "evaluate": "train",
    "fit": "train",
    "make_optimizer": "train",
    "make_scaler": "train",
    "generator": "utils",
    "pick_device": "utils",
    "seed_everything": "utils",
    "seed_offset": "utils",
}
_SUBMODULES = (
    "analysis",
    "checkpoint",
    "classifier",
    "cli",
    "data",
    "diagrams",
    "distributed",
    "evidence",
    "explorer",
    "history",
    "hooks",
    "images",
    "inference",
    "interpolation",
    "losses",
    "masking",
    "metrics",
    "models",
    "plotting",
    "probes",
    "regularizers",
    "sparse",
    "toy",
    "train",
    "utils",
    "vae",
    "vq",
)

__all__ = [
    "Autoencoder",
    "AutoencoderBase",
    "ConvAutoencoder",
    "DataUnavailableError",
    "Dataset",
    "FitOptions",
    "History",
    "IdxFormatError",
    "LinearAutoencoder",
    "LossDivergedError",
    "NonFiniteLossError",
    "VAEOutput",
    "VariationalAutoencoder",
    "bce_loss",
    "count_parameters",
    "evaluate",
    "evidence",
    "fit",
    "gaussian_kl",
    "generator",
    "load_dataset",
    "make_optimizer",
    "make_scaler",
    "mse_loss",
    "negative_elbo",
    "pick_device",
    "read_idx",
    "regularizers",
    "seed_everything",
    "seed_offset",
    "to_float",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


if TYPE_CHECKING:  # what type checkers and editors see
    from . import evidence, regularizers
    from .data import Dataset, DataUnavailableError, IdxFormatError, load_dataset, read_idx
    from .history import History
    from .images import to_float
    from .losses import bce_loss, gaussian_kl, mse_loss, negative_elbo
    from .models import (
        Autoencoder,
        AutoencoderBase,
        ConvAutoencoder,
        LinearAutoencoder,
        VAEOutput,
        VariationalAutoencoder,
        count_parameters,
    )
    from .train import (
        FitOptions,
        LossDivergedError,
        NonFiniteLossError,
        evaluate,
        fit,
        make_optimizer,
        make_scaler,
    )
    from .utils import generator, pick_device, seed_everything, seed_offset

"""aelib: the small library behind the Autoencoder book.

Importing it only defines things: seeding, plotting styles and downloads are explicit calls.
"""

from . import evidence, regularizers
from .data import Dataset, DataUnavailableError, IdxFormatError, load_dataset, read_idx, to_float
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
    History,
    LossDivergedError,
    NonFiniteLossError,
    evaluate,
    fit,
    make_optimizer,
    make_scaler,
)
from .utils import generator, pick_device, seed_everything, seed_offset

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "AutoencoderBase",
    "ConvAutoencoder",
    "LinearAutoencoder",
    "Dataset",
    "DataUnavailableError",
    "History",
    "IdxFormatError",
    "LossDivergedError",
    "NonFiniteLossError",
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
    "VAEOutput",
    "VariationalAutoencoder",
]

"""Checkpoints: model, its configuration, optimizer state and history in one file, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .models import Autoencoder
from .train import History

FORMAT = "aelib-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file is not an aelib checkpoint, or does not fit the model it is loaded into."""


def save_checkpoint(path: str | os.PathLike, model: Autoencoder, optimizer: torch.optim.Optimizer | None,
                    history: History, train_config: dict | None = None) -> Path:
    """Write a checkpoint to a temporary file in the same folder, then rename it over ``path``.

    An interrupted save never leaves a half-written checkpoint behind.

    Args:
        path: where to write (for example ``results/checkpoint.pt``).
        model: an :class:`aelib.Autoencoder` (its ``config`` is stored to rebuild it).
        optimizer: its state is stored for ``--resume`` (may be ``None``).
        history: the losses so far.
        train_config: settings of the run (epochs, batch size, lr, seed, data), stored as given.
    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, "model_class": type(model).__name__,
             "model_config": dict(model.config), "model_state": model.state_dict(),
             "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
             "history": history.to_dict(), "train_config": dict(train_config or {})}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything else.

    Returns:
        A dict with ``model_config``, ``model_state``, ``optimizer_state``, ``history`` and
        ``train_config``.
    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not an aelib checkpoint, or of an unknown version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for files that are not its own
        raise CheckpointError(f"{path} is not an aelib checkpoint (torch.load failed: "
                              f"{type(err).__name__})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an aelib checkpoint (no '{FORMAT}' marker); "
                              "pass a file written by aelib's save_checkpoint or `python -m aelib train`")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; "
                              f"this aelib reads version {VERSION}")
    return state


def load_model_state(model: torch.nn.Module, state: dict) -> torch.nn.Module:
    """Load a checkpoint's weights into ``model``, explaining any architecture mismatch.

    Args:
        model: a module built with the checkpoint's architecture.
        state: what :func:`load_checkpoint` returned.
    Returns:
        ``model``, with the checkpoint's weights.
    Raises:
        CheckpointError: parameter names or shapes differ; the message lists them.
    """
    saved = state["model_state"]
    own = model.state_dict()
    problems = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                for k, v in saved.items() if k in own and own[k].shape != v.shape]
    problems += [f"{k}: only in the checkpoint" for k in saved.keys() - own.keys()]
    problems += [f"{k}: only in the model" for k in own.keys() - saved.keys()]
    if problems:
        raise CheckpointError(
            f"the checkpoint was saved from a different architecture ({state.get('model_config')}) "
            f"than this model ({getattr(model, 'config', type(model).__name__)}): "
            + "; ".join(sorted(problems)[:6]) + ". Build the model from the checkpoint with restore_model(state).")
    model.load_state_dict(saved)
    return model


def restore_model(state: dict) -> Autoencoder:
    """Rebuild the :class:`aelib.Autoencoder` stored in a checkpoint, weights included.

    Args:
        state: what :func:`load_checkpoint` returned.
    Returns:
        A new ``Autoencoder`` with the saved configuration and weights, on the CPU.
    Raises:
        CheckpointError: the checkpoint holds another kind of model.
    """
    if state.get("model_class") != "Autoencoder":
        raise CheckpointError(f"cannot rebuild a {state.get('model_class')!r}; only Autoencoder is supported")
    return load_model_state(Autoencoder(**state["model_config"]), state)

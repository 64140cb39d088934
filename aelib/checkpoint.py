"""Checkpoints: model, its configuration, optimizer state and history in one file.

A checkpoint is written to a temporary file in the same folder, flushed to disk (``fsync`` of the
file, then of the folder after the rename) and renamed over the old one, so a crash, a full disk
or a kill leaves either the old checkpoint or the new one, never a mixture. Its payload carries a
SHA-256 that :func:`load_checkpoint` checks, so flipped bytes are reported instead of loaded.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tempfile
from pathlib import Path

import torch

from .history import History
from .models import Autoencoder, ConvAutoencoder, LinearAutoencoder, VariationalAutoencoder

FORMAT = "aelib-checkpoint"
VERSION = 2
MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (Autoencoder, VariationalAutoencoder, ConvAutoencoder, LinearAutoencoder)
}
_TMP_SUFFIX = ".tmp"


def constructor_args(model: torch.nn.Module) -> dict:
    """The arguments that rebuild ``model``'s architecture, read off its attributes.

    Args:
        model: an instance of one of :data:`MODEL_CLASSES`.
    Returns:
        Keyword arguments for its class: its ``config`` where it keeps one; for
        :class:`aelib.LinearAutoencoder`, ``input_dim``, ``latent_dim`` and ``bias`` (its
        ``center`` is a buffer, restored with the weights).
    Raises:
        TypeError: a class :func:`restore_model` cannot rebuild.
    """
    name = type(model).__name__
    if MODEL_CLASSES.get(name) is not type(model):
        raise TypeError(f"save_checkpoint stores {', '.join(MODEL_CLASSES)} models, got {name}")
    if isinstance(model, LinearAutoencoder):
        return {
            "input_dim": model.input_dim,
            "latent_dim": model.latent_dim,
            "bias": model.encoder.bias is not None,
        }
    return dict(model.config)


class CheckpointError(ValueError):
    """A file is not an aelib checkpoint, is damaged, or does not fit the model given."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, no permission); the old one is intact."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_files(folder: str | os.PathLike, name: str = "checkpoint.pt") -> list[Path]:
    """Temporary files that an interrupted :func:`save_checkpoint` of ``name`` left in ``folder``.

    Only aelib's own: ``.NAME.XXXXXXXX.tmp`` with the 8 random characters of ``mkstemp``; a
    hidden ``.tmp`` file of anyone else does not match.

    Args:
        folder: an output folder.
        name: the checkpoint's file name.
    Returns:
        Their paths, sorted (none when the folder does not exist).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    own = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}" + re.escape(_TMP_SUFFIX))
    return sorted(p for p in folder.iterdir() if own.fullmatch(p.name) and p.is_file())


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    history: History,
    train_config: dict | None = None,
    *,
    scaler: torch.amp.GradScaler | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically: temporary file, ``fsync``, rename, ``fsync`` of the folder.

    The file's mode follows the umask, like any other file the process creates.

    Args:
        path: where to write (for example ``results/checkpoint.pt``).
        model: an :class:`aelib.Autoencoder` (plain or tied),
            :class:`aelib.VariationalAutoencoder`, :class:`aelib.ConvAutoencoder` or
            :class:`aelib.LinearAutoencoder`; its class name and constructor arguments
            (:func:`constructor_args`) are stored so that :func:`restore_model` can rebuild it.
        optimizer: its state is stored for ``--resume`` (may be ``None``).
        history: the losses so far.
        train_config: settings of the run (epochs, batch size, lr, seed, data), stored as given.
        scaler: a mixed-precision ``GradScaler`` whose state is stored (may be ``None``).
        extra: other JSON-like facts to keep (for example the wall time so far).
    Returns:
        The path written.
    Raises:
        TypeError: ``model`` is of a class that :func:`restore_model` cannot rebuild.
        CheckpointWriteError: the file could not be written; the previous checkpoint is intact.
    """
    config = constructor_args(model)
    path = Path(path)
    state = {
        "model_class": type(model).__name__,
        "model_config": config,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scaler_state": scaler.state_dict() if scaler is not None else None,
        "history": history.to_dict(),
        "train_config": dict(train_config or {}),
        "extra": dict(extra or {}),
    }
    payload = _serialize(state)
    wrapper = {
        "format": FORMAT,
        "version": VERSION,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    data = _serialize(wrapper)  # in memory: a full disk then fails a plain write, an OSError
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(path.parent)
    except OSError as err:
        raise CheckpointWriteError(
            f"cannot write the checkpoint {path} "
            f"({err.strerror or err}); the previous checkpoint there, if "
            "any, is intact"
        ) from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def _serialize(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything else.

    Returns:
        A dict with ``model_class``, ``model_config``, ``model_state``, ``optimizer_state``,
        ``scaler_state``, ``history``, ``train_config`` and ``extra``, each of the type
        :func:`save_checkpoint` writes.
    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file cannot be read, is not an aelib checkpoint, is of an unknown
            version, is damaged (its SHA-256 does not match, or it cannot be unpacked), or holds
            a payload of other types than aelib writes.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:  # no permission, a name too long, an I/O error
        raise CheckpointError(f"{path} cannot be read ({err.strerror or err})") from None
    zipped = raw[:4] == b"PK\x03\x04"  # torch.save's zip container
    try:
        state = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for files that are not its own
        what = "is damaged" if zipped else "is not an aelib checkpoint"
        raise CheckpointError(f"{path} {what} (torch.load failed: {type(err).__name__})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an aelib checkpoint (no '{FORMAT}' marker); pass a "
            "file written by aelib's save_checkpoint or `python -m aelib train`"
        )
    if state.get("version") == 1:  # before payload hashes: the state is the wrapper itself
        return _checked_payload({"scaler_state": None, "extra": {}, **state}, path)
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')!r}; "
            f"this aelib reads versions 1 and {VERSION}"
        )
    payload = state.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != state.get(
        "sha256"
    ):
        raise CheckpointError(
            f"{path}: the checkpoint is damaged (its SHA-256 does not match the "
            "one stored when it was written); use another copy or train again"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: the checkpoint is damaged ({type(err).__name__})") from err
    return _checked_payload(state, path)


_PAYLOAD = {
    "model_class": (str,),
    "model_config": (dict,),
    "model_state": (dict,),
    "optimizer_state": (dict, type(None)),
    "scaler_state": (dict, type(None)),
    "history": (dict,),
    "train_config": (dict,),
    "extra": (dict,),
}


def _checked_payload(state, path: Path) -> dict:
    """``state`` if it has the keys and types :func:`save_checkpoint` writes; else an error.

    A file can carry a valid hash and still hold something else (written by hand, or by another
    program with this format's marker): every part a reader indexes is checked here, once.
    """

    def problem() -> str | None:
        if not isinstance(state, dict):
            return f"a {type(state).__name__}, not a dict"
        for key, types in _PAYLOAD.items():
            if not isinstance(state.get(key), types):
                return f"{key} is {type(state.get(key)).__name__}"
        weights = state["model_state"]
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
            return "model_state holds something other than named tensors"
        history = state["history"]
        for key in ("train_loss", "test_loss", "epoch_seconds"):
            values = history.get(key, [])
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                return f"history[{key!r}] is not a list of numbers"
        n_train, n_test = len(history.get("train_loss", [])), len(history.get("test_loss", []))
        if n_test not in (0, n_train):
            return f"history has {n_train} training losses but {n_test} test losses"
        first = history.get("first_batch_loss")
        if first is not None and not _is_number(first):
            return "history['first_batch_loss'] is not a number"
        return None

    found = problem()
    if found is not None:
        raise CheckpointError(
            f"{path} holds a payload that aelib does not write ({found}); use another copy "
            "or train again"
        )
    return state


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    )


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
    problems = _mismatches(model, saved)
    if problems:
        raise CheckpointError(
            "the checkpoint was saved from a different architecture "
            f"({state.get('model_config')}) "
            f"than this model ({getattr(model, 'config', type(model).__name__)}): "
            + "; ".join(sorted(problems)[:6])
            + ". Build the model from the checkpoint with restore_model(state)."
        )
    model.load_state_dict(saved)
    return model


def _mismatches(model: torch.nn.Module, saved: dict) -> list[str]:
    """How the tensors of ``saved`` differ from ``model``'s, by name and shape."""
    own = model.state_dict()
    problems = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in saved.items()
        if k in own and own[k].shape != v.shape
    ]
    problems += [f"{k}: only in the checkpoint" for k in saved.keys() - own.keys()]
    problems += [f"{k}: only in the model" for k in own.keys() - saved.keys()]
    return problems


def restore_model(state: dict) -> torch.nn.Module:
    """Rebuild the model stored in a checkpoint, weights included.

    Args:
        state: what :func:`load_checkpoint` returned.
    Returns:
        A new model of the saved class (``Autoencoder``, tied or not, ``VariationalAutoencoder``,
        ``ConvAutoencoder`` or ``LinearAutoencoder``) with the saved configuration and weights,
        on the CPU.
    Raises:
        CheckpointError: the checkpoint names a class this aelib does not have, or a
            configuration its constructor refuses.
    """
    name = state.get("model_class")
    if name not in MODEL_CLASSES:
        raise CheckpointError(
            f"cannot rebuild a {name!r}; this aelib rebuilds {', '.join(MODEL_CLASSES)}"
        )
    config = dict(state.get("model_config") or {})
    if name == "ConvAutoencoder" and isinstance(config.get("channels"), list):
        config["channels"] = tuple(config["channels"])
    try:  # first without memory (the meta device): a crafted size cannot exhaust it
        with torch.device("meta"):
            skeleton = MODEL_CLASSES[name](**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"the checkpoint's {name} configuration {config} does not fit this aelib: {err}"
        ) from err
    if _mismatches(skeleton, state["model_state"]):
        return load_model_state(skeleton, state)  # raises, listing the differences
    return load_model_state(MODEL_CLASSES[name](**config), state)

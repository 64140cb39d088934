"""The output folder's lock on Windows, run here: fcntl hidden, a fake msvcrt in its place.

``aelib.cli._try_lock`` takes ``fcntl.flock`` where fcntl imports and ``msvcrt.locking`` where it
does not (Windows). The fake below behaves as Windows documents ``_locking``/``LockFile``: it locks
``nbytes`` from the file's current position, refuses a range another descriptor holds (OSError,
once, for ``LK_NBLCK``), makes locked bytes unreadable through other descriptors (Windows locks
are mandatory) and releases a descriptor's locks when it is closed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class FakeMsvcrt(types.ModuleType):
    """``msvcrt.locking`` with Windows' byte-range locks, recording every call."""

    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4  # msvcrt's values

    def __init__(self):
        super().__init__("msvcrt")
        self.calls: list[tuple[int, int, int]] = []  # (mode, start, nbytes)
        self.held: list[tuple[tuple[int, int], int, int, int]] = []  # (file, start, end, fd)

    @staticmethod
    def _file(fd: int) -> tuple[int, int]:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino

    def _others(self, fd: int, start: int, end: int) -> bool:
        """Whether another descriptor holds a byte of ``[start, end)`` of ``fd``'s file."""
        file = self._file(fd)
        return any(f == file and s < end and start < e and h != fd for f, s, e, h in self.held)

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        start = os.lseek(fd, 0, os.SEEK_CUR)
        self.calls.append((mode, start, nbytes))
        lock = (self._file(fd), start, start + nbytes, fd)
        if mode == self.LK_UNLCK:
            if lock not in self.held:
                raise PermissionError(13, "Permission denied")
            self.held.remove(lock)
        elif self._others(fd, start, start + nbytes) or lock in self.held:
            raise PermissionError(13, "Permission denied")  # LK_LOCK would retry for 10 s first
        else:
            self.held.append(lock)

    def release(self, fd: int) -> None:
        self.held = [lock for lock in self.held if lock[3] != fd]


@pytest.fixture
def msvcrt(monkeypatch):
    """Windows for ``_try_lock``: ``import fcntl`` fails, ``import msvcrt`` gives the fake."""
    from aelib import cli  # noqa: F401  (imported before the os functions are wrapped)

    fake = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl raises ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(sys, "platform", "win32")  # should the code ever ask the platform
    real_close, real_read = os.close, os.read

    def close(fd):
        fake.release(fd)
        real_close(fd)

    def read(fd, n):
        if fake.held:  # only while a lock is held (lseek fails on pipes)
            position = os.lseek(fd, 0, os.SEEK_CUR)
            if fake._others(fd, position, position + n):
                raise PermissionError(
                    13, "The process cannot access the file: a portion is locked"
                )
        return real_read(fd, n)

    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr(os, "read", read)
    return fake


def test_cli_imports_and_parses_without_fcntl():
    code = (
        "import sys\n"
        "sys.modules['fcntl'] = None\n"
        "import aelib.cli\n"
        "assert 'msvcrt' not in sys.modules, 'msvcrt imported at import time'\n"
        "sys.argv = ['aelib', '--help']\n"
        "from aelib.__main__ import main\n"
        "main()\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "Traceback" not in done.stderr


def test_windows_lock_refuses_a_second_run_and_closing_releases_it(msvcrt, tmp_path):
    from aelib import cli

    lock_file = tmp_path / cli.LOCK_NAME
    with cli._lock(tmp_path):
        assert [mode for mode, _, _ in msvcrt.calls] == [msvcrt.LK_NBLCK]  # never waits
        [(_, start, nbytes)] = msvcrt.calls
        note = lock_file.read_text()
        assert note.startswith(f"pid {os.getpid()} on ") and " started " in note
        assert len(msvcrt.held) == 1 and start >= len(note.encode()) and nbytes >= 1

        with pytest.raises(cli.UsageError) as refused:
            with cli._lock(tmp_path):
                pytest.fail("a second run got the lock the first one holds")
        assert str(refused.value) == (
            f"--out {tmp_path} is in use by another aelib run ({note}); wait for it to finish "
            "or choose another --out"
        )
        assert "\n" not in str(refused.value)
        assert lock_file.read_text() == note  # the refused run wrote nothing
        assert len(msvcrt.held) == 1  # and holds nothing

    assert msvcrt.held == []  # released
    assert msvcrt.calls[-1][0] == msvcrt.LK_UNLCK  # explicitly, before closing (Windows may
    # release a lock left to close only after a delay)
    with pytest.raises(RuntimeError, match="the run failed"):
        with cli._lock(tmp_path):
            assert len(msvcrt.held) == 1  # the next run gets it
            raise RuntimeError("the run failed")
    assert msvcrt.held == []  # released when the run fails too
    modes = [mode for mode, _, _ in msvcrt.calls]
    lock, unlock = msvcrt.LK_NBLCK, msvcrt.LK_UNLCK
    assert modes == [lock, lock, unlock, lock, unlock]  # the refused run unlocked nothing


def test_memory_bound_without_proc_or_sysconf(monkeypatch):
    """Windows has neither /proc/meminfo nor os.sysconf: training must not stop there."""
    import builtins

    import torch

    from aelib import cli

    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.delattr(os, "sysconf")
    monkeypatch.setattr(cli, "CGROUP_FILES", ())
    monkeypatch.setitem(sys.modules, "resource", None)  # no resource module on Windows
    free, what = cli._available_bytes(torch.device("cpu"))
    assert free > 10**15 and what == "no known memory limit"

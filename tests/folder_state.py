"""A folder's full state (a helper module, not a test file): used to prove that a command left
raw data exactly as it was."""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fingerprint(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder` (hidden ones too, and the folder itself): kind, mode, mtime in
    nanoseconds, and for files the sha256 of the bytes, for links the target."""
    state = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        info = path.lstat()
        if path.is_symlink():
            what = ("link", os.readlink(path))
        elif path.is_dir():
            what = ("dir",)
        else:
            what = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        state[str(path.relative_to(folder))] = (*what, info.st_mode, info.st_mtime_ns)
    return state


@contextmanager
def unchanged(folder: Path) -> Iterator[None]:
    """Assert that the code run inside leaves `folder` (names, bytes, modes, mtimes) as it was."""
    before = fingerprint(folder)
    yield
    assert fingerprint(folder) == before, f"{folder} was modified"

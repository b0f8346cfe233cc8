"""Crash-safe replacement of a small public file: temporary file, fsync, rename, fsync.

A crash at any point leaves either the old or the new complete file, never a torn one.
The temporary file sits next to the target as ``.<name>.<random>.tmp``;
`remove_stale_temporaries` clears those a crashed writer left behind.

Notes
-----
Only for files that hold no secrets: the new file is made world-readable (``0o644``).
Atomicity relies on POSIX ``rename`` within one directory; durability on ``fsync`` of
the file and then of its directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def write_atomically(path: Path, data: bytes, *, dir_fd: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Parameters
    ----------
    path : Path
        The file to create or replace.
    data : bytes
        Its complete new contents.
    dir_fd : int | None (default: None)
        An open descriptor of ``path``'s directory (e.g. one the caller holds a lock
        on), fsynced after the rename and left open; when ``None`` the directory is
        opened, fsynced and closed here.

    Raises
    ------
    OSError
        If the file cannot be written; ``path`` is then left as it was and the
        temporary file is removed.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o644)  # public: signed or published, holds no secrets
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if dir_fd is not None:
        os.fsync(dir_fd)
        return
    own_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(own_fd)
    finally:
        os.close(own_fd)


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of ``path`` that a crashed `write_atomically` left.

    Call it only while holding a lock that excludes every other writer of ``path``.

    Parameters
    ----------
    path : Path
        The target file whose leftover temporaries to delete.
    """
    prefix = _temp_prefix(path)
    for stale in path.parent.iterdir():
        if stale.name.startswith(prefix) and stale.name.endswith(TEMP_SUFFIX):
            stale.unlink(missing_ok=True)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."

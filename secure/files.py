"""Files that hold key material: created exclusively, never overwritten, mode set explicitly."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def write_new_file(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` to a new file: mode 0600 when ``private``, else 0644.

    The file is created with ``O_EXCL`` and synced; a failed write leaves no file.

    Raises
    ------
    FileExistsError
        If ``path`` already exists (key and certificate files are never overwritten).
    """
    mode = PRIVATE_FILE_MODE if private else PUBLIC_FILE_MODE
    path = Path(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        message = f"`path` must not exist (refusing to overwrite); got {path}"
        raise FileExistsError(message) from None
    try:
        os.fchmod(fd, mode)  # the umask may only have removed bits; be explicit
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise

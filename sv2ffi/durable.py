"""Files that are either fully written or not there at all.

Key files and solved blocks share one rule: a crash at any moment must leave either the
old state or the complete new file, never a torn one, and a secret must never be
readable by others, not even briefly.  So: write a private temporary file in the same
directory, fsync it, rename it over the target, then fsync the directory so the rename
itself survives a power loss.

Directories follow the second half of that rule: ``private_dir`` makes them 0700 whatever
the umask.  ``os.mkdir(path, 0o700)`` alone is not enough: the mode is masked by the
umask, so 0o277 leaves a directory its owner cannot write (0500).  Masking only removes
bits, so the directory is never more open than 0700 between mkdir and the chmod after it.
Directories that already exist keep the mode their owner gave them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import DatadirError


def write_atomic(path, data: bytes, mode: int = 0o600) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def private_dir(path, *, parents: bool = False) -> Path:
    """``path`` as a directory, created mode 0700 (its missing parents too, if ``parents``).

    Something else in the way (a file, a dangling symlink) is a DatadirError that says so,
    not Python's bare "File exists".
    """
    path = Path(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if path.is_dir():
            return path
        raise DatadirError(not_a_directory(path)) from None
    except (FileNotFoundError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.is_symlink() or p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise DatadirError(not_a_directory(blocker)) from None
        if not parents:
            raise
        private_dir(path.parent, parents=True)
        return private_dir(path)
    os.chmod(path, 0o700)
    return path


def not_a_directory(path: Path) -> str:
    """Why ``path``, which exists (or is a symlink), cannot be used as a directory."""
    if path.is_symlink() and not path.exists():
        return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist"
    if path.is_file():
        return f"{path} is a file, not a directory"
    return f"{path} exists and is not a directory"


def probe_writable(directory) -> None:
    """Create, write, and remove a file in ``directory``; OSError if that fails.

    The only test that holds for root, whom permission bits do not stop (an immutable
    directory, a read-only mount, a full disk, an NFS export mapping root to nobody).
    """
    fd, tmp = tempfile.mkstemp(prefix=".write-probe.", dir=directory)
    try:
        os.write(fd, b"\0")
    finally:
        os.close(fd)
        os.unlink(tmp)

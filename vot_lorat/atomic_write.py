"""Files written whole or not at all: through a temporary name in the same folder, then renamed into place.

A write that fails (a full disk, a quota, a file-size limit) leaves neither a truncated file nor the temporary
one, keeps the earlier file of that name, and is reported in one line that names the file and the free space.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import IO, Any, Callable


def free_space(path: str) -> str:
    """The free space of the disk ``path`` (or its nearest existing folder) is on, for messages."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free} bytes"


def write_error(path: str, err: BaseException) -> OSError:
    """One line for a file that could not be written: the file, the reason and the free space left."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
    return OSError(f"cannot write {path}: {reason} ({free_space(path)} free on its disk)")


def write_file(path: str, write: Callable[[IO], Any], binary: bool = False) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, flush it to the disk and rename it to ``path``;
    on failure the temporary file is removed and :func:`write_error` is raised."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; results are meant to be shared
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, (OSError, RuntimeError)):
            raise write_error(path, err) from err
        raise


def write_text(path: str, text: str) -> None:
    write_file(path, lambda f: f.write(text))


def write_json(path: str, data: Any) -> None:
    write_file(path, lambda f: json.dump(data, f, indent=1))

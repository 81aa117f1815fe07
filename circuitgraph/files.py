"""Files written whole or not at all: atomic output, JSON defaults, stale temporary folders.

Standard library only, so every layer (the torch-free circuit type included) can use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STALE_TMP_S = 3600  # a temporary folder without a process id older than this is stale


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The parent folder is created if needed; on error the temporary file is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def json_default(value: Any) -> Any:
    """``json.dumps``'s fallback: numpy / torch scalars and arrays as plain numbers and lists,
    paths as strings, sets as sorted lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")


def shared_mode(path: Path) -> None:
    """Give ``path`` (ours) the permissions of a folder made with the umask (group-readable)."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        if path.stat().st_uid == os.getuid():
            path.chmod(0o777 & ~umask)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path, prefix: str) -> list[Path]:
    """Remove hidden temporary folders ``<prefix><pid>-*`` left in ``folder`` by processes
    that no longer run (e.g. killed mid-write); unparsable ones only when over an hour old."""
    removed = []
    for path in folder.glob(f"{prefix}*"):
        pid = path.name[len(prefix) :].partition("-")[0]
        if pid.isdigit():
            stale = int(pid) != os.getpid() and not _process_alive(int(pid))
        else:
            try:
                stale = time.time() - path.stat().st_mtime > STALE_TMP_S
            except OSError:
                continue
        if stale and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

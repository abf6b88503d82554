"""Atomic outputs: write to a temporary sibling, then rename into place.

An interrupted stage therefore never leaves a half-written file or folder that
DVC would accept as a complete output.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(path: Path) -> None:
    """Delete the temporary siblings of ``path`` that a killed process (SIGKILL, power loss) left."""
    for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = orphan.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(orphan, ignore_errors=True) if orphan.is_dir() else orphan.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``path`` on success. With ``keep_existing``
    a ``path`` that appeared meanwhile (another process made the same folder) is kept instead."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; outputs get the usual permissions
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_existing and path.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    replace_dir(tmp, path)


def replace_dir(source: Path, path: Path) -> None:
    """Rename ``source`` to ``path``; an existing ``path`` is first moved aside, then deleted."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(source, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def partial_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


@contextlib.contextmanager
def resumable_dir(path: str | os.PathLike, resume: bool, primary: bool = True) -> Iterator[Path]:
    """:func:`atomic_dir` for a long job that can be resumed (a training): the work goes on in
    ``.<name>.partial`` beside ``path``, which a crash leaves in place, and replaces ``path`` on
    success. Without ``resume`` the work starts empty; with it, it continues the interrupted work,
    or a copy of the finished ``path`` when nothing was interrupted. Only the ``primary`` process
    (rank zero of a distributed job) creates, copies and renames folders."""
    path = Path(path)
    work = partial_dir(path)
    if primary:
        if work.exists() and not resume:
            shutil.rmtree(work)
        if resume and not work.exists() and path.is_dir():
            shutil.copytree(path, work)
        work.mkdir(parents=True, exist_ok=True)
    yield work  # an exception leaves the work in place, to be resumed
    if primary:
        replace_dir(work, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Stable, human-readable JSON (sorted keys, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))

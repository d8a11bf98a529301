"""Writing a report file so that a failure never leaves half a report, nor destroys the last one."""

from __future__ import annotations

import os
import stat
import tempfile


def _mode_for(path: str) -> int:
    """The permission bits the written file gets: those of the file it replaces, else what
    open() would give a new file (0o666 less the umask). mkstemp's own 0o600 would hide every
    report, trace and baseline from the rest of a team."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it (/proc/self/status on Linux); elsewhere
    set and restored at once, as os.umask is the only way to read it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_folder(path: str, what: str = "") -> str:
    """The folder ``path`` would be written into, if it exists and is writable; else an OSError
    naming ``what`` (e.g. a flag) and the path. The CLI checks before a run, the writer again."""
    if os.path.isdir(path):
        raise OSError(f"cannot write {what + ' ' if what else ''}{path}: it is a folder (name a file in it)")
    target = os.path.realpath(path) if os.path.islink(path) else path  # a link is written through
    folder = os.path.dirname(os.path.abspath(target))
    problem = ("does not exist" if not os.path.isdir(folder)
               else "is not writable" if not os.access(folder, os.W_OK) else None)
    if problem:
        raise OSError(f"cannot write {what + ' ' if what else ''}{path}: the folder {folder} {problem}")
    return folder


def write_atomically(path: str, text: str) -> str:
    """Write ``text`` (newline-terminated) to a temporary file beside ``path``, then rename it
    over ``path``: readers see the old file or the new one, never a truncated one. The file
    keeps the mode of the one it replaces, else gets a new file's (0o666 less the umask).
    A symbolic link (a ``latest.html`` pointing at a dated report) is written through: the file
    it points at is replaced, the link stays. Raises OSError with the path in its message
    (missing folder, read-only, disk full)."""
    folder = check_folder(path)
    real = os.path.realpath(path) if os.path.islink(path) else path
    data = text if text.endswith("\n") else text + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".torchprof_lab-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(real))
        os.replace(tmp, real)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path

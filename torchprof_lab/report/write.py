"""Writing a report file so that a failure never leaves half a report, nor destroys the last one."""

from __future__ import annotations

import os
import tempfile


def write_atomically(path: str, text: str) -> str:
    """Write ``text`` (newline-terminated) to a temporary file beside ``path``, then rename it
    over ``path``: readers see the old file or the new one, never a truncated one. Raises
    OSError with the path in its message (missing folder, read-only, disk full)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"cannot write {path}: folder {folder} does not exist")
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
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path

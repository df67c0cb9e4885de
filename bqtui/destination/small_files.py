"""Reading a credential file safely: a small regular file, or a message saying what it is.

Devices, pipes and huge files are refused before anything is read: a read could never end
(a symlink to /dev/zero) or fill memory. What each problem is called is the caller's: key files
and credential configurations say it in their own words.
"""

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Literal

Problem = Literal["missing", "unreadable", "folder", "special", "too_large", "not_text"]
# (problem, path, detail) → the message; ``detail`` is the OS's reason or the size.
Describe = Callable[[Problem, Path, str], Exception]


def read_small_text_file(path: str | Path, limit: int, refuse: Describe) -> str:
    """The UTF-8 text of ``path``, or ``refuse(problem, path, detail)`` raised."""
    path = Path(path).expanduser()
    if not path.exists():
        raise refuse("missing", path, "")
    try:
        info = path.stat()  # follows a symlink: what counts is what it points at
    except OSError as error:
        raise refuse("unreadable", path, error.strerror or "") from None
    if stat.S_ISDIR(info.st_mode):
        raise refuse("folder", path, "")
    if not stat.S_ISREG(info.st_mode):
        raise refuse("special", path, "")
    if info.st_size > limit:
        raise refuse("too_large", path, str(info.st_size))
    try:
        # O_NONBLOCK: a file swapped for a pipe after the check still cannot hang the read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise refuse("special", path, "")
            data = handle.read(limit + 1)
    except OSError as error:
        raise refuse("unreadable", path, error.strerror or "") from None
    if len(data) > limit:  # grew since the check
        raise refuse("too_large", path, "")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("not_text", path, "") from None

"""Thread pools whose threads carry their names in the operating system too.

Python names its threads for itself only; on Linux the name is also set with ``prctl`` so that
``top -H``, ``ps -L`` and ``/proc/PID/task/TID/comm`` show which pool a busy thread belongs to
(`bench.thread_cpu` splits the service's CPU that way). Elsewhere the names stay Python's own.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

_PR_SET_NAME = 15
_COMM_BYTES = 15  # the kernel keeps 15 bytes of a thread's name


def name_os_thread() -> None:
    """Give the calling thread its Python name (e.g. ``prepare_0``) in the OS as well."""
    if not sys.platform.startswith("linux"):
        return
    name = threading.current_thread().name.encode("ascii", "replace")[:_COMM_BYTES]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: the names stay Python's own
        pass


def named_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
    """A ``ThreadPoolExecutor`` whose threads are ``PREFIX_N`` in Python and in the OS."""
    return ThreadPoolExecutor(workers, thread_name_prefix=prefix, initializer=name_os_thread)

"""Pool threads carry their names in the OS, and `bench.thread_cpu` splits CPU time by them."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.thread_cpu import split, thread_cpu
from service.threads import named_pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")


def _comm(tid: int) -> str:
    return Path(f"/proc/{os.getpid()}/task/{tid}/comm").read_text().strip()


def test_a_pool_thread_has_its_name_in_the_os():
    pool = named_pool(2, "prepare")
    try:
        tid, name = pool.submit(lambda: (threading.get_native_id(),
                                         threading.current_thread().name)).result()
        assert name.startswith("prepare_")
        assert _comm(tid) == name
    finally:
        pool.shutdown()


def test_long_names_are_cut_to_what_the_kernel_keeps():
    pool = named_pool(1, "a-very-long-pool-name")
    try:
        tid = pool.submit(threading.get_native_id).result()
        assert _comm(tid) == "a-very-long-pool-name_0"[:15]
    finally:
        pool.shutdown()


def _spin(seconds: float) -> int:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return threading.get_native_id()


def test_thread_cpu_gives_a_pool_its_own_cpu_time():
    pool = named_pool(1, "infer")
    try:
        pool.submit(lambda: None).result()  # the thread exists before the first reading
        before = thread_cpu(os.getpid())
        tid = pool.submit(_spin, 0.3).result()
        used = split(before, thread_cpu(os.getpid()))
    finally:
        pool.shutdown()
    assert before[tid][0] == "infer"
    assert thread_cpu(os.getpid())[os.getpid()][0] == "event loop (main thread)"
    assert used["infer"] >= 0.25  # clock ticks: 10 ms each
    assert used.get("event loop (main thread)", 0.0) < 0.25

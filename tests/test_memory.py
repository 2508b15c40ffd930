"""cleaning.memory: the memory settings clean works under are put back afterwards, even on failure."""
from __future__ import annotations

import ctypes
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest

from outcomes.cleaning import memory


def _hugepage_setting() -> bool | None:
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # a numpy without it: memory.reuse_memory leaves it alone too
        return None
    before = _set_madvise_hugepage(True)
    _set_madvise_hugepage(before)
    return before


def test_settings_hold_inside_and_are_put_back_even_after_an_error():
    pool_before, huge_before = pa.default_memory_pool().backend_name, _hugepage_setting()
    with pytest.raises(RuntimeError, match="inside"):
        with memory.reuse_memory():
            assert pa.default_memory_pool().backend_name == "system"
            assert _hugepage_setting() is (None if huge_before is None else False)
            np.ones(1 << 22).sum()  # big arrays still work
            raise RuntimeError("inside")
    assert pa.default_memory_pool().backend_name == pool_before
    assert _hugepage_setting() == huge_before


def test_glibc_controls_are_found_on_linux_and_absent_elsewhere(monkeypatch):
    if sys.platform.startswith("linux") and memory._glibc() is None:
        pytest.skip("a Linux without glibc (musl): nothing to tune")
    if sys.platform.startswith("linux"):
        libc = memory._glibc()
        assert libc.mallopt(memory._M_TOP_PAD, 128 << 10) == 1  # glibc accepts the option
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory._glibc() is None
    with memory.reuse_memory():  # no glibc: the arrow and numpy settings alone
        assert pa.default_memory_pool().backend_name == "system"


def _wait_for_trims() -> None:
    """Wait for the background trims (memory.reuse_memory starts one on leaving, also in earlier
    tests' cleans): a trim running beside the test would hand back the memory it measures."""
    for thread in threading.enumerate():
        if thread.name == "malloc-trim":
            thread.join()


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def test_freed_memory_is_reused_without_fresh_pages_inside_and_returned_after():
    """The point of the settings: a big block freed and allocated again costs no new page faults
    (once, mallopt was given 2**34 for a C int: it became 0, "trim at every free"); afterwards the
    heap's free memory is handed back and big blocks are the system's own mappings again.
    No timing: the background trim is waited for, and "afterwards" is read from glibc's own
    accounts (mallinfo2), not from page faults, whose count depends on the machine's huge pages."""
    libc = memory._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("no glibc >= 2.33: nothing to tune, or no mallinfo2 to read")
    import resource

    assert all(-(1 << 31) <= v < 1 << 31 for v in (*memory._KEEP.values(), *memory._AFTER.values()))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _MallInfo2
    size = 256 << 20  # above glibc's usual mmap threshold: unmapped at free by default

    def faults_of_a_fresh_block() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    _wait_for_trims()
    pages = size // 4096
    with memory.reuse_memory():
        faults_of_a_fresh_block()
        assert faults_of_a_fresh_block() < pages // 10
        assert libc.mallinfo2().keepcost >= size  # the freed block stays at the top of the heap
    _wait_for_trims()
    assert libc.mallinfo2().keepcost < size // 16  # handed back to the system
    mapped = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    try:  # afterwards a big block is a mapping of its own again, unmapped when freed
        assert libc.mallinfo2().hblkhd >= mapped + size
    finally:
        libc.free(block)
    assert libc.mallinfo2().hblkhd == mapped


def test_clean_runs_under_the_settings(tmp_path, monkeypatch):
    import outcomes
    from outcomes import cleaning
    from raw_factory import write_raw

    seen = []
    real = cleaning._read_and_clean
    monkeypatch.setattr(cleaning, "_read_and_clean",
                        lambda *a: (seen.append(pa.default_memory_pool().backend_name), real(*a))[1])
    outcomes.clean(write_raw(tmp_path / "raw"))
    assert seen == ["system"]

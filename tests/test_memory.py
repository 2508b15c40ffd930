"""cleaning.memory: the memory settings clean works under are put back afterwards, even on failure."""
from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest

from outcomes.cleaning import memory


def _hugepage_setting() -> bool:
    from numpy._core.multiarray import _set_madvise_hugepage

    before = _set_madvise_hugepage(True)
    _set_madvise_hugepage(before)
    return before


def test_settings_hold_inside_and_are_put_back_even_after_an_error():
    pool_before, huge_before = pa.default_memory_pool().backend_name, _hugepage_setting()
    with pytest.raises(RuntimeError, match="inside"):
        with memory.reuse_memory():
            assert pa.default_memory_pool().backend_name == "system"
            assert _hugepage_setting() is False
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


def test_freed_memory_is_reused_without_fresh_pages_inside_and_returned_after():
    """The point of the settings: a big block freed and allocated again costs no new page faults
    (once, mallopt was given 2**34 for a C int: it became 0, "trim at every free")."""
    libc = memory._glibc()
    if libc is None:
        pytest.skip("no glibc: nothing to tune")
    import ctypes
    import resource

    assert all(-(1 << 31) <= v < 1 << 31 for v in (*memory._KEEP.values(), *memory._AFTER.values()))
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    size = 256 << 20  # above glibc's usual mmap threshold: unmapped at free by default

    def faults_of_a_fresh_block() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    pages = size // 4096
    with memory.reuse_memory():
        faults_of_a_fresh_block()
        assert faults_of_a_fresh_block() < pages // 10
    assert faults_of_a_fresh_block() > pages // 2  # afterwards big blocks go back to the system again


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

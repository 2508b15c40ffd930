"""Memory settings for cleaning: reuse freed memory instead of asking the kernel for fresh pages.

Why: clean makes many short-lived arrays of millions of rows. By default each big array is
fresh memory from the kernel (glibc maps blocks of more than 128 KiB to 32 MiB on their own
and unmaps them when freed; numpy madvises big arrays for transparent huge pages; pyarrow's
default allocator, mimalloc, uses huge pages), and every fresh page is a page fault. On the
project's 2-core virtual machine a fresh huge page cost about five times a plain one, and page
faults took a fifth of a 5-million-row clean's CPU time. While cleaning, numpy and arrow use plain
pages through glibc's malloc, and glibc keeps freed memory in its heap for the next array;
threads share one heap, so memory one of them frees is reused by the others. Measured on a
5-million-row clean: 0.40 million page faults and 2.0 GB peak memory with these settings,
0.56 million and 2.6 GB without the one-heap limit, 0.71 million and 2.5 GB (0.3 s slower)
without any glibc setting.
Everything is put back afterwards, and the heap's free memory is returned to the system. One
thing glibc does not let go back: once a thread has been given the shared heap under the
one-heap limit, the limit stays for the life of the process, so threads started later share
heaps too (a little more locking in malloc, nothing else).
"""
from __future__ import annotations

import ctypes
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8
# (mallopt takes a C int: a value of 2**31 or more would wrap around, e.g. 2**34 becomes 0, "trim at every free")
_INT_MAX = (1 << 31) - 1
_KEEP = {_M_ARENA_MAX: 1, _M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: _INT_MAX, _M_TOP_PAD: 256 << 20}
# afterwards: where glibc's own sliding threshold ends up once big arrays were freed (its maximum)
_AFTER = {_M_ARENA_MAX: 0, _M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20, _M_TOP_PAD: 128 << 10}


def _glibc():
    """glibc's malloc controls, or None (another C library, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim, libc.gnu_get_libc_version  # noqa: B018  (all glibc only)
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reuse_memory() -> Iterator[None]:
    """Within: plain pages for numpy and arrow, and freed memory kept for reuse (glibc)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # another numpy: leave it alone
        _set_madvise_hugepage = None
    numpy_before = _set_madvise_hugepage(False) if _set_madvise_hugepage else None
    arrow_before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    libc = _glibc()
    if libc is not None:
        for option, value in _KEEP.items():
            libc.mallopt(option, value)
    try:
        yield
    finally:
        if libc is not None:
            for option, value in _AFTER.items():
                libc.mallopt(option, value)
            # hand the heap's free memory back in the background (walking it takes a while)
            threading.Thread(target=libc.malloc_trim, args=(0,), name="malloc-trim", daemon=True).start()
        pa.set_memory_pool(arrow_before)
        if _set_madvise_hugepage:
            _set_madvise_hugepage(numpy_before)

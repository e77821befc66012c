"""The allocators generation runs on: memory freed by one part is reused by the next.

A part's arrays are large and short-lived, and a page the kernel hands out anew costs a page fault
and zeroing on first touch (system time that once was a third of generation's CPU). Two settings
keep freed memory in the process for the next part:

- Arrow allocates from mimalloc (its default on Linux), which reuses freed pages; jemalloc, as
  pyarrow configures it, returns them at once and faults every large buffer in again.
- glibc ``malloc`` (numpy's arrays) serves blocks up to its largest mmap threshold from the heap
  and keeps the heap's freed top instead of trimming it (``mallopt``, glibc's public API).

Both only change where memory comes from, never what is computed. Called once per process by
:func:`generator.batch.build`; elsewhere (another libc, a pyarrow without mimalloc) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import suppress
from functools import cache

import pyarrow as pa

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc accepts on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024  # keep up to this much freed heap for the next part


@cache
def reuse_freed_memory() -> None:
    """Arrow on mimalloc and glibc's heap kept (see the module docstring); runs once."""
    with suppress(NotImplementedError):  # this pyarrow was built without mimalloc
        pa.set_memory_pool(pa.mimalloc_memory_pool())
    name = ctypes.util.find_library("c")
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)

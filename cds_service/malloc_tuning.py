"""Keep the C allocator from handing a hook call's memory back to the kernel after every call.

glibc's malloc returns the freed top of its heap to the kernel once it exceeds a threshold, and serves large
blocks with mmap/munmap; both thresholds move with the sizes it has seen. A hook call allocates a few MB for its
request (the body, the decoder's lists) and frees them at the end, and with the default behaviour the worker
gave that memory back and faulted it in again on the next call: ~1,000 page faults and ~25 % of the CPU of a
1,000-Observation call (docs/performance.md). Fixing both thresholds keeps up to ``keep_mb`` of freed memory
in the process for the next call; peak memory is unchanged (the same blocks are reused rather than returned).

Linux with glibc only; elsewhere (musl, macOS) nothing is changed. ``REMISSION_CDS_MALLOC_KEEP_MB=0`` turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc on Linux (musl's and macOS's allocators take no such settings), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def tune(keep_mb: int | None = None) -> bool:
    """Fix malloc's trim and mmap thresholds; True when applied."""
    if keep_mb is None:
        try:
            keep_mb = int(os.environ.get("REMISSION_CDS_MALLOC_KEEP_MB", "64"))
        except ValueError:
            keep_mb = 64
    libc = _glibc() if keep_mb > 0 else None
    if libc is None:
        return False
    keep = keep_mb * 1024 * 1024
    ok = libc.mallopt(M_MMAP_THRESHOLD, min(keep, MMAP_THRESHOLD_MAX)) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, keep) == 1 and ok


def trim() -> bool:
    """Return the memory freed so far to the kernel once (``malloc_trim(0)``; glibc only). Run at the end of
    start-up: what start-up built and dropped is not needed again, unlike a hook call's memory."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False

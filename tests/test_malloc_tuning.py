"""The allocator thresholds the app fixes at start-up (cds_service/malloc_tuning.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cds_service import malloc_tuning


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_applied_on_linux_glibc_and_off_when_asked(monkeypatch):
    assert malloc_tuning.tune(64) is True
    assert malloc_tuning.tune(0) is False
    monkeypatch.setenv("REMISSION_CDS_MALLOC_KEEP_MB", "0")
    assert malloc_tuning.tune() is False
    monkeypatch.setenv("REMISSION_CDS_MALLOC_KEEP_MB", "not a number")
    assert malloc_tuning.tune() is True  # the default, not a crash


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_request_memory_is_kept_for_the_next_call():
    """Allocate and free a few MB the way a hook call does, many times: with the thresholds fixed the process
    stops faulting the memory in again (the default gave ~1,000 faults per 1,000-Observation call)."""
    script = r"""
import resource, sys
from cds_service import malloc_tuning
if sys.argv[1] == "1":
    malloc_tuning.tune(64)
def call():
    blocks = [bytearray(300_000) for _ in range(12)]   # > the 128 KB default mmap threshold
    small = [bytes(2000) for _ in range(1500)]
    del blocks, small
for _ in range(5):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    call()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    tuned = int(subprocess.check_output([sys.executable, "-c", script, "1"], text=True))
    plain = int(subprocess.check_output([sys.executable, "-c", script, "0"], text=True))
    assert tuned < 50 <= plain, (tuned, plain)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trim_runs_on_glibc():
    assert malloc_tuning.trim() in (True, False)  # 1 when memory was released, 0 when there was none
    assert isinstance(malloc_tuning.trim(), bool)

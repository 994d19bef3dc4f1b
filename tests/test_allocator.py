"""The allocator tuning keeps freed tensor memory in the heap, and measured peaks stay per block."""

from __future__ import annotations

import ctypes
import platform

import pytest
import torch

from benchsuite import allocator
from benchsuite.measure import _rss_bytes, measure

MiB = 1024 * 1024
glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or allocator.disabled(),
    reason="the tuning applies to glibc on Linux, and BENCHSUITE_MALLOC_TUNING is not 0")


def _trimmed_rss() -> int:
    """Resident memory after glibc hands the heap's free memory back (directly, not through the
    code under test), as a clean baseline."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_bytes()


def _touch_and_free(blocks: int, block_mib: int) -> int:
    """Allocate ``blocks`` tensors of ``block_mib`` MiB (under the mmap threshold, so from the
    heap), write them, free them; returns the resident memory while they were alive."""
    tensors = [torch.ones(block_mib * MiB // 4) for _ in range(blocks)]
    alive = _rss_bytes()
    del tensors
    return alive


@glibc_only
def test_tuned_heap_keeps_freed_memory_until_released() -> None:
    assert allocator.tune()
    before = _trimmed_rss()
    alive = _touch_and_free(24, 8)
    assert alive - before > 150 * MiB
    kept = _rss_bytes()
    # Freed, but kept for the next step: that is the point of the tuning.
    assert kept - before > 150 * MiB
    allocator.release()
    assert _rss_bytes() - before < 50 * MiB


@glibc_only
def test_measured_peak_does_not_include_memory_an_earlier_block_left() -> None:
    assert allocator.tune()
    before = _trimmed_rss()
    _touch_and_free(24, 8)  # an earlier, larger cell
    with measure("cpu") as m:
        torch.ones(MiB // 4).sum()
    assert m.peak_bytes - before < 50 * MiB


def test_tuning_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_tuned", False)  # as in a fresh process
    monkeypatch.setenv("BENCHSUITE_MALLOC_TUNING", "0")
    assert allocator.disabled()
    assert allocator.tune() is False
    assert allocator._tuned is False

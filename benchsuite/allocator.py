"""Keep freed tensor memory in the process between training steps (glibc on Linux).

glibc serves large allocations with fresh ``mmap`` calls and hands freed heap memory back to the
kernel once the free top of the heap passes a threshold. A training step on the CPU allocates and
frees tens of megabytes of activations and gradients, so every step faults the same memory in
again, page by page. Raising both thresholds keeps that memory in the heap for the next step:
evaluating an IPC-1 ConvNet-3 model trains 15-20% faster on the project's 2-core CPU (README,
"Evaluator speed"). No result changes: only where the bytes come from.

The runner calls ``release`` before each measured phase, so memory kept from an earlier, larger
cell is returned first and every record's peak memory is that cell's own.
``BENCHSUITE_MALLOC_TUNING=0`` leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc caps the mmap threshold at 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX); above it
# mallopt refuses. ConvNet-3 activations of a 256-image batch are under that.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024

_libc: ctypes.CDLL | None = None
_tuned = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            _libc = ctypes.CDLL("libc.so.6")
        except OSError:
            _libc = None
    return _libc


def disabled() -> bool:
    return os.environ.get("BENCHSUITE_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off")


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; ``True`` when they are raised.

    Elsewhere (macOS, musl, or turned off) nothing happens and the suite runs as it would anyway.
    """
    global _tuned
    libc = _glibc()
    if libc is None or disabled():
        return False
    if not _tuned:
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def release() -> None:
    """Return the heap's free memory to the kernel (after ``tune``, it would otherwise be kept)."""
    libc = _glibc()
    if libc is not None and _tuned:
        libc.malloc_trim(0)

"""Wall time and peak memory of a block of work, on CUDA or the CPU."""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass

import torch


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; falls back to the lifetime peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_bytes: int = 0
    memory_kind: str = "rss"  # "rss": peak resident memory of the process; "cuda": peak allocated


class measure:
    """Context manager: ``with measure(device) as m: ...`` then ``m.seconds``, ``m.peak_bytes``.

    On CUDA the peak is ``torch.cuda.max_memory_allocated`` since entry. On the CPU a background
    thread samples the process's resident memory every ``interval`` seconds, because the kernel's
    lifetime peak (``ru_maxrss``) cannot be reset between cells.
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.05) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.result = Measurement(memory_kind="cuda" if self.device.type == "cuda" else "rss")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __enter__(self) -> Measurement:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self.result

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.result.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.result.peak_bytes = max(self._peak, _rss_bytes())
        self.result.seconds = time.perf_counter() - self._t0

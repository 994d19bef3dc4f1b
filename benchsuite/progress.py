"""Terminal progress: one bar per phase of a cell (distill, evaluate), quiet when asked."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """A ``progress(step, total, **info)`` callable backed by a tqdm bar (or nothing when quiet).

    Postfix updates are throttled: methods may report every iteration, and redrawing the terminal
    on each call would cost more than a small step.
    """

    def __init__(self, desc: str, quiet: bool = False, min_interval: float = 0.5) -> None:
        self.quiet = quiet
        self.desc = desc
        self.min_interval = min_interval
        self._bar: tqdm | None = None
        self._last = 0.0

    def __call__(self, step: int, total: int | None = None, **info: Any) -> None:
        if self.quiet:
            return
        if self._bar is None:
            # Off a terminal (logs, nohup) redraws become lines: keep them rare.
            interactive = sys.stderr.isatty()
            self._bar = tqdm(total=total, desc=self.desc, file=sys.stderr, leave=not interactive, dynamic_ncols=True,
                             mininterval=0.1 if interactive else 30.0,
                             bar_format="{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
        bar = self._bar
        if total is not None and bar.total != total:
            bar.total = total
        now = time.monotonic()
        interval = self.min_interval if sys.stderr.isatty() else 30.0
        if now - self._last < interval and step != total:
            bar.n = step
            return
        self._last = now
        if info:
            bar.set_postfix_str(" ".join(f"{k}={_fmt(v)}" for k, v in info.items()), refresh=False)
        bar.n = step
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def say(message: str, quiet: bool = False) -> None:
    """A line to the terminal that does not break an active bar."""
    if not quiet:
        tqdm.write(message, file=sys.stderr)

"""Checks a record must pass when it is read: numbers no run of the suite can produce.

A record that is well-formed JSON of the right types can still be impossible: an accuracy of 250,
a set of IPC 1 with two images in a class, an evaluation whose parts took longer than the whole.
Such a record was edited by hand or written by something other than the suite, so nothing it says
can be trusted: :func:`benchsuite.records.read_records` leaves it out (of the tables, and of resume,
so its cell runs again) and names its line.

The checks read only the record, plus an optional map of the installed methods to whether each is
a container (HMN decodes to more images per class than IPC): without it a ``distill`` record's
classes are checked for balance only, since the record alone does not say whether its method is a
container.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # records imports this module; the checks only read a record's fields
    from benchsuite.records import RunRecord

ACCURACY_RANGE = (0.0, 100.0)
# Rounding (records keep 3 decimals) and the moments between the timed parts of an evaluation
# make their sum differ a little from the whole; beyond this it is not a measurement.
EVAL_SLACK_SECONDS = 1.0
EVAL_SLACK_FRACTION = 0.05
SECONDS_FIELDS = ("distill_seconds", "eval_seconds", "eval_train_seconds", "eval_test_seconds")


def record_problems(record: "RunRecord", containers: Mapping[str, bool] | None = None) -> list[str]:
    """What makes ``record`` impossible, in words (empty when it passes).

    ``containers`` maps installed method names to their class's ``container`` flag; a method not
    in it is treated as unknown.
    """
    return [*_accuracy(record), *_per_class(record, containers), *_timings(record)]


def _accuracy(r: "RunRecord") -> list[str]:
    if r.accuracy is None:
        return []
    lo, hi = ACCURACY_RANGE
    out = []
    bad = [v for v in r.accuracy.values if not lo <= v <= hi]
    if bad:
        out.append(f"accuracy value {_n(bad[0])} is outside [{lo:g}, {hi:g}]")
    if r.accuracy.mean is not None and not lo <= r.accuracy.mean <= hi:
        out.append(f"accuracy mean {_n(r.accuracy.mean)} is outside [{lo:g}, {hi:g}]")
    return out


def _per_class(r: "RunRecord", containers: Mapping[str, bool] | None) -> list[str]:
    counts = r.images_per_class
    out = []
    if counts is not None and r.num_images is not None and sum(counts) != r.num_images:
        out.append(f"num_images {r.num_images} is not the sum of images_per_class ({sum(counts)})")
    if not counts or r.ipc <= 0:
        return out  # an IPC-independent set (the whole train set) has the train set's counts
    container = (containers or {}).get(r.method)
    if container is None and r.method_kind == "select":
        container = False  # a selection picks real images: never a container
    if container is False:
        if any(c != r.ipc for c in counts):
            out.append(f"images_per_class {_short(counts)} is not {r.ipc} in every class (IPC {r.ipc})")
    elif len(set(counts)) != 1 or counts[0] < 1:
        out.append(f"images_per_class {_short(counts)} is not balanced (the same number in every class)")
    return out


def _timings(r: "RunRecord") -> list[str]:
    out = [f"{name} is negative ({_n(getattr(r, name))})" for name in SECONDS_FIELDS
           if getattr(r, name) is not None and getattr(r, name) < 0]
    whole, train, test = r.eval_seconds, r.eval_train_seconds, r.eval_test_seconds
    if whole is not None and train is not None and test is not None and whole >= 0:
        if train + test > whole + max(EVAL_SLACK_SECONDS, EVAL_SLACK_FRACTION * whole):
            out.append(f"eval_train_seconds + eval_test_seconds ({_n(train + test)}) exceed eval_seconds "
                       f"({_n(whole)})")
    started, finished = _time(r.started_at), _time(r.finished_at)
    for name, raw, parsed in (("started_at", r.started_at, started), ("finished_at", r.finished_at, finished)):
        if raw is not None and parsed is None:
            out.append(f"{name} {raw!r} is not an ISO 8601 time")
    if started is not None and finished is not None:
        try:
            backwards = finished < started
        except TypeError:  # one with a time zone, one without: not comparable, not wrong
            backwards = False
        if backwards:
            out.append(f"finished_at {r.finished_at} is before started_at {r.started_at}")
    return out


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _n(value: float) -> str:
    return f"{value:g}"


def _short(counts: list[int]) -> str:
    return str(counts) if len(counts) <= 12 else f"[{', '.join(map(str, counts[:12]))}, ...]"

"""Retrying a write transaction that lost a race with another writer (PostgreSQL).

Two writers that touch the same rows can deadlock (SQLSTATE 40P01: PostgreSQL aborts one of them) or,
under REPEATABLE READ / SERIALIZABLE, fail to serialise (40001). Neither is the data's fault: the
transaction was rolled back whole and running it again is the documented remedy. Writers also take
their row locks in key order (:func:`key_ordered`), which removes the usual deadlock between two
batches of the same table; the retry covers the rest (locks taken through foreign keys, other tables).

SQLite has one writer at a time; a busy store waits ``busy_timeout`` inside SQLite and is not retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tactful.store.failures import driver_error

T = TypeVar("T")

#: SQLSTATEs of a transaction PostgreSQL rolled back because of a concurrent one
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 8  # the first try and 7 retries
BASE_DELAY_S = 0.05  # doubled each retry, with jitter: 0.05, 0.1, 0.2 ... 3.2 s (about 6 s at worst)
MAX_DELAY_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a deadlock or serialization failure, whatever wraps it."""
    err = driver_error(exc)
    return err is not None and getattr(err, "sqlstate", None) in TRANSIENT_SQLSTATES


def retrying(
    attempt: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    base_delay: float = BASE_DELAY_S,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Call ``attempt`` (one whole transaction, rolled back when it raises) until it does not raise
    a transient error, at most ``attempts`` times, sleeping with exponential back-off and jitter in
    between. Any other error, and the last transient one, is raised as is."""
    for n in range(1, attempts + 1):
        try:
            return attempt()
        except Exception as exc:
            if n >= attempts or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(n, exc)
            sleep(min(MAX_DELAY_S, base_delay * 2 ** (n - 1)) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def key_ordered(rows_by_key: dict[Any, T]) -> list[T]:
    """The rows of a batch in key order: every writer then locks shared rows in the same order, so two
    batches of overlapping keys wait for each other instead of deadlocking."""
    try:
        return [rows_by_key[k] for k in sorted(rows_by_key)]
    except TypeError:  # keys that do not compare (None in a key): order by their text instead
        return [rows_by_key[k] for k in sorted(rows_by_key, key=repr)]

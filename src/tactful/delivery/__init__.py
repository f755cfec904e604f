"""Delivering the outbox through pluggable adapters (files per channel, SMTP).

:func:`deliver` reads the pending messages, hands each to the adapter for its channel, retries
temporary failures with exponential back-off (tenacity), and records every outcome in the store: sent
messages become past touches, bounces mark the contact point, failures keep their error.

Outcomes are recorded in batches (:data:`BATCH` messages, one transaction, set-wise statements) for
the adapters that are idempotent (the CSV and .eml files: a message already written whole is not
written again when a killed delivery is resumed); the outcome of a message sent through an adapter
that cannot tell (SMTP, mbox) is recorded right after it, with the batch before it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from tactful.delivery.base import Adapter, Bounce, DeliveryFailure, PermanentFailure, TemporaryFailure
from tactful.delivery.files import EmlDirectory, Mbox, PrintShopCsv, SmsCsv
from tactful.delivery.smtp import Smtp
from tactful.errors import DeliveryError
from tactful.store import outbox

__all__ = [
    "Adapter",
    "Bounce",
    "DeliveryFailure",
    "DeliveryReport",
    "EmlDirectory",
    "Mbox",
    "PermanentFailure",
    "PrintShopCsv",
    "RetryPolicy",
    "SmsCsv",
    "Smtp",
    "TemporaryFailure",
    "deliver",
]


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries per message, waiting ``initial`` seconds, doubling up to ``maximum``."""

    attempts: int = 4
    initial: float = 1.0
    maximum: float = 30.0


@dataclass
class DeliveryReport:
    counts: Counter[str] = field(default_factory=Counter)  # sent | bounced | failed | no-adapter
    errors: list[tuple[str, str]] = field(default_factory=list)  # (customer id, what went wrong)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


#: pending messages read from the outbox at a time
PAGE = 5_000
#: outcomes recorded per transaction (idempotent adapters): what a kill can leave sent but unrecorded
BATCH = 1_000


def _adapter_for(adapters: Sequence[Adapter], channel: str) -> Adapter | None:
    for adapter in adapters:
        if any(c.value == channel for c in adapter.channels):
            return adapter
    return None


def deliver(engine: Engine, adapters: Sequence[Adapter], *, run_id: str | None = None,
            retry: RetryPolicy | None = None, show_progress: bool = False,
            campaign: str | None = None, period: str | None = None, batch: int = BATCH) -> DeliveryReport:
    """Deliver the pending messages (of ``run_id``, of one ``campaign`` and ``period``, or all) and
    record each outcome in the store.

    A message whose channel has no adapter stays pending (counted as ``no-adapter``). A message to a
    contact point already marked bounced is not sent again (``failed``). Outcomes are recorded in
    batches of ``batch`` messages (every adapter flushed first), right after the message for an adapter
    that is not ``idempotent``. Adapters are closed at the end.
    """
    if not adapters:
        raise DeliveryError("no delivery adapter was given", hint="give files (--out DIR) or SMTP")
    if batch < 1:
        raise DeliveryError(f"batch: expected a positive number of messages, got {batch}")
    policy = retry or RetryPolicy()
    retrying = Retrying(stop=stop_after_attempt(policy.attempts), reraise=True,
                        wait=wait_exponential(multiplier=policy.initial, max=policy.maximum),
                        retry=retry_if_exception_type(TemporaryFailure))
    by_channel = {c.value: _adapter_for(adapters, c.value) for a in adapters for c in a.channels}
    report = DeliveryReport()
    total = outbox.count_pending(engine, run_id=run_id, campaign=campaign, period=period)
    progress = Progress(TextColumn("delivering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not show_progress, transient=True)
    done: list[outbox.Outcome] = []

    def record() -> None:
        """Flush every adapter, then record the outcomes so far in one transaction."""
        if not done:
            return
        for adapter in adapters:
            adapter.flush()
        with engine.begin() as conn:
            outbox.record_outcomes(conn, done)
        done.clear()

    try:
        with progress:
            task = progress.add_task("deliver", total=total)
            last: int | None = None
            while True:  # page by page, oldest first: a million queued messages are never all in memory
                messages = outbox.pending(engine, run_id=run_id, campaign=campaign, period=period,
                                          after=last, limit=PAGE)
                for message in messages:
                    adapter = by_channel.get(message.channel)
                    if adapter is None:
                        report.counts["no-adapter"] += 1
                    else:
                        done.append(_deliver_one(adapter, message, retrying, report))
                        if not adapter.idempotent or len(done) >= batch:
                            record()
                    progress.advance(task)
                record()
                if len(messages) < PAGE:
                    break
                last = messages[-1].id
    except BaseException:
        # an adapter or the store failed (a full disk, a lost connection) or the user interrupted: the
        # outcomes so far are still recorded when that works, else the next delivery finds the
        # messages in the files (idempotent adapters) and does not write them again
        with contextlib.suppress(Exception):
            record()
        raise
    finally:
        for adapter in adapters:
            adapter.close()
    return report


def _deliver_one(adapter: Adapter, message: outbox.Pending, retrying: Retrying,
                 report: DeliveryReport) -> outbox.Outcome:
    """Send one message (retrying temporary failures) and say what came of it."""
    if message.address_bounced:
        report.counts["failed"] += 1
        return outbox.Outcome(message.id, outbox.FAILED, adapter.name, 0,
                              "the contact point has bounced before; not sent again")
    tries = 0
    try:
        for attempt in retrying:
            with attempt:
                tries = attempt.retry_state.attempt_number
                adapter.send(message)
    except Bounce as exc:
        report.counts["bounced"] += 1
        report.errors.append((message.customer_id, f"bounced: {exc}"))
        return outbox.Outcome(message.id, outbox.BOUNCED, adapter.name, tries, str(exc))
    except DeliveryFailure as exc:
        report.counts["failed"] += 1
        report.errors.append((message.customer_id, str(exc)))
        return outbox.Outcome(message.id, outbox.FAILED, adapter.name, tries,
                              f"{exc} (after {tries} attempt(s))")
    report.counts["sent"] += 1
    return outbox.Outcome(message.id, outbox.SENT, adapter.name, tries)

"""Delivering the outbox through pluggable adapters (files per channel, SMTP).

:func:`deliver` reads the pending messages, hands each to the adapter for its channel, retries
temporary failures with exponential back-off (tenacity), and records every outcome in the store: sent
messages become past touches, bounces mark the contact point, failures keep their error.
"""

from __future__ import annotations

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


def _adapter_for(adapters: Sequence[Adapter], channel: str) -> Adapter | None:
    for adapter in adapters:
        if any(c.value == channel for c in adapter.channels):
            return adapter
    return None


def deliver(engine: Engine, adapters: Sequence[Adapter], *, run_id: str | None = None,
            retry: RetryPolicy | None = None, show_progress: bool = False,
            campaign: str | None = None, period: str | None = None) -> DeliveryReport:
    """Deliver the pending messages (of ``run_id``, of one ``campaign`` and ``period``, or all) and
    record each outcome in the store.

    A message whose channel has no adapter stays pending (counted as ``no-adapter``). A message to a
    contact point already marked bounced is not sent again (``failed``). Adapters are closed at the end.
    """
    if not adapters:
        raise DeliveryError("no delivery adapter was given", hint="give files (--out DIR) or SMTP")
    policy = retry or RetryPolicy()
    report = DeliveryReport()
    total = outbox.count_pending(engine, run_id=run_id, campaign=campaign, period=period)
    progress = Progress(TextColumn("delivering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not show_progress, transient=True)
    try:
        with progress:
            task = progress.add_task("deliver", total=total)
            last: int | None = None
            while True:  # page by page, oldest first: a million queued messages are never all in memory
                messages = outbox.pending(engine, run_id=run_id, campaign=campaign, period=period,
                                          after=last, limit=PAGE)
                for message in messages:
                    _deliver_one(engine, adapters, message, policy, report)
                    progress.advance(task)
                if len(messages) < PAGE:
                    break
                last = messages[-1].id
    finally:
        for adapter in adapters:
            adapter.close()
    return report


def _deliver_one(engine: Engine, adapters: Sequence[Adapter], message: outbox.Pending, policy: RetryPolicy,
                 report: DeliveryReport) -> None:
    adapter = _adapter_for(adapters, message.channel)
    if adapter is None:
        report.counts["no-adapter"] += 1
        return
    if message.address_bounced:
        with engine.begin() as conn:
            outbox.mark_failed(conn, message.id, adapter=adapter.name, attempts=0,
                               error="the contact point has bounced before; not sent again")
        report.counts["failed"] += 1
        return
    tries = 0
    retrying = Retrying(stop=stop_after_attempt(policy.attempts), reraise=True,
                        wait=wait_exponential(multiplier=policy.initial, max=policy.maximum),
                        retry=retry_if_exception_type(TemporaryFailure))
    try:
        for attempt in retrying:
            with attempt:
                tries = attempt.retry_state.attempt_number
                adapter.send(message)
    except Bounce as exc:
        with engine.begin() as conn:
            outbox.mark_bounced(conn, message.id, adapter=adapter.name, attempts=tries, error=str(exc))
        report.counts["bounced"] += 1
        report.errors.append((message.customer_id, f"bounced: {exc}"))
        return
    except DeliveryFailure as exc:
        with engine.begin() as conn:
            outbox.mark_failed(conn, message.id, adapter=adapter.name, attempts=tries,
                               error=f"{exc} (after {tries} attempt(s))")
        report.counts["failed"] += 1
        report.errors.append((message.customer_id, str(exc)))
        return
    with engine.begin() as conn:
        outbox.mark_sent(conn, message.id, adapter=adapter.name, attempts=tries)
    report.counts["sent"] += 1

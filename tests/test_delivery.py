"""Delivery: the print-shop CSV, the .eml set, and SMTP against a real SMTP server (aiosmtpd) on
127.0.0.1 — retries with back-off, bounces recorded on the contact point, files owner-only."""

from __future__ import annotations

import csv
import email
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from tactful.compose import Message, compose, demo_messages
from tactful.delivery import EmlDirectory, PrintShopCsv, RetryPolicy, Smtp, deliver
from tactful.errors import DeliveryError
from tactful.model import ContactPoint, Customer
from tactful.policy import evaluate, load_pack
from tactful.policy.testing import scenario
from tactful.store import db, outbox, tables
from tactful.testing.store import seed
from tactful.vocab import Channel, Depth

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)
EMAIL = "marketing.communications.email"
POSTAL = "marketing.communications.postal"


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = db.init_store(f"sqlite:///{tmp_path}/tactful.db")
    seed(engine, [
        Customer(id="c1", first_name="Jane", last_name="Doe"),
        Customer(id="c2", first_name="Omar"),
        Customer(id="c3", first_name="Flo"),
        ContactPoint(id="e1", customer_id="c1", kind="email", value="jane@example.org",
                     shared_with="private"),
        ContactPoint(id="e2", customer_id="c2", kind="email", value="nobody@example.org",
                     shared_with="private"),
        ContactPoint(id="e3", customer_id="c3", kind="email", value="flaky@example.org",
                     shared_with="private"),
        ContactPoint(id="p1", customer_id="c1", kind="postal", value="1 Main St, Springfield",
                     shared_with="private"),
    ])
    yield engine
    engine.dispose()


def _queue(engine: Engine, rows: list[tuple[str, str, Channel]], html: bool = False) -> str:
    """Queue a real composed message per (customer, contact point, channel); returns the run id."""
    m = demo_messages()
    with engine.begin() as conn:
        run = outbox.start_run(conn, campaign="spring", period="2026-11", policy_name="default",
                               policy_version="1")
        entries = []
        for i, (customer, to, channel) in enumerate(rows):
            postal = channel is not Channel.EMAIL
            sc = scenario(touch={"channel": channel.value, "to": "home" if postal else "mail",
                                 "purpose": POSTAL if postal else EMAIL})
            msg = compose(m.templates, evaluate(sc, load_pack()),
                          m.data(items=["Bread <b>& butter</b>", "Milk"]), channel=channel,
                          proposed_depth=Depth.ITEM, sender=m.shop)
            assert isinstance(msg, Message)
            if html:
                msg = Message(**{**msg.__dict__, "html": True, "body": f"<p>{msg.body}</p>"})
            entries.append(outbox.OutboxEntry(campaign="spring", customer_id=customer, touch_id=f"t{i}",
                                              touch_kind="offer", purpose=POSTAL if postal else EMAIL,
                                              period="2026-11", run_id=run, contact_point_id=to, message=msg))
        outbox.enqueue(conn, entries)
    return run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _statuses(engine: Engine) -> dict[str, tuple[str, int, str | None]]:
    o = tables.outbox
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            sa.select(o.c.customer_id, o.c.status, o.c.attempts, o.c.last_error))}


# --------------------------------------------------------------------------- files


def test_print_shop_csv_and_eml_files(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "p1", Channel.POSTAL_MAIL), ("c1", "e1", Channel.EMAIL)])
    out = tmp_path / "out" / run
    adapters = [PrintShopCsv(out), EmlDirectory(out / "email", from_address="offers@shop.example")]
    report = deliver(store, adapters, run_id=run, retry=FAST)
    assert report.counts == {"sent": 2}
    sheet = out / "print-shop.csv"
    assert _mode(sheet) == 0o600 and _mode(out) == 0o700
    with sheet.open(encoding="utf-8", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["format"] == "sealed letter" and row["recipient"] == "Jane Doe"
    assert row["address"] == "1 Main St, Springfield" and row["sender"] == "Corner Grocery"
    assert "Bread <b>& butter</b>" in row["body"]  # a letter is plain text
    (eml,) = (out / "email").glob("*.eml")
    assert _mode(eml) == 0o600
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert parsed["To"] == "jane@example.org" and "offers@shop.example" in parsed["From"]
    assert parsed["Subject"] == "Picked for you at Corner Grocery"
    assert parsed["Message-ID"] == f"<{eml.stem}@tactful.invalid>"
    body = parsed.get_body()
    assert body is not None and "Milk" in body.get_content()
    # sent messages are past touches now, and nothing is pending: a second delivery sends nothing
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.touches)).scalar_one() == 2
    again = deliver(store, [EmlDirectory(out / "email")], run_id=run, retry=FAST)
    assert again.total == 0 and len(list((out / "email").glob("*.eml"))) == 1


def test_a_file_adapter_never_overwrites_a_file(store: Engine, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "print-shop.csv").write_text("someone else's file\n")
    (out / "print-shop-2.csv").symlink_to(tmp_path / "elsewhere.csv")  # not followed either
    run = _queue(store, [("c1", "p1", Channel.POSTAL_MAIL)])
    report = deliver(store, [PrintShopCsv(out)], run_id=run, retry=FAST)
    assert report.counts == {"sent": 1}
    assert (out / "print-shop.csv").read_text() == "someone else's file\n"
    assert not (tmp_path / "elsewhere.csv").exists()
    # the rows go into the next free name, created owner-only
    with (out / "print-shop-3.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["customer_id"] for r in rows] == ["c1"]
    assert _mode(out / "print-shop-3.csv") == 0o600
    assert _statuses(store)["c1"][0] == "sent"


def test_an_eml_already_written_for_the_same_key_is_not_written_again(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "e1", Channel.EMAIL)])
    (pending,) = outbox.pending(store, run_id=run)
    out = tmp_path / "eml"
    first = EmlDirectory(out)
    first.send(pending)  # a crash after writing, before the outbox was updated
    before = (out / f"{pending.key}.eml").read_bytes()
    report = deliver(store, [EmlDirectory(out)], run_id=run, retry=FAST)
    assert report.counts == {"sent": 1}
    assert (out / f"{pending.key}.eml").read_bytes() == before


@pytest.mark.parametrize("cut", ["in-the-body", "in-the-key", "before-the-line-end"])
def test_a_resumed_delivery_writes_no_complete_csv_row_again(store: Engine, tmp_path: Path, cut: str) -> None:
    """A delivery killed after writing rows and before recording them, one row cut short at the end of
    the file: delivering again into the directory writes only the cut row again (whole, into the next
    file), never a row that is complete; the existing file is not touched."""
    run = _queue(store, [("c1", "p1", Channel.POSTAL_MAIL)] * 3)
    messages = outbox.pending(store, run_id=run)
    out = tmp_path / "out"
    killed = PrintShopCsv(out)
    for m in messages:
        killed.send(m)
    killed.close()  # the rows reached the file; the outbox was never updated
    sheet = out / "print-shop.csv"
    data = sheet.read_bytes()
    start = data.rfind(b"\r\n", 0, len(data) - 2) + 2  # where the last row begins
    at = {"in-the-body": len(data) - 40, "in-the-key": start + 30, "before-the-line-end": len(data) - 1}[cut]
    sheet.write_bytes(data[:at])  # the kill came while the last row was being written
    cut = sheet.read_bytes()
    report = deliver(store, [PrintShopCsv(out)], run_id=run, retry=FAST)
    assert report.counts == {"sent": 3}
    assert sheet.read_bytes() == cut
    with (out / "print-shop-2.csv").open(encoding="utf-8", newline="") as fh:
        again = list(csv.DictReader(fh))
    assert [r["outbox_key"] for r in again] == [messages[-1].key]
    assert again[0]["body"] == messages[-1].body  # whole
    # and once everything is recorded, a third delivery has nothing to do
    assert deliver(store, [PrintShopCsv(out)], run_id=run, retry=FAST).total == 0
    assert not (out / "print-shop-3.csv").exists()


def test_messages_written_by_an_earlier_delivery_elsewhere_are_not_written_again(
        store: Engine, tmp_path: Path) -> None:
    """A killed run wrote into its own directory; a new run delivering into another directory, told
    where the killed run wrote (``earlier``), writes only what is not there."""
    run = _queue(store, [("c1", "p1", Channel.POSTAL_MAIL), ("c1", "e1", Channel.EMAIL),
                         ("c1", "p1", Channel.POSTAL_MAIL), ("c1", "e1", Channel.EMAIL)])
    first, second, third, fourth = outbox.pending(store, run_id=run)
    killed = tmp_path / "runs" / "killed"
    sheet, eml = PrintShopCsv(killed), EmlDirectory(killed / "email")
    sheet.send(first)
    eml.send(second)
    sheet.close()
    eml.close()
    rerun = tmp_path / "runs" / "rerun"
    report = deliver(store, [PrintShopCsv(rerun, earlier=[killed]),
                             EmlDirectory(rerun / "email", earlier=[killed / "email"])],
                     run_id=run, retry=FAST)
    assert report.counts == {"sent": 4}
    with (rerun / "print-shop.csv").open(encoding="utf-8", newline="") as fh:
        assert [r["outbox_key"] for r in csv.DictReader(fh)] == [third.key]
    assert [p.stem for p in (rerun / "email").glob("*.eml")] == [fourth.key]
    assert sorted(p.name for p in killed.iterdir()) == ["email", "print-shop.csv"]  # only read


def test_a_csv_that_is_not_ours_does_not_count_as_delivered(store: Engine, tmp_path: Path) -> None:
    """Keys in a file of another shape (someone else's print-shop.csv) are not taken as delivered."""
    run = _queue(store, [("c1", "p1", Channel.POSTAL_MAIL)])
    (message,) = outbox.pending(store, run_id=run)
    out = tmp_path / "out"
    out.mkdir()
    (out / "print-shop.csv").write_text(f"key,note\r\n{message.key},printed\r\n", encoding="utf-8")
    assert deliver(store, [PrintShopCsv(out)], run_id=run, retry=FAST).counts == {"sent": 1}
    with (out / "print-shop-2.csv").open(encoding="utf-8", newline="") as fh:
        assert [r["outbox_key"] for r in csv.DictReader(fh)] == [message.key]


def test_part_files_of_a_killed_delivery_are_removed_and_nothing_else(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "e1", Channel.EMAIL)])
    (message,) = outbox.pending(store, run_id=run)
    out = tmp_path / "eml"
    out.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = out / f".{message.key}.eml.{int(gone.stdout)}.part"  # left by a process that was killed
    alive = out / f".{'b' * 64}.eml.{os.getppid()}.part"  # a delivery still running
    other = out / "notes.part"
    for f in (dead, alive, other):
        f.write_text("x")
    assert deliver(store, [EmlDirectory(out)], run_id=run, retry=FAST).counts == {"sent": 1}
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".eml") == [f"{message.key}.eml"]


def test_email_with_non_ascii_text_round_trips(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "e1", Channel.EMAIL)])
    with store.begin() as conn:
        conn.execute(tables.outbox.update().values(sender="Épicerie du Coin", subject="Pour vous, Zoë — " * 8,
                                                   body="Bonjour Zoë,\n" + "é" * 300 + "\nÀ bientôt"))
    deliver(store, [EmlDirectory(tmp_path / "eml", from_address="offers@shop.example")], run_id=run,
            retry=FAST)
    (eml,) = (tmp_path / "eml").glob("*.eml")
    assert eml.read_bytes().isascii()  # 7-bit clean: encoded words and quoted-printable
    assert max(len(line) for line in eml.read_bytes().splitlines()) <= 998
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert parsed["From"] == "Épicerie du Coin <offers@shop.example>"
    assert parsed["Subject"] == "Pour vous, Zoë — " * 8
    body = parsed.get_body()
    assert body is not None and body.get_content() == "Bonjour Zoë,\n" + "é" * 300 + "\nÀ bientôt"


def test_a_line_break_in_a_header_fails_the_message(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "e1", Channel.EMAIL)])
    with store.begin() as conn:
        conn.execute(tables.outbox.update().values(subject="Hi\nBcc: everyone@example.org"))
    report = deliver(store, [EmlDirectory(tmp_path / "eml")], run_id=run, retry=FAST)
    assert report.counts == {"failed": 1} and "line break in the subject" in report.errors[0][1]
    assert not list((tmp_path / "eml").glob("*.eml"))


def test_html_email_bodies_go_out_as_html(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "e1", Channel.EMAIL)], html=True)
    deliver(store, [EmlDirectory(tmp_path / "eml")], run_id=run, retry=FAST)
    (eml,) = (tmp_path / "eml").glob("*.eml")
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert parsed.get_content_type() == "text/html"


def test_a_long_outbox_is_delivered_page_by_page_each_message_once(store: Engine, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Pending messages are read a page at a time (PAGE, here 2): all five go out, each once, in
    order, and one whose channel has no adapter stays pending without stopping the pages after it."""
    import tactful.delivery as delivery

    monkeypatch.setattr(delivery, "PAGE", 2)
    rows = [("c1", "e1", Channel.EMAIL), ("c1", "p1", Channel.POSTAL_MAIL), ("c1", "e1", Channel.EMAIL),
            ("c1", "e1", Channel.EMAIL), ("c1", "e1", Channel.EMAIL)]
    run = _queue(store, rows)
    report = deliver(store, [EmlDirectory(tmp_path / "eml")], run_id=run, retry=FAST)
    assert report.counts == {"sent": 4, "no-adapter": 1}
    assert len(list((tmp_path / "eml").glob("*.eml"))) == 4
    o = tables.outbox
    with store.connect() as conn:
        status = dict(conn.execute(sa.select(o.c.touch_id, o.c.status)).all())
    assert status == {"t0": "sent", "t1": "pending", "t2": "sent", "t3": "sent", "t4": "sent"}


class _FullDisk(EmlDirectory):
    """The .eml adapter on a disk that fills up at the third message."""

    def send(self, message: Any) -> None:
        if self.written == 2:
            raise OSError(28, "No space left on device")
        super().send(message)


def test_an_adapter_error_stops_delivery_and_keeps_what_went_out(store: Engine, tmp_path: Path) -> None:
    """An error that is not a delivery failure stops the delivery (it is not a property of one
    message); the messages written before it are recorded as sent, the rest stay pending."""
    run = _queue(store, [("c1", "e1", Channel.EMAIL)] * 4)
    with pytest.raises(OSError, match="No space left"):
        deliver(store, [_FullDisk(tmp_path / "eml")], run_id=run, retry=FAST)
    o = tables.outbox
    with store.connect() as conn:
        status = dict(conn.execute(sa.select(o.c.touch_id, o.c.status)).all())
    assert status == {"t0": "sent", "t1": "sent", "t2": "pending", "t3": "pending"}
    assert len(list((tmp_path / "eml").glob("*.eml"))) == 2


def test_a_channel_without_an_adapter_stays_pending(store: Engine, tmp_path: Path) -> None:
    run = _queue(store, [("c1", "p1", Channel.POSTAL_MAIL)])
    report = deliver(store, [EmlDirectory(tmp_path / "eml")], run_id=run, retry=FAST)
    assert report.counts == {"no-adapter": 1}
    assert _statuses(store)["c1"][0] == "pending"
    with pytest.raises(DeliveryError, match="no delivery adapter"):
        deliver(store, [], run_id=run)


# --------------------------------------------------------------------------- SMTP on loopback


class Handler:
    """A mail server that bounces nobody@, answers 451 twice to flaky@, and keeps what it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.flaky_tries = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.org>: no such user"
        if address.startswith("flaky@"):
            self.flaky_tries += 1
            if self.flaky_tries <= 2:
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def smtp_server() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_smtp_sends_retries_and_records_bounces(store: Engine, smtp_server: tuple[Handler, int]) -> None:
    handler, port = smtp_server
    run = _queue(store, [("c1", "e1", Channel.EMAIL), ("c2", "e2", Channel.EMAIL),
                         ("c3", "e3", Channel.EMAIL)])
    started = datetime.now(UTC)
    report = deliver(store, [Smtp("127.0.0.1", port, from_address="offers@shop.example")], run_id=run,
                     retry=FAST)
    assert report.counts == {"sent": 2, "bounced": 1}
    status = _statuses(store)
    assert status["c1"] == ("sent", 1, None)
    assert status["c3"] == ("sent", 3, None)  # two 451 answers, then accepted
    assert status["c2"][0] == "bounced" and "550" in str(status["c2"][2])
    # the server got exactly one copy of each accepted message
    assert sorted(r[1][0] for r in handler.received) == ["flaky@example.org", "jane@example.org"]
    jane = next(email.message_from_bytes(c, policy=email_policy.default) for _, to, c in handler.received
                if to == ["jane@example.org"])
    assert jane["Subject"] == "Picked for you at Corner Grocery"
    assert jane["Message-ID"].endswith("@tactful.invalid>")
    with store.connect() as conn:
        cp = tables.contact_points
        bounced = dict(conn.execute(sa.select(cp.c.id, cp.c.bounced)).all())
        touches = conn.execute(sa.select(tables.touches.c.customer_id, tables.touches.c.at)).all()
    assert bounced == {"e1": False, "e2": True, "e3": False, "p1": False}
    assert sorted(t[0] for t in touches) == ["c1", "c3"]
    assert all(t[1].replace(tzinfo=UTC) >= started.replace(microsecond=0) for t in touches)


def test_smtp_outcomes_are_recorded_message_by_message(store: Engine,
                                                         smtp_server: tuple[Handler, int]) -> None:
    """SMTP cannot be asked whether it has a message: each outcome is in the store before the next
    message goes out, so a kill sends at most the message in flight twice (not a batch)."""
    handler, port = smtp_server
    run = _queue(store, [("c1", "e1", Channel.EMAIL), ("c3", "e3", Channel.EMAIL),
                         ("c1", "e1", Channel.EMAIL)])
    handler.flaky_tries = 2  # flaky@ is accepted at once
    seen: list[list[str]] = []

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        seen.append(sorted(s for s, _, _ in _statuses_by_touch(store)))
        handler.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    handler.handle_DATA = handle_data  # type: ignore[method-assign]
    report = deliver(store, [Smtp("127.0.0.1", port, from_address="offers@shop.example")], run_id=run,
                     retry=FAST)
    assert report.counts == {"sent": 3}
    assert seen == [["pending", "pending", "pending"], ["pending", "pending", "sent"],
                    ["pending", "sent", "sent"]]


def _statuses_by_touch(engine: Engine) -> list[tuple[str, str, int]]:
    o = tables.outbox
    with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(sa.select(o.c.status, o.c.touch_id, o.c.id))]


def test_smtp_gives_up_after_its_retries_when_the_server_is_down(store: Engine) -> None:
    port = _free_port()  # nothing listens there
    run = _queue(store, [("c1", "e1", Channel.EMAIL)])
    report = deliver(store, [Smtp("127.0.0.1", port, from_address="offers@shop.example", timeout=2)],
                     run_id=run, retry=FAST)
    assert report.counts == {"failed": 1}
    state, attempts, error = _statuses(store)["c1"]
    assert (state, attempts) == ("failed", FAST.attempts)
    assert error is not None and "cannot connect" in error and f"after {FAST.attempts} attempt(s)" in error
    with store.connect() as conn:  # not sent: no past touch, contact point not bounced
        assert conn.execute(sa.select(tables.touches.c.id)).first() is None
        assert conn.execute(sa.select(tables.contact_points.c.bounced)
                            .where(tables.contact_points.c.id == "e1")).scalar_one() is False


def test_a_bounced_contact_point_is_not_mailed_again(store: Engine, smtp_server: tuple[Handler, int]) -> None:
    handler, port = smtp_server
    run = _queue(store, [("c2", "e2", Channel.EMAIL)])
    deliver(store, [Smtp("127.0.0.1", port, from_address="offers@shop.example")], run_id=run, retry=FAST)
    with store.begin() as conn:  # another message to the same address, queued by a later run
        run2 = outbox.start_run(conn, campaign="autumn", period="2026-11", policy_name="default",
                                policy_version="1")
        (old,) = conn.execute(sa.select(tables.outbox)).mappings().all()
        conn.execute(tables.outbox.insert().values(
            {**{k: v for k, v in old.items() if k != "id"}, "idempotency_key": "k2", "campaign": "autumn",
             "run_id": run2, "status": "pending", "attempts": 0, "last_error": None}))
    report = deliver(store, [Smtp("127.0.0.1", port, from_address="offers@shop.example")], run_id=run2,
                     retry=FAST)
    assert report.counts == {"failed": 1}
    assert handler.received == []


def test_bad_smtp_settings_are_refused() -> None:
    with pytest.raises(DeliveryError, match="bad SMTP server"):
        Smtp("", 25, from_address="a@b.example")
    with pytest.raises(DeliveryError, match="bad sender address"):
        Smtp("127.0.0.1", 25, from_address="nobody")


def test_data_never_becomes_a_formula_or_a_header(store: Engine, tmp_path: Path) -> None:
    _queue(store, [("c1", "p1", Channel.POSTAL_MAIL), ("c1", "e1", Channel.EMAIL)])
    with store.begin() as conn:  # a hostile address and name, as an import could have stored them
        conn.execute(tables.contact_points.update().where(tables.contact_points.c.id == "p1")
                     .values(value='=HYPERLINK("http://evil.example","click")'))
        conn.execute(tables.customers.update().where(tables.customers.c.id == "c1")
                     .values(first_name="@SUM(A1)"))
        conn.execute(tables.contact_points.update().where(tables.contact_points.c.id == "e1")
                     .values(value="jane@example.org\nBcc: everyone@example.org"))
    out = tmp_path / "out"
    report = deliver(store, [PrintShopCsv(out), EmlDirectory(out / "email")], retry=FAST)
    assert report.counts == {"sent": 1, "failed": 1}
    with (out / "print-shop.csv").open(encoding="utf-8", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["address"].startswith("'=HYPERLINK") and row["recipient"].startswith("'@SUM")
    assert not list((out / "email").glob("*.eml"))
    failed = [e for _, e in report.errors]
    assert failed and "not a single email address" in failed[0]

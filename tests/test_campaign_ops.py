"""Campaign operations on the real sample world: the decision log's reasons are the engine's plain
words, the report is rebuilt from the store alone, a changed logged message breaks the chain, and the
outbox is delivered from the CLI (files, mbox, SMS CSV, SMTP on loopback)."""

from __future__ import annotations

import json
import re
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from pyarrow import parquet

from tactful.batch.candidates import candidates, read_table
from tactful.batch.run import decide_candidates
from tactful.policy import evaluate, load_pack
from tactful.realtime import StoreScenarioBuilder
from tactful.sample import PERSONA_IDS, build_sample
from tactful.store import audit, tables
from tactful.store.db import open_store
from tactful.testing.cli import run_cli

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-01T09:00:00"
PERSONAS = [*PERSONA_IDS.values(), "persona-teen-father"]
DEMO = Path(__file__).parents[1] / "src" / "tactful" / "campaigns" / "demo.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ops-world") / "sample.db"
    build_sample(f"sqlite:///{path}", seed=7, synthetic_n=40)
    return path


@pytest.fixture()
def store(world: Path, tmp_path: Path) -> str:
    copy = tmp_path / "store.db"
    shutil.copy(world, copy)
    return f"sqlite:///{copy}"


@pytest.fixture()
def campaign_file(tmp_path: Path) -> Path:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    doc["audience"] = {"customers": [*PERSONAS, *[f"{10000000 + i}" for i in range(1, 30)]]}
    path = tmp_path / "ops.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _all(url: str, query: Any) -> list[Any]:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    finally:
        engine.dispose()


def _run(store: str, campaign_file: Path, out: Path, *extra: str) -> str:
    code, _, err = run_cli(["campaign", "run", str(campaign_file), "--db", store, "--now", NOW_TEXT,
                                  "--out", str(out), "--quiet", *extra])
    assert code == 0, err
    (run_id,) = [r.id for r in _all(store, sa.select(tables.campaign_runs.c.id))]
    return str(run_id)


# --------------------------------------------------------------------------- reasons in plain words


def test_batch_reasons_are_the_engines_filled_messages(world: Path, tmp_path: Path) -> None:
    """decide_candidates(explain=True) gives each decision the reasons the real-time engine gives for
    the same scenario, messages filled from the customer's facts."""
    url = f"sqlite:///{world}"
    products = _all(url, sa.select(tables.products))
    revealing = [p.id for p in products if p.implies][:3]
    pack = load_pack(None)
    path = tmp_path / "c.parquet"
    parquet.write_table(pa.Table.from_pylist([
        {"customer_id": cid, "touch_id": f"t-{channel}", "kind": "recommendation", "purpose": "marketing",
         "channel": channel, "to": None,
         "to_kind": {"postcard": "postal", "email": "email", "sms": "phone"}[channel],
         "sender_implies": None, "uses": json.dumps([{"kind": "purchase"}]),
         "shows_items": ";".join(revealing), "depth": "item", "named": "true"}
        for cid in PERSONAS for channel in ("postcard", "email", "sms")]), path)
    result = decide_candidates(path, pack, db=url, now=NOW, explain=True)
    assert result.reasons is not None and not result.errors
    builder = StoreScenarioBuilder(pack)
    engine = open_store(url)
    explained = 0
    try:
        with engine.connect() as conn:
            for cand, reasons in zip(candidates(read_table(path), str(path)), result.reasons, strict=True):
                assert cand.touch is not None and reasons is not None
                expected = evaluate(builder.scenario(conn, cand.customer_id, cand.touch, NOW), pack)
                assert [r.model_dump() for r in reasons] == [
                    r.model_dump() for r in expected.reasons if r.rule != "fail-closed-guard"]
                explained += len(reasons)
    finally:
        engine.dispose()
    assert explained > 5  # rules did fire
    # and without explain nothing extra is computed
    assert decide_candidates(path, pack, db=url, now=NOW).reasons is None


def test_the_decision_log_holds_the_plain_messages_not_rule_titles(store: str, campaign_file: Path,
                                                                    tmp_path: Path) -> None:
    run_id = _run(store, campaign_file, tmp_path / "runs")
    pack = load_pack(None)
    titles = {r.id: r.title for r in pack.rules}
    templated = {r.id for r in pack.rules if r.message != r.title}
    checked = 0
    for row in _all(store, sa.select(tables.decisions.c.reasons).where(tables.decisions.c.run_id == run_id)):
        for reason in row.reasons:
            if reason["rule"] in templated:
                assert reason["message"] != titles[reason["rule"]]
                assert "{" not in reason["message"]
                checked += 1
    assert checked > 0
    # the persona with the postcard: the reason names what the postcard would show, in words
    code, printed, err = run_cli(["campaign", "report", run_id, "--db", store])
    assert code == 0, err
    assert "why" in printed.lower()


# --------------------------------------------------------------------------- the report from the store


def _section(page: str, name: str) -> str:
    match = re.search(f'<section id="{name}">.*?</section>', page, re.S)
    assert match is not None, name
    return match.group(0)


def test_the_report_is_rebuilt_from_the_store_alone(store: str, campaign_file: Path, tmp_path: Path) -> None:
    # a dry run builds its page from memory, before anything is logged or sent
    code, printed, err = run_cli(["campaign", "run", str(campaign_file), "--db", store, "--now", NOW_TEXT,
                                  "--out", str(tmp_path / "dry"), "--quiet", "--dry-run"])
    assert code == 0, err
    from_memory = Path(printed.strip().removeprefix("report: ")).read_text(encoding="utf-8")
    run_id = _run(store, campaign_file, tmp_path / "runs")
    original = tmp_path / "runs" / run_id / "report.html"
    page = original.read_text(encoding="utf-8")
    original.unlink()
    rebuilt = tmp_path / "again" / "report.html"
    code, printed, err = run_cli(["campaign", "report", run_id, "--db", store, "--html", str(rebuilt)])
    assert code == 0, err
    assert "rebuilt from the store" in printed
    assert rebuilt.read_text(encoding="utf-8") == page
    assert stat.S_IMODE(rebuilt.stat().st_mode) == 0o600
    # the store kept everything the page shows: the same customers, messages proposed and sent,
    # reasons, charts and personas as the page built from memory
    for name in ("channels", "depth", "rules", "personas"):
        assert _section(page, name) == _section(from_memory, name), name
    assert _section(page, "totals").split("<p>")[0] == _section(from_memory, "totals").split("<p>")[0]
    # an existing file is never replaced; an unknown run is exit 2
    code, _, err = run_cli(["campaign", "report", run_id, "--db", store, "--html", str(rebuilt)])
    assert code == 2 and "already exists" in err and "Traceback" not in err
    code, _, err = run_cli(["campaign", "report", "no-such-run", "--db", store, "--html",
                            str(tmp_path / "x.html")])
    assert code == 2 and "no campaign run" in err
    assert not (tmp_path / "x.html").exists()


def test_a_logged_message_changed_afterwards_breaks_the_chain(store: str, campaign_file: Path,
                                                               tmp_path: Path) -> None:
    run_id = _run(store, campaign_file, tmp_path / "runs", "--no-deliver")
    rows = _all(store, sa.select(tables.decisions.c.seq, tables.decisions.c.message,
                                 tables.decisions.c.proposed).order_by(tables.decisions.c.seq))
    sent = [r for r in rows if r.message and r.message["type"] == "message"]
    assert sent and any(r.proposed for r in rows)
    target = sent[len(sent) // 2]
    code, _, err = run_cli(["audit", "verify", "--db", store])
    assert code == 0, err
    engine = open_store(store)
    try:
        with engine.begin() as conn:
            changed = dict(target.message, body="Something else entirely")
            conn.execute(tables.decisions.update().where(tables.decisions.c.seq == target.seq)
                         .values(message=changed))
    finally:
        engine.dispose()
    code, _, err = run_cli(["audit", "verify", "--db", store])
    assert code == 3 and f"broken at row {target.seq} " in err and "content does not match" in err
    # the proposed text is covered too
    first = next(r for r in rows if r.proposed)
    engine = open_store(store)
    try:
        with engine.begin() as conn:
            conn.execute(tables.decisions.update().where(tables.decisions.c.seq == target.seq)
                         .values(message=target.message))
            conn.execute(tables.decisions.update().where(tables.decisions.c.seq == first.seq)
                         .values(proposed=None))
    finally:
        engine.dispose()
    code, _, err = run_cli(["audit", "verify", "--db", store])
    assert code == 3 and f"broken at row {first.seq} " in err
    assert run_id


def test_messages_round_trip_through_the_log() -> None:
    from tactful.compose import Message, Withheld
    from tactful.vocab import Channel, Depth

    m = Message(kind="offer", slot="category", depth=Depth.CATEGORY, named=False, channel=Channel.EMAIL,
                sender="Shop", subject="New in", body="Hello", html=False)
    w = Withheld(code="blocked", reason="held back", rules=("r1",))
    for item in (m, w):
        assert audit.composed_from_record(json.loads(json.dumps(audit.composed_record(item)))) == item
    with pytest.raises(ValueError, match="unknown message record type"):
        audit.composed_from_record({"type": "poem"})
    with pytest.raises(ValueError):
        audit.composed_from_record({"type": "message", "kind": "offer"})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


_ = re  # kept for the delivery tests below

"""`tactful batch decide`: candidates against the store, decided by the compiled policy; each decision
is the one the Python evaluator gives the same scenario built from the store (realtime), and a row
that cannot be judged is blocked without stopping the run."""

from __future__ import annotations

import csv
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from tactful.batch.run import feature_hash
from tactful.features import derive
from tactful.model import Consent, ContactPoint, Customer, Fact, Household, Order, OrderLine, Product
from tactful.policy import evaluate, load_pack
from tactful.realtime import parse_touch, scenario_from_store
from tactful.store import db
from tactful.testing.cli import run_cli
from tactful.testing.store import seed

NOW = "2026-11-01T00:00:00Z"
HEADER = ["customer_id", "touch_id", "kind", "purpose", "channel", "to_kind", "uses", "shows_items", "depth",
          "named", "now"]
ROWS = [
    # opted in, shows an ordinary item: allowed
    ["ann", "email-bread", "offer", "marketing.communications.email", "email", "email",
     '[{"kind": "purchase", "newest": 3}]', "bread", "item", "false", NOW],
    # shows a pregnancy test by email: the item reveals an undeclared sensitive category
    ["ann", "email-test", "offer", "marketing.communications.email", "email", "email", "", "ptest;bread",
     "item", "false", NOW],
    # a postcard with no postal opt-in
    ["ann", "postcard", "offer", "marketing.communications.postal", "postcard", "postal", "", "",
     "category", "true", NOW],
    # a reserved customer at history depth: softened
    ["bob", "email-history", "offer", "marketing.communications.email", "email", "email",
     '[{"kind": "purchase"}]', "", "history", "true", NOW],
    # a service message by web, using nothing
    ["bob", "web-service", "service", "essential.service", "web", "", "", "", "none", "false", NOW],
    # rows that cannot be judged
    ["nobody", "ghost", "offer", "marketing.communications.email", "email", "email", "", "", "item", "false",
     NOW],
    ["ann", "deep", "offer", "marketing.communications.email", "email", "email", "", "", "deep", "false",
     NOW],
    ["ann", "unknown-item", "offer", "marketing.communications.email", "email", "email", "", "nothing",
     "item", "false", NOW],
]
GOOD = 5


def world() -> list[BaseModel]:
    return [
        Household(id="h1", size=2),
        Customer(id="ann", household_id="h1", first_name="Ann", openness="balanced"),
        Customer(id="bob", first_name="Bob", openness="reserved"),
        ContactPoint(id="ann-mail", customer_id="ann", kind="email", value="ann@example.org",
                     shared_with="private", verified_at="2026-06-01T08:00:00Z"),
        ContactPoint(id="ann-home", customer_id="ann", kind="postal", value="1 Main St",
                     shared_with="household", verified_at="2026-06-01T08:00:00Z"),
        ContactPoint(id="bob-mail", customer_id="bob", kind="email", value="bob@example.org",
                     shared_with="private", verified_at="2026-06-01T08:00:00Z"),
        Consent(id="k1", customer_id="ann", purpose="marketing.communications.email", channel="email",
                status="granted", source="form", at="2026-01-02T10:00:00Z"),
        Consent(id="k2", customer_id="bob", purpose="marketing.communications.email", channel="email",
                status="granted", source="form", at="2026-01-02T10:00:00Z"),
        Product(id="ptest", name="Pregnancy test kit", department="pharmacy",
                implies=("user.health_and_medical.reproductive",)),
        Product(id="bread", name="Sourdough bread", department="bakery"),
        Order(id="o1", customer_id="ann", at="2026-10-01T09:30:00Z", total=4.0),
        OrderLine(order_id="o1", line_no=1, product_id="bread", quantity=1, amount=4.0),
        Order(id="o2", customer_id="bob", at="2026-10-02T09:30:00Z", total=4.0),
        OrderLine(order_id="o2", line_no=1, product_id="bread", quantity=1, amount=4.0),
        Fact(id="f1", customer_id="bob", kind="preference", category="user.behavior", label="aisle seat",
             origin="declared", source="chat", context="support_chat"),
    ]


@pytest.fixture()
def store(db_url: str) -> Iterator[str]:
    engine: Engine = db.init_store(db_url)
    seed(engine, world(), origin="test:batch")
    engine.dispose()
    yield db_url


def _candidates(tmp_path: Path, rows: list[list[str]] = ROWS) -> Path:
    path = tmp_path / "candidates.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def _python(url: str, row: list[str]) -> tuple[tuple[str, str, bool, str], str]:
    """The Python evaluator's decision of the scenario `tactful decide --customer` builds, and the
    input hash of its feature row."""
    from tactful.batch.candidates import touch_document

    spec = parse_touch(touch_document(dict(zip(HEADER, row, strict=True))))
    pack = load_pack()
    scenario = scenario_from_store(url, row[0], spec, pack)
    d = evaluate(scenario, pack)
    return ((d.verdict.value, d.max_depth.value, d.named, ",".join(r.rule for r in d.reasons)),
            feature_hash(derive(scenario, pack.settings).values))


@pytest.mark.parametrize("path", ["--in-backend", "--reference"])
def test_batch_decide_matches_the_python_evaluator_row_by_row(store: str, tmp_path: Path, path: str) -> None:
    out = tmp_path / "decisions.parquet"
    code, stdout, stderr = run_cli(["batch", "decide", str(_candidates(tmp_path)), "--db", store,
                                    "--out", str(out), path])
    assert code == 0, stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows: list[dict[str, Any]] = pq.read_table(out).to_pylist()
    assert [(r["customer_id"], r["touch_id"]) for r in rows] == [(r[0], r[1]) for r in ROWS]
    verdicts = set()
    for row, got in zip(ROWS[:GOOD], rows[:GOOD], strict=True):
        expected, digest = _python(store, row)
        assert (got["verdict"], got["max_depth"], got["named"], got["fired_rules"]) == expected, row[1]
        assert got["input_hash"] == digest and got["error"] is None
        assert (got["policy_name"], got["policy_version"]) == ("default", "1")
        verdicts.add(got["verdict"])
    assert verdicts >= {"allow", "soften", "block"}  # not a vacuous comparison
    for got in rows[GOOD:]:
        assert got["verdict"] == "block" and got["max_depth"] == "none" and got["named"] is False, got
    for got in rows[GOOD:GOOD + 2]:
        assert got["fired_rules"] == "evaluation-error" and got["failed_rules"] == "", got
        assert got["error"] and "row" in got["error"]
    assert "nobody" in rows[GOOD]["error"] and "depth" in rows[GOOD + 1]["error"]
    unknown_item = rows[GOOD + 2]
    if path == "--reference":  # the scenario cannot be built: an evaluation error
        assert unknown_item["fired_rules"] == "evaluation-error" and "nothing" in unknown_item["error"]
        assert "3 candidate(s) could not be judged" in stdout
    else:  # the frame holds the dangling reference: blocked by the rule that says so
        assert "missing-fact-reference" in unknown_item["fired_rules"].split(",")
        assert unknown_item["error"] is None
        assert "2 candidate(s) could not be judged" in stdout
    assert "allow" in stdout and "fired rules" in stdout
    assert ("features in the backend" if path == "--in-backend" else "features built in Python") in stdout


def test_threads_and_memory_limit_bound_duckdb(store: str, tmp_path: Path) -> None:
    """--threads and --memory-limit reach DuckDB (the same decisions as without them); a limit that is
    not a size is refused before any work, naming the option (exit 2)."""
    cands = str(_candidates(tmp_path))
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert run_cli(["batch", "decide", cands, "--db", store, "--out", str(a), "-q"]).exit_code == 0
    code, _, err = run_cli(["batch", "decide", cands, "--db", store, "--out", str(b), "-q",
                            "--threads", "1", "--memory-limit", "512MB"])
    assert code == 0, err
    assert pq.read_table(a).to_pylist() == pq.read_table(b).to_pylist()
    for bad in ("lots", "3 parsecs", "0x10GB", "9" * 40 + "GB"):
        code, out, err = run_cli(["batch", "decide", cands, "--db", store, "--memory-limit", bad])
        assert code == 2 and "--memory-limit" in out + err and "3GB" in out + err, (bad, out, err)
    code, out, err = run_cli(["batch", "decide", cands, "--db", store, "--threads", "0"])
    assert code == 2 and "--threads" in out + err


def test_a_memory_limit_reaches_duckdb(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-backend path opens DuckDB with the threads and memory limit asked for, in a private
    directory it removes afterwards."""
    import tactful.batch.store as batch_store
    from tactful.batch.run import decide_candidates

    seen: list[tuple[Any, Any, Any]] = []
    real = batch_store.connect

    def spy(**kwargs: Any) -> Any:
        con = real(**kwargs)
        limit = con.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0]
        threads = con.raw_sql("SELECT current_setting('threads')").fetchone()[0]
        seen.append((threads, limit, kwargs.get("workdir")))
        return con

    monkeypatch.setattr(batch_store, "connect", spy)
    decide_candidates(_candidates(tmp_path), load_pack(), db=store, reference=False, threads=1,
                      memory_limit="700MB")
    (threads, limit, work), = seen
    assert threads == 1 and limit.replace(" ", "") in ("667.5MiB", "700.0MB", "667.5MB"), limit
    assert work is not None and not work.exists()  # the private directory is gone


@pytest.mark.postgres
def test_the_postgres_backend_decides_inside_the_store(pg_url: str, tmp_path: Path) -> None:
    engine = db.init_store(pg_url)
    seed(engine, world(), origin="test:batch")
    engine.dispose()
    a, b = tmp_path / "duck.parquet", tmp_path / "pg.parquet"
    cands = str(_candidates(tmp_path))
    assert run_cli(["batch", "decide", cands, "--db", pg_url, "--out", str(a), "-q",
                    "--reference"]).exit_code == 0
    code, _, err = run_cli(["batch", "decide", cands, "--db", pg_url, "--out", str(b), "-q",
                            "--backend", "postgres"])
    assert code == 0, err
    assert pq.read_table(a).to_pylist() == pq.read_table(b).to_pylist()
    # the postgres backend does not build the frame itself, and says so when asked to
    code, _, err = run_cli(["batch", "decide", cands, "--db", pg_url, "-q", "--backend", "postgres",
                            "--in-backend"])
    assert code == 2 and "does not build the feature frame" in err


def test_backends_say_what_they_do_not_support(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    db.init_store(url).dispose()
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path, ROWS[:1])), "--db", url,
                            "--backend", "postgres"])
    assert code == 2 and "does not support sqlite stores" in err
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path, ROWS[:1])), "--db", url,
                            "--backend", "oracle"])
    assert code == 2 and "unknown backend 'oracle'" in err


def test_the_backends_list_says_what_each_does_not_support() -> None:
    code, out, _ = run_cli(["batch", "backends"])
    assert code == 0
    for name in ("duckdb", "pyspark", "postgres"):
        assert name in out
    assert "SQLite stores" in out and "Java runtime" in out


def test_bad_candidates_files_are_named_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    db.init_store(url).dispose()
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("customer_id,touch_id,kind,purpose,channel,colour\n", encoding="utf-8")
    code, _, err = run_cli(["batch", "decide", str(wrong), "--db", url])
    assert code == 2 and "unknown column(s) 'colour'" in err and "wrong.csv" in err
    short = tmp_path / "short.csv"
    short.write_text("customer_id,touch_id\n", encoding="utf-8")
    code, _, err = run_cli(["batch", "decide", str(short), "--db", url])
    assert code == 2 and "missing column(s) kind, purpose, channel" in err
    code, _, err = run_cli(["batch", "decide", str(tmp_path / "none.txt"), "--db", url])
    assert code == 2 and "unknown candidates format" in err


def test_an_existing_output_is_never_replaced(store: str, tmp_path: Path) -> None:
    out = tmp_path / "decisions.csv"
    out.write_text("keep me", encoding="utf-8")
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path)), "--db", store, "--out", str(out)])
    assert code == 2 and "already exists" in err
    assert out.read_text(encoding="utf-8") == "keep me"


def test_csv_output_and_json_lines_input(store: str, tmp_path: Path) -> None:
    jl = tmp_path / "c.jsonl"
    with jl.open("w", encoding="utf-8") as f:
        for row in ROWS[:2]:
            doc: dict[str, Any] = dict(zip(HEADER, row, strict=True))
            doc["shows_items"] = doc["shows_items"].split(";")
            doc["uses"] = json.loads(doc["uses"]) if doc["uses"] else []
            doc["named"] = doc["named"] == "true"
            f.write(json.dumps(doc) + "\n")
    out = tmp_path / "d.csv"
    code, _, err = run_cli(["batch", "decide", str(jl), "--db", store, "--out", str(out), "-q"])
    assert code == 0, err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[0].startswith('"customer_id","touch_id","verdict"')
    assert _python(store, ROWS[0])[0][0] in lines[1] and _python(store, ROWS[1])[0][0] in lines[2]


def test_a_hostile_selector_cell_is_a_row_error_and_the_run_goes_on(store: str, tmp_path: Path) -> None:
    # a `uses` cell of 5,000 "[" once made json.loads raise RecursionError: exit 70, "internal error"
    hostile = [
        ["ann", "deep-uses", "offer", "marketing.communications.email", "email", "email", "[" * 5000, "",
         "item", "false", NOW],
        ["ann", "huge-int", "offer", "marketing.communications.email", "email", "email",
         '[{"kind": "purchase", "newest": ' + "9" * 5000 + "}]", "", "item", "false", NOW],
    ]
    out = tmp_path / "d.csv"
    code, _, err = run_cli(["batch", "decide", str(_candidates(tmp_path, [ROWS[0], *hostile])), "--db", store,
                            "--out", str(out), "-q"])
    assert code == 0, err
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["touch_id"] for r in rows] == ["email-bread", "deep-uses", "huge-int"]
    assert rows[0]["error"] == ""
    assert rows[1]["verdict"] == "block" and "row 2: uses: " in rows[1]["error"]
    assert "nested more than" in rows[1]["error"]
    assert rows[2]["verdict"] == "block" and "row 3: uses: " in rows[2]["error"]


# --------------------------------------------------------------------------- the sample world

SAMPLE_TOUCHES: list[dict[str, Any]] = [
    {"touch_id": "email-offer", "kind": "offer", "purpose": "marketing.communications.email",
     "channel": "email", "to_kind": "email", "uses": '[{"kind": "purchase", "newest": 3}]',
     "depth": "item", "named": "true"},
    {"touch_id": "postcard-rec", "kind": "recommendation", "purpose": "marketing", "channel": "postcard",
     "to_kind": "postal", "uses": '[{"kind": "purchase", "within_days": 60}]', "depth": "category",
     "named": "true"},
    {"touch_id": "sms-reminder", "kind": "reminder", "purpose": "marketing.communications.sms",
     "channel": "sms", "to_kind": "phone", "depth": "item", "named": "false"},
    {"touch_id": "web-service", "kind": "service", "purpose": "essential.service", "channel": "web",
     "depth": "none", "named": "false"},
    {"touch_id": "partner-aggregate", "kind": "share", "purpose": "third_party_sharing",
     "channel": "partner_export", "sender": "partner:acme", "granularity": "aggregate", "group_size": "12",
     "depth": "segment", "named": "false"},
    {"touch_id": "email-history", "kind": "offer", "purpose": "marketing.communications.email",
     "channel": "email", "to_kind": "email", "uses": '[{"kind": "purchase"}]', "depth": "history",
     "named": "true"},
]


@pytest.fixture(scope="module")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str], list[str]]:
    """`tactful sample` (synthetic, 50 customers plus the personas) and product ids that reveal a
    sensitive category and that do not."""
    from sqlalchemy import select

    from tactful.sample import build_sample
    from tactful.store import tables

    url = f"sqlite:///{tmp_path_factory.mktemp('sample')}/sample.db"
    build_sample(url, seed=7, synthetic_n=50, jobs=0)
    engine = db.open_store(url)
    try:
        with engine.connect() as conn:
            ids = select(tables.customers.c.id).order_by(tables.customers.c.id)
            customers = [r[0] for r in conn.execute(ids)]
            products = list(conn.execute(select(tables.products.c.id, tables.products.c.implies)
                                         .order_by(tables.products.c.id)))
    finally:
        engine.dispose()
    revealing = [p for p, implies in products if implies and implies not in ("[]", [])][:4]
    plain = [p for p, implies in products if not implies or implies in ("[]", [])][:4]
    assert len(revealing) == 4 and len(plain) == 4
    return url, customers, [*revealing, *plain]


@pytest.mark.parametrize("block", [None, 16])
def test_both_paths_agree_on_the_whole_sample_world(sample_world: tuple[str, list[str], list[str]],
                                                    tmp_path: Path, block: int | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every customer of the sample world x six candidate touches (some showing products that reveal a
    sensitive category): the frame built inside DuckDB from the store and the Python-built reference
    frame give identical decisions and input hashes (so identical feature rows); a disagreement names
    the features that differ. With ``block`` the frame is built 16 customers at a time (four blocks
    of the store's rows read once), as a large run builds it."""
    import pyarrow as pa
    from pyarrow import parquet

    import tactful.batch.run as run
    from tactful.batch.run import decide_candidates

    if block is not None:
        monkeypatch.setattr(run, "BLOCK_CUSTOMERS", block)

    url, customers, items = sample_world
    rows = []
    for i, cid in enumerate(customers):
        for j, touch in enumerate(SAMPLE_TOUCHES):
            shown = ";".join(items[(i + j) % len(items)::3][:2]) if touch["depth"] == "item" else None
            rows.append({"customer_id": cid, **touch, "shows_items": shown, "now": NOW})
    path = tmp_path / "cands.parquet"
    parquet.write_table(pa.Table.from_pylist(rows), path)
    pack = load_pack()
    backend = decide_candidates(path, pack, db=url, reference=False)
    reference = decide_candidates(path, pack, db=url, reference=True)
    assert backend.path == "backend" and reference.path == "reference"
    got, want = backend.decisions.to_pylist(), reference.decisions.to_pylist()
    assert len(got) == len(want) == len(customers) * len(SAMPLE_TOUCHES) > 300
    assert not reference.errors, reference.errors[:3]
    wrong = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    if wrong:
        g, w = wrong[0]
        raise AssertionError(f"{len(wrong)} of {len(got)} decisions differ; first: backend {g}, reference "
                             f"{w}; features that differ: {_feature_diff(url, rows, got.index(g), pack)}")
    # not vacuous: every verdict, and many distinct feature rows
    assert {d["verdict"] for d in want} >= {"allow", "soften", "block"}
    assert len({d["input_hash"] for d in want}) > len(want) // 3


def _feature_diff(url: str, rows: list[dict[str, Any]], i: int, pack: Any) -> dict[str, Any]:
    """The features of candidate ``i`` on which the two paths differ: (python, backend)."""
    from datetime import datetime

    import ibis

    from tactful.batch.candidates import touch_document
    from tactful.batch.producers import CANDIDATE_SCHEMA, candidate_row, feature_frame
    from tactful.batch.store import attach_store, connect
    from tactful.features import FEATURES

    spec = parse_touch(touch_document(rows[i]))
    when = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    scenario = scenario_from_store(url, rows[i]["customer_id"], spec, pack, now=when)
    values = {f: getattr(v, "value", v) for f, v in derive(scenario, pack.settings).values.items()}
    typed = ibis.memtable([candidate_row(1, rows[i]["customer_id"], spec.touch, when)],
                          schema=CANDIDATE_SCHEMA)
    store = attach_store(connect(threads=1), url)
    frame = feature_frame(typed, store, pack.settings).to_pyarrow().to_pylist()[0]
    return {f: (values.get(f), frame[f]) for f in FEATURES if values.get(f) != frame[f]}

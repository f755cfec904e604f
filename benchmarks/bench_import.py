"""Import throughput and memory against a bare load of the same rows into the same tables.

    .venv/bin/python benchmarks/bench_import.py                          # orders, 50 MB, SQLite + PostgreSQL
    .venv/bin/python benchmarks/bench_import.py --kind customers --mb 100
    .venv/bin/python benchmarks/bench_import.py --stores sqlite --mb 1000 --keep /tmp/big

For each store it runs, each in a child process of its own (so that peak RSS, ``ru_maxrss``, and CPU
time are that run's own), on a fresh copy of the same prepared store (households, customers and
products already imported):

* the **bare load** of the same rows (less the broken ones, which PostgreSQL would refuse): no
  validation at all. SQLite: Arrow reads the CSV (every column as text) and
  ``executemany`` upserts the rows, batch by batch, with the importer's own upsert statement.
  PostgreSQL: ``COPY`` into a temporary staging table, then ``INSERT ... SELECT ... ON CONFLICT DO
  UPDATE`` (one row per key);
* the **import**: ``run_import`` (``tactful import``), with its checks, reference look-ups, quarantine
  and bookkeeping.

It prints rows/s of both, their ratio (the target is at least 2/3), CPU seconds and peak RSS. One row
in ``--bad-every`` (default 1000) is broken (an unknown product or an invalid date), so the quarantine
path is exercised too. PostgreSQL: ``--pg URL`` (a server we may create databases on), else
``TACTFUL_TEST_PG_URL``, else a throwaway cluster is started. Figures, never assertions (see
docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CUSTOMERS = 20_000
N_PRODUCTS = 5_000


def _write_until(path: Path, header: str, target_bytes: int, make_row: object) -> int:
    assert callable(make_row)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        written = len(header) + 1
        chunk: list[str] = []
        while written < target_bytes:
            line = make_row(rows) + "\n"
            chunk.append(line)
            written += len(line)
            rows += 1
            if len(chunk) >= 10_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return rows


def generate(workdir: Path, kind: str, megabytes: float, bad_every: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    target = int(megabytes * 1024 * 1024)
    first_names = ["Ann", "Bob", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo"]
    last_names = ["Lee", "Park", "Moss", "Diaz", "Novak", "Okafor", "Silva", "Young"]
    openness = ["closed", "reserved", "balanced", "open", ""]

    def customer(i: int) -> str:
        date = f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if bad_every and i % bad_every == bad_every - 1:
            date = "1970-02-31"
        return (
            f"c{i},h{i % 5000},{rng.choice(first_names)},{rng.choice(last_names)},{date},,"
            f"{rng.choice(openness)},false"
        )

    files: dict[str, object] = {}
    hh = workdir / "households.csv"
    with hh.open("w") as f:
        f.write("id,size\n" + "".join(f"h{i},{1 + i % 4}\n" for i in range(5000)))
    if kind == "customers":
        path = workdir / "customers.csv"
        header = "id,household_id,first_name,last_name,birth_date,age_range,openness,deceased"
        rows = _write_until(path, header, target, customer)
        files.update(big=path, rows=rows, prerequisites=[("households", hh)])
        return files

    cust = workdir / "customers.csv"
    with cust.open("w") as f:
        f.write("id,household_id,first_name\n" + "".join(f"c{i},h{i % 5000},X\n" for i in range(N_CUSTOMERS)))
    prod = workdir / "products.csv"
    with prod.open("w") as f:
        f.write(
            "id,name,department,category\n"
            + "".join(f"p{i},Product {i},GROCERY,MISC\n" for i in range(N_PRODUCTS))
        )
    state = {"order": 0, "line": 0, "lines": 0}

    def order_line(i: int) -> str:
        if state["line"] >= state["lines"]:
            state["order"] += 1
            state["line"] = 0
            state["lines"] = rng.randint(1, 8)
        state["line"] += 1
        o = state["order"]
        product = f"p{rng.randrange(N_PRODUCTS)}"
        when = f"2024-{1 + o % 12:02d}-{1 + o % 28:02d}T{o % 24:02d}:15:00Z"
        if bad_every and i % bad_every == bad_every - 1:
            product = "p-unknown" if i % 2 else product
            when = when if i % 2 else "2024-13-01"
        return (
            f"o{o},c{o % N_CUSTOMERS},{when},pos,checkout,s{o % 40},{rng.randint(100, 9999) / 100},"
            f"{state['line']},{product},{rng.randint(1, 3)},{rng.randint(50, 2000) / 100}"
        )

    path = workdir / "orders.csv"
    rows = _write_until(
        path,
        "order_id,customer_id,at,source,context,store_id,total,line_no,product_id,quantity,amount",
        target,
        order_line,
    )
    files.update(
        big=path, rows=rows, prerequisites=[("households", hh), ("customers", cust), ("products", prod)]
    )
    return files


ORDER_COLUMNS = ["order_id", "customer_id", "at", "source", "context", "store_id", "total"]
LINE_COLUMNS = ["order_id", "line_no", "product_id", "quantity", "amount"]


def _targets(kind: str) -> list[tuple[str, list[str], list[str]]]:
    """(table, its columns, the CSV columns that fill them) per table the kind writes."""
    if kind == "customers":
        cols = ["id", "household_id", "first_name", "last_name", "birth_date", "age_range", "openness",
                "deceased"]
        return [("customers", cols, cols)]
    return [("orders", ["id", *ORDER_COLUMNS[1:]], ORDER_COLUMNS),
            ("order_lines", LINE_COLUMNS, LINE_COLUMNS)]


def bare_sqlite(db_url: str, kind: str, path: Path, batch_size: int) -> int:
    import sqlite3

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from tactful.ingest.writer import upsert_statement
    from tactful.store import tables

    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    names = ORDER_COLUMNS + LINE_COLUMNS[1:] if kind == "orders" else _targets(kind)[0][2]
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20),
                            convert_options=pacsv.ConvertOptions(
                                column_types={c: pa.string() for c in names}))
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    statements = []
    for table, columns, _ in _targets(kind):
        sql, _order = upsert_statement(tables.metadata.tables[table], [*columns, "import_id", "written_at"],
                                      sqlite_dialect.dialect())
        statements.append(sql)
    rows = 0
    for batch in reader:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.000000")
        for start in range(0, batch.num_rows, batch_size):
            part = batch.slice(start, batch_size)
            conn.execute("BEGIN IMMEDIATE")
            for sql, (_table, _columns, source) in zip(statements, _targets(kind), strict=True):
                columns = [part.column(name).to_pylist() for name in source]
                n = part.num_rows
                conn.executemany(sql, zip(*columns, [None] * n, [stamp] * n, strict=True))
            conn.execute("COMMIT")
            rows += part.num_rows
    conn.close()
    return rows


def bare_postgres(db_url: str, kind: str, path: Path, batch_size: int, provenance: bool = False) -> int:
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from tactful.store import tables

    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    all_columns = ORDER_COLUMNS + LINE_COLUMNS[1:] if kind == "orders" else _targets(kind)[0][2]
    types = {c: pa.string() for c in all_columns}
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20),
                            convert_options=pacsv.ConvertOptions(column_types=types))
    rows = 0
    with psycopg.connect(url) as conn:
        import_id = "NULL"
        if provenance:  # stamp the rows with an imports row, as the import does (a foreign key per row)
            row = conn.execute(
                "INSERT INTO imports (kind, origin, started_at, rows_read, rows_imported, rows_quarantined,"
                " state) VALUES (%s, %s, now(), 0, 0, 0, 'finished') RETURNING id", (kind, str(path))
            ).fetchone()
            assert row is not None
            import_id = str(int(row[0]))
        conn.execute(f"CREATE TEMP TABLE staging ({', '.join(f'{c} text' for c in all_columns)})")
        for batch in reader:
            for start in range(0, batch.num_rows, batch_size):
                part = batch.slice(start, batch_size)
                with conn.transaction():
                    conn.execute("TRUNCATE staging")
                    copy_sql = f"COPY staging ({', '.join(all_columns)}) FROM STDIN"
                    with conn.cursor().copy(copy_sql) as copy:
                        for row in zip(*[part.column(c).to_pylist() for c in all_columns], strict=True):
                            copy.write_row(row)
                    for table, columns, source in _targets(kind):
                        t = tables.metadata.tables[table]
                        key = [c.name for c in t.primary_key.columns]
                        casts = ", ".join(f"NULLIF({s}, '')::{t.c[c].type.compile(conn_dialect())}"
                                          for c, s in zip(columns, source, strict=True))
                        key_src = [source[columns.index(k)] for k in key]
                        update = ", ".join(f"{c} = EXCLUDED.{c}"
                                           for c in [*columns, "import_id", "written_at"] if c not in key)
                        conn.execute(
                            f"INSERT INTO {table} ({', '.join(columns)}, import_id, written_at) "
                            f"SELECT DISTINCT ON ({', '.join(key_src)}) {casts}, {import_id}, now() "
                            "FROM staging "
                            f"ORDER BY {', '.join(key_src)} "
                            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}")
                rows += part.num_rows
    return rows


def conn_dialect() -> object:
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect()


def child(mode: str, db_url: str, kind: str, path: str, batch_size: int) -> None:
    """Run in the child process: import (or bare-load) and print the figures as JSON."""
    started = time.perf_counter()
    out: dict[str, object] = {}
    if mode == "import":
        from tactful.ingest import run_import
        from tactful.store.db import open_store

        engine = open_store(db_url)
        started = time.perf_counter()
        result = run_import(engine, kind, Path(path), batch_size=batch_size)
        out.update(rows_read=result.rows_read, rows_imported=result.rows_imported,
                   rows_quarantined=result.rows_quarantined)
    elif db_url.startswith("sqlite"):
        out["rows_read"] = bare_sqlite(db_url, kind, Path(path), batch_size)
    else:
        out["rows_read"] = bare_postgres(db_url, kind, Path(path), batch_size, mode == "bare-provenance")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.update(seconds=time.perf_counter() - started, cpu_seconds=usage.ru_utime + usage.ru_stime,
               peak_rss_mb=usage.ru_maxrss / 1024)
    print(json.dumps(out))


def _server_cpu(db_url: str) -> float | None:
    """CPU seconds used so far by the PostgreSQL server behind ``db_url`` and every backend it ever ran
    (the postmaster's own and its reaped children's times), when the server runs on this machine and its
    data directory is readable; else None. Taken before and after a run, the difference is the server's
    share of that run (only meaningful on a server nothing else uses, such as a throwaway cluster)."""
    if not db_url.startswith("postgresql"):
        return None
    import psycopg

    try:
        with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        pid = int((Path(row[0]) / "postmaster.pid").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")

        def times(p: int, children: bool) -> float:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            own = int(fields[11]) + int(fields[12])  # utime, stime
            return (own + (int(fields[13]) + int(fields[14]) if children else 0)) / ticks

        total = times(pid, True)
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += times(int(child), False)
        return total
    except (OSError, ValueError, IndexError, psycopg.Error, AssertionError):
        return None


def _run_child(mode: str, db_url: str, kind: str, path: Path, batch_size: int) -> dict[str, float]:
    server_before = _server_cpu(db_url)
    done = subprocess.run(
        [sys.executable, __file__, "--batch-size", str(batch_size), "--child", mode, db_url, kind,
         str(path)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} on {db_url} failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    server_after = _server_cpu(db_url)
    if server_before is not None and server_after is not None:
        figures["server_cpu_seconds"] = server_after - server_before
    return figures


def _prepare(url: str, files: dict[str, object]) -> None:
    from tactful.ingest import run_import
    from tactful.store.db import init_store

    engine = init_store(url)
    prerequisites = files["prerequisites"]
    assert isinstance(prerequisites, list)
    for kind, path in prerequisites:
        run_import(engine, kind, path)
    engine.dispose()


def _stores(args: argparse.Namespace, workdir: Path,
            stack: contextlib.ExitStack) -> list[tuple[str, str, str]]:
    """(store name, bare URL, import URL) for each store asked for."""
    out = []
    if "sqlite" in args.stores:
        out.append(("SQLite", f"sqlite:///{workdir}/bare.db", f"sqlite:///{workdir}/import.db"))
    if "postgresql" in args.stores:
        from tactful.testing import postgres

        server = args.pg or os.environ.get("TACTFUL_TEST_PG_URL")
        if not server:
            server = stack.enter_context(postgres.throwaway_postgres())
        tag = f"{os.getpid()}"
        out.append(("PostgreSQL", postgres.create_database(server, f"bench_bare_{tag}"),
                    postgres.create_database(server, f"bench_import_{tag}")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["orders", "customers"], default="orders")
    parser.add_argument("--mb", type=float, default=50.0, help="size of the generated CSV in MB")
    parser.add_argument("--bad-every", type=int, default=1000, help="one broken row in N (0: none)")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--pg", default=None, help="a PostgreSQL server URL to create the databases on")
    parser.add_argument("--bare-provenance", action="store_true",
                        help="PostgreSQL: the bare load stamps its rows with an imports row, as the import "
                             "does (default: import_id NULL, no foreign-key check on it)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the files and store in this directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "DB", "KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.child[3], args.batch_size)
        return

    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = args.keep
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tactful-bench-")))
        print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.2f} (other jobs running if above 0.5)")
        print("command: " + " ".join([os.path.relpath(sys.executable), *sys.argv]))
        t0 = time.perf_counter()
        files = generate(workdir, args.kind, args.mb, args.bad_every, args.seed)
        big = files["big"]
        assert isinstance(big, Path)
        # the bare load takes the same rows without the broken ones (PostgreSQL would refuse them): the
        # generator draws the same values whatever --bad-every, so only the broken rows differ
        clean = workdir / "clean"
        clean.mkdir(exist_ok=True)
        clean_file = generate(clean, args.kind, args.mb, 0, args.seed)["big"]
        assert isinstance(clean_file, Path)
        size_mb = big.stat().st_size / 1024 / 1024
        print(f"generated {big.name}: {size_mb:,.0f} MB, {files['rows']:,} rows "
              f"in {time.perf_counter() - t0:.1f} s")
        for name, bare_url, import_url in _stores(args, workdir, stack):
            for url in (bare_url, import_url):
                _prepare(url, files)
            bare_mode = "bare-provenance" if args.bare_provenance and name == "PostgreSQL" else "bare"
            bare = _run_child(bare_mode, bare_url, args.kind, clean_file, args.batch_size)
            imp = _run_child("import", import_url, args.kind, big, args.batch_size)
            bare_rate = bare["rows_read"] / bare["seconds"]
            rate = imp["rows_read"] / imp["seconds"]
            print(f"{name}: bare load{' (import_id set)' if bare_mode != 'bare' else ''}  "
                  f"{bare['rows_read']:,.0f} rows in {bare['seconds']:.1f} s -> "
                  f"{bare_rate:,.0f} rows/s (CPU {bare['cpu_seconds']:.1f} s, "
                  f"peak RSS {bare['peak_rss_mb']:.0f} MB)")
            print(f"{name}: import     {imp['rows_read']:,.0f} rows in {imp['seconds']:.1f} s -> "
                  f"{rate:,.0f} rows/s (CPU {imp['cpu_seconds']:.1f} s, "
                  f"peak RSS {imp['peak_rss_mb']:.0f} MB); "
                  f"{imp['rows_imported']:,.0f} imported, {imp['rows_quarantined']:,.0f} quarantined")
            print(f"{name}: ratio import/bare = {rate / bare_rate:.2f} by wall time "
                  f"(target >= 0.67), {bare['cpu_seconds'] / imp['cpu_seconds']:.2f} by CPU time")
            if "server_cpu_seconds" in bare and "server_cpu_seconds" in imp:
                # the server's CPU, less sensitive to other jobs than wall time: on an idle machine with
                # two cores the server's share is the floor of each run's wall time
                print(f"{name}: server CPU  bare {bare['server_cpu_seconds']:.1f} s, import "
                      f"{imp['server_cpu_seconds']:.1f} s; ratio bare/import = "
                      f"{bare['server_cpu_seconds'] / imp['server_cpu_seconds']:.2f}")


if __name__ == "__main__":
    main()

"""The store's tables (SQLAlchemy Core). Alembic migrations under ``store/migrations`` create them.

Provenance: every row records the ``import_id`` of the import batch or API call that last wrote it
(the ``imports`` table says which command, which file or endpoint, which source label and when) and
``written_at``. Facts and orders also carry their own ``source``, ``context`` and time of collection.

Keep this file and the migrations in step: a test compares the migrated schema with these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(200)
KEY = String(200)


def _provenance() -> list[Column[object]]:
    return [
        Column("import_id", BigInteger, ForeignKey("imports.id"), nullable=True),
        Column("written_at", DateTime(timezone=True), nullable=True),
    ]


imports = Table(
    "imports",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),  # customers, orders, ..., sample, api
    Column("origin", Text, nullable=False),  # a file path, "sample:completejourney", "api:/v1/consents"
    Column("source_label", String(200), nullable=True),  # the user's name for the export (--source)
    Column("format", String(20), nullable=True),  # csv, jsonl, parquet
    Column("mapping", JSON, nullable=True),  # the column mapping used
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("rows_imported", BigInteger, nullable=False, default=0),
    Column("rows_quarantined", BigInteger, nullable=False, default=0),
    Column("quarantine_file", Text, nullable=True),
    Column("tool_version", String(40), nullable=True),
    # running | finished | failed | interrupted (tactful.store.bookkeeping); pid, host and heartbeat_at
    # let another process tell a running import from one whose process died
    Column("state", String(20), nullable=False, server_default="running"),
    Column("pid", Integer, nullable=True),
    Column("host", String(255), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),  # why a failed import failed
)

# Marks on the store as a whole. Today one: ``incomplete`` (a bulk load that drops indexes, such as
# ``tactful sample``, set it before it started and clears it when it finished), which every command
# that opens the store reports with its fix.
store_state = Table(
    "store_state",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("fix", Text, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("host", String(255), nullable=True),
)

households = Table(
    "households",
    metadata,
    Column("id", ID, primary_key=True),
    Column("size", Integer),
    Column("composition", String(100)),
    Column("kids_count", Integer),
    Column("income", String(40)),
    Column("home_ownership", String(40)),
    *_provenance(),
)

customers = Table(
    "customers",
    metadata,
    Column("id", ID, primary_key=True),
    Column("household_id", ID, ForeignKey("households.id"), index=True),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("birth_date", Date),
    Column("age_range", String(40)),
    Column("openness", String(20)),  # closed | reserved | balanced | open | NULL (policy default)
    Column("deceased", Boolean, nullable=False, default=False),
    *_provenance(),
)

contact_points = Table(
    "contact_points",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # email | phone | postal
    Column("value", Text, nullable=False),
    Column("shared_with", String(20)),  # private | household | others | NULL (unknown)
    Column("verified_at", DateTime(timezone=True)),
    Column("bounced", Boolean, nullable=False, default=False),
    *_provenance(),
)

consents = Table(
    "consents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False, index=True),
    Column("purpose", KEY, nullable=False),  # a fideslang data use
    Column("channel", String(30)),  # NULL = every channel
    Column("status", String(20), nullable=False),  # granted | denied | withdrawn
    Column("source", String(20), nullable=False),  # form | portal | tcf | gpc | import | advisor | other
    Column("at", DateTime(timezone=True), nullable=False),
    Column("evidence", Text),
    *_provenance(),
)

products = Table(
    "products",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", Text),
    Column("department", String(200), index=True),
    Column("category", String(200), index=True),
    Column("subcategory", String(200)),
    Column("brand", String(200)),
    Column("implies", JSON, nullable=False, default=list),  # data categories a purchase reveals
    *_provenance(),
)

orders = Table(
    "orders",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("source", String(100), nullable=False, default="pos"),
    Column("context", String(100), nullable=False, default="checkout"),
    Column("store_id", String(100)),
    Column("total", Float),
    *_provenance(),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", ID, ForeignKey("orders.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("product_id", ID, ForeignKey("products.id"), nullable=False, index=True),
    Column("quantity", Float, nullable=False, default=1),
    Column("amount", Float),
    *_provenance(),
)

facts = Table(
    "facts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("category", KEY, nullable=False),
    Column("implies", JSON, nullable=False, default=list),
    Column("label", Text),
    Column("value", Text),
    Column("origin", String(20), nullable=False),
    Column("source", String(100), nullable=False),
    Column("context", String(100), nullable=False),
    Column("at", DateTime(timezone=True)),
    *_provenance(),
)

touches = Table(
    "touches",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("purpose", KEY, nullable=False),
    Column("channel", String(30), nullable=False),
    Column("contact_point_id", ID),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("campaign", String(200)),
    *_provenance(),
    Index("ix_touches_customer_id_at", "customer_id", "at"),
)

personas = Table(
    "personas",
    metadata,
    Column("key", String(100), primary_key=True),  # e.g. adult-shop-postcard
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("seed", String(20), nullable=False),  # the seed story, e.g. "001"
    Column("description", Text, nullable=False),
    UniqueConstraint("customer_id", "key"),
)

# --------------------------------------------------------------------------- campaigns (migration 0003)

campaign_runs = Table(
    "campaign_runs",
    metadata,
    Column("id", String(80), primary_key=True),  # e.g. demo-20261130T180000Z-3f2a
    Column("campaign", String(200), nullable=False),
    Column("campaign_hash", String(64)),  # sha256 of the campaign definition that ran
    Column("period", String(40), nullable=False),  # the outbox period, e.g. 2026-11
    Column("policy_name", String(200), nullable=False),
    Column("policy_version", String(40), nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("status", String(20), nullable=False),  # running | finished | failed
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("summary", JSON),
    Column("tool_version", String(40)),
    # migration 0004: who runs it (a "running" run whose process is gone on this host was interrupted)
    # and the pack's rule titles (the report's headings), so the report can be rebuilt from the store
    Column("host", String(255)),
    Column("pid", Integer),
    Column("rules", JSON),  # {rule id: title}
)

# The decision log: append-only and tamper-evident. Each row's row_hash covers its content and the
# previous row's hash (prev_hash), in seq order; `tactful audit verify` recomputes the chain.
# customer_id is deliberately not a foreign key: the log outlives the customer records it speaks of.
decisions = Table(
    "decisions",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3 ... the chain order
    Column("run_id", String(80), ForeignKey("campaign_runs.id"), nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("touch_id", String(200), nullable=False),
    Column("channel", String(30), nullable=False),
    Column("verdict", String(10), nullable=False),
    Column("max_depth", String(20), nullable=False),
    Column("named", Boolean, nullable=False),
    Column("reasons", JSON, nullable=False),  # [{rule, verdict, message, facts}]
    Column("policy_name", String(200), nullable=False),
    Column("policy_version", String(40), nullable=False),
    Column("input_hash", String(64), nullable=False),  # sha256 of the scenario that was judged
    Column("proposed_depth", String(20)),  # what the campaign proposed (the report compares)
    Column("withheld", Text),  # why nothing was sent, when nothing was (blocked, ask on a postcard...)
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    # migration 0004 (covered by row_hash when present): the message the campaign proposed to this
    # customer (on the first channel tried) and what this decision composed (a message or why nothing)
    Column("proposed", JSON),
    Column("message", JSON),
    UniqueConstraint("run_id", "customer_id", "touch_id"),
    Index("ix_decisions_customer_id", "customer_id"),
)

# Messages approved for sending. The idempotency key (sha256 of campaign, customer, touch, period) is
# unique: writing the same message twice, in a rerun or after a crash, never makes a second row.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("campaign", String(200), nullable=False),
    Column("customer_id", ID, ForeignKey("customers.id"), nullable=False),
    Column("touch_id", String(200), nullable=False),
    Column("period", String(40), nullable=False),
    Column("run_id", String(80), ForeignKey("campaign_runs.id"), nullable=False),
    Column("decision_seq", BigInteger, ForeignKey("decisions.seq")),
    Column("touch_kind", String(30), nullable=False),  # offer, survey ... (becomes the past touch's kind)
    Column("message_kind", String(30), nullable=False),  # offer | permission_request
    Column("purpose", KEY, nullable=False),
    Column("channel", String(30), nullable=False),
    Column("contact_point_id", ID, ForeignKey("contact_points.id")),
    Column("depth", String(20), nullable=False),  # what the composed text reveals
    Column("named", Boolean, nullable=False),
    Column("sender", Text, nullable=False),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("html", Boolean, nullable=False, default=False),
    Column("status", String(20), nullable=False),  # pending | sent | bounced | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("adapter", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_outbox_status_run_id", "status", "run_id"),
)

# --------------------------------------------------------------------------- batch runs (migration 0005)

# One row per `tactful batch decide --to-store` run. The run row is committed first (status running,
# with this host and process, so a run whose process died is recognised as interrupted); its decisions
# and the final status (finished, with the counts) are written in one transaction at the end, so no run
# is ever marked finished with part of its decisions, and a failed or killed run leaves none.
batch_runs = Table(
    "batch_runs",
    metadata,
    Column("id", String(80), primary_key=True),  # e.g. batch-20261201T020000Z-3f2a1b
    Column("status", String(20), nullable=False),  # running | finished | failed | interrupted
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("policy_name", String(200), nullable=False),
    Column("policy_version", String(40), nullable=False),
    Column("backend", String(20), nullable=False),  # duckdb | pyspark | postgres
    Column("features", String(20)),  # where the feature frame was built: backend | reference
    Column("evaluated_at", DateTime(timezone=True)),  # --now, when given
    Column("source", Text, nullable=False),  # the candidates file (absolute path)
    Column("source_sha256", String(64), nullable=False),  # of the candidates file's bytes
    Column("rows", BigInteger),  # decisions written (= candidate rows)
    Column("allow_count", BigInteger),
    Column("soften_count", BigInteger),
    Column("ask_count", BigInteger),
    Column("block_count", BigInteger),
    Column("error_count", BigInteger),  # rows that could not be judged (blocked, with their error)
    Column("by_rule", JSON),  # {rule id: rows where it fired}
    Column("error", Text),  # why a failed run failed
    Column("tool_version", String(40)),
    Column("host", String(255)),
    Column("pid", Integer),
)

# The decisions of a batch run, the columns of the Parquet output (tactful.batch.run.DECISIONS_SCHEMA)
# plus the run and the row number (1-based, the candidate's row in its file). Free text columns are
# Text: a candidates file may hold ids longer than the store's, and the row is still decided (blocked).
# customer_id is not a foreign key: a candidate may name a customer the store does not hold.
batch_decisions = Table(
    "batch_decisions",
    metadata,
    Column("run_id", String(80), ForeignKey("batch_runs.id"), primary_key=True),
    Column("row", BigInteger, primary_key=True, autoincrement=False),
    Column("customer_id", Text, nullable=False),
    Column("touch_id", Text, nullable=False),
    Column("verdict", String(10), nullable=False),
    Column("max_depth", String(20), nullable=False),
    Column("named", Boolean, nullable=False),
    Column("fired_rules", Text, nullable=False),  # rule ids joined by "," as in the Parquet output
    Column("failed_rules", Text, nullable=False),
    Column("policy_name", String(200), nullable=False),
    Column("policy_version", String(40), nullable=False),
    Column("input_hash", String(64)),  # None for a row that could not be judged
    Column("error", Text),
    Index("ix_batch_decisions_customer_id_run_id", "customer_id", "run_id"),
    # SQLite: the rows are the primary key's b-tree (no rowid table beside it); a run's rows are
    # appended in key order
    sqlite_with_rowid=False,
)

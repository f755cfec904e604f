"""Batch decisions: every (customer, candidate touch) at once, with the compiled evaluator
(:mod:`tactful.policy.compile`) on DuckDB (embedded default), Spark or PostgreSQL through Ibis.
See docs/batch.md."""

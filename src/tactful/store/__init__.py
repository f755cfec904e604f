"""The customer data store: SQLAlchemy tables, Alembic migrations, bulk writes with provenance."""

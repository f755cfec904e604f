"""Public test helpers: a throwaway PostgreSQL server, an in-memory store, a CLI runner."""

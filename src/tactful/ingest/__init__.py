"""Importers: CSV, JSON Lines and Parquet files into the store, with a column mapping, row-level
validation against the record models, a quarantine file for bad rows and provenance for good ones.

``run_import`` is the entry point; ``tactful import KIND FILE`` is its command line.
"""

from __future__ import annotations

from tactful.ingest.importer import DEFAULT_BATCH_SIZE, ImportResult, run_import
from tactful.ingest.kinds import KINDS, KindSpec
from tactful.ingest.mapping import ColumnMapping, load_mapping, parse_mapping

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KINDS",
    "ColumnMapping",
    "ImportResult",
    "KindSpec",
    "load_mapping",
    "parse_mapping",
    "run_import",
]

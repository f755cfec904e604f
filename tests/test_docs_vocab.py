"""Docs are part of the product: every Tactful vocabulary extension is documented."""

from __future__ import annotations

from pathlib import Path

from tactful import vocab

DOC = Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md"


def test_every_extension_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    keys = [t.key for tax in (vocab.data_categories(), vocab.data_uses()) for t in tax.terms.values()
            if t.extension]
    assert keys, "the extensions file defines no keys"
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/vocabulary.md lacks {missing}"


def test_every_enum_value_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    enums = [vocab.Openness, vocab.ContactKind, vocab.SharedWith, vocab.ConsentStatus, vocab.ConsentSource,
             vocab.FactKind, vocab.Origin, vocab.TouchKind, vocab.Channel, vocab.Depth, vocab.Trigger,
             vocab.Granularity, vocab.Verdict]
    missing = [f"{e.__name__}.{m.value}" for e in enums for m in e if f"`{m.value}`" not in text]
    assert not missing, f"docs/vocabulary.md lacks {missing}"

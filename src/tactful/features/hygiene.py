"""Family **data hygiene**: whether the scenario can be judged at all (every key known, every fact
reference resolved) and whether the touch uses facts. Also fills the fact labels reasons name."""

from __future__ import annotations

from functools import lru_cache

from tactful import vocab
from tactful.features.context import Derivation


@lru_cache(maxsize=4096)
def _known_category(key: str) -> bool:
    return key in vocab.data_categories()


@lru_cache(maxsize=4096)
def _known_use(key: str) -> bool:
    return key in vocab.data_uses()


def produce(d: Derivation) -> None:
    """unknown_vocabulary, missing_fact_reference, uses_facts (fail closed on unknown keys)."""
    v, touch, scenario = d.values, d.touch, d.scenario
    # the index holds the distinct keys; per-fact work again only when some key is unknown
    index = d.index
    unknown: list[str] = sorted(k for k in index.distinct if not _known_category(k))
    unknown_facts: list[str] = []
    if unknown:
        bad_keys = set(unknown)
        unknown_facts = [f.id for f in scenario.facts
                         if f.category in bad_keys or bad_keys.intersection(f.implies)]
    for k in (*touch.sender_implies, *touch.shows_implies):
        if not _known_category(k):
            unknown.append(k)
    for u in dict.fromkeys((touch.purpose, *(c.purpose for c in scenario.consents),
                            *(t.purpose for t in scenario.recent_touches))):
        if not _known_use(u):
            unknown.append(u)
    v["unknown_vocabulary"] = bool(unknown)
    d.facts["unknown_vocabulary"] = tuple(unknown_facts)
    d.keys["unknown_vocabulary"] = tuple(dict.fromkeys(unknown))

    missing_refs = [i for i in (*touch.uses, *touch.shows) if i not in index.by_id]
    v["missing_fact_reference"] = bool(missing_refs)
    d.facts["missing_fact_reference"] = ()
    d.keys["missing_fact_reference"] = tuple(dict.fromkeys(missing_refs))

    both = d.both
    v["uses_facts"] = bool(both)
    d.facts["uses_facts"] = tuple(f.id for f in both)

    labels = d.labels
    for f in both:
        labels[f.id] = f.label or f.id
    for fid in unknown_facts:
        labels[fid] = index.by_id[fid].label or fid

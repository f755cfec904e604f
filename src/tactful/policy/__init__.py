"""Policy packs: the rule language, its parser, the Python evaluator, lint and explain.

Public API: ``load_pack(path=None) -> Pack`` (None: the packaged default pack),
``evaluate(scenario, pack) -> Decision`` (never raises; fails closed) and :class:`Pack`.
"""

from __future__ import annotations

from tactful.policy.evaluate import evaluate
from tactful.policy.nodes import Pack, Rule
from tactful.policy.parse import default_pack, load_pack, parse_pack

__all__ = ["Pack", "Rule", "default_pack", "evaluate", "load_pack", "parse_pack"]

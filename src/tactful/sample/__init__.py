"""The sample world: The Complete Journey grocery data plus generated identities, contact points,
consents and events, and the seed personas (docs/sample-world.md)."""

from __future__ import annotations

from tactful.sample.build import AS_OF, BuildResult, build_sample
from tactful.sample.personas import PERSONA_IDS, PERSONAS, Persona

__all__ = ["AS_OF", "PERSONAS", "PERSONA_IDS", "BuildResult", "Persona", "build_sample"]

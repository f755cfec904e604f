"""Campaign definitions that ship with Tactful (the demo campaign's templates live in demo.yaml)."""

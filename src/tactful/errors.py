"""One root error; a subclass per stage. Each knows its CLI exit code and HTTP status.

The CLI turns any :class:`TactfulError` into a message and its exit code in one place
(``tactful.cli.main``); the API does the same with the HTTP status.
"""

from __future__ import annotations


class TactfulError(Exception):
    """Root of every error Tactful raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class VocabularyError(TactfulError):
    """An unknown data category, data use or enum value."""

    exit_code = 2
    http_status = 422


class ScenarioError(TactfulError):
    """A scenario document is invalid; the message names the field path."""

    exit_code = 2
    http_status = 422

    def __init__(self, message: str, *, errors: list[tuple[str, str]] | None = None,
                 source: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errors = errors or []
        self.source = source


class PolicyError(TactfulError):
    """A policy pack cannot be parsed or type-checked; names file, line and column."""

    exit_code = 2
    http_status = 500

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, hint: str | None = None) -> None:
        location = ""
        if file is not None:
            location = file
            if line is not None:
                location += f":{line}"
                if column is not None:
                    location += f":{column}"
            location += ": "
        super().__init__(f"{location}{message}", hint=hint)
        self.file = file
        self.line = line
        self.column = column


class EvaluationError(TactfulError):
    """A rule could not be evaluated. The evaluator turns it into a block, never an allow."""


class StoreError(TactfulError):
    """The store cannot be opened, created or upgraded."""

    exit_code = 3
    http_status = 503


class IngestError(TactfulError):
    """An import could not run at all (missing file, bad mapping). Bad rows are quarantined instead."""

    exit_code = 2
    http_status = 422


class QuarantineWarning(TactfulError):
    """An import finished but rows were quarantined: the command exits non-zero."""

    exit_code = 4
    http_status = 207


class SampleError(TactfulError):
    """The sample world could not be built."""


class SampleUsageError(SampleError):
    """The sample command was asked for something it will not do (a number out of range, a store
    that already holds data without ``--replace``): a usage problem, exit 2."""

    exit_code = 2


class NotFoundError(StoreError):
    """A record the caller named (a customer, an order, a product) is not in the store."""

    exit_code = 2
    http_status = 404


class CampaignError(TactfulError):
    """A campaign definition or one of its templates is invalid (names the file and the slot)."""

    exit_code = 2
    http_status = 422


class DeliveryError(TactfulError):
    """A delivery adapter is misconfigured (an output directory it may not use, a bad SMTP address).

    Failures to deliver one message are not raised: they are recorded on its outbox row."""

    exit_code = 2
    http_status = 422


class AuditChainBroken(StoreError):
    """The decision log's hash chain does not verify: a row was changed, removed or inserted."""

    exit_code = 3
    http_status = 500


class BatchError(TactfulError):
    """A batch run cannot start: a candidates file that cannot be read or lacks a column, an output
    that exists, a backend that is not available or does not support what was asked."""

    exit_code = 2
    http_status = 422

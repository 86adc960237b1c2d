"""Why a batch cannot run, as the batch modules raise it."""

from __future__ import annotations


class BatchError(ValueError):
    """The batch cannot run (bad file, unsupported format, nothing to resume)."""


class ColumnarRefused(BatchError):
    """The columnar engine cannot go on with a book (a CSV it cannot parse, a column type
    it does not read); the row-by-row engine can, and reports each bad row."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; the row-by-row engine (--engine local or auto) "
                         "rejects each row it cannot read")
        self.reason = reason

"""Which order statuses count as open and as pending.

Status is free text in the source. By default every status that is not terminal is open
(NULL and unknown values included: an order nobody closed is still open), and pending means
open. Comparison ignores case and surrounding blanks.
"""

from dataclasses import dataclass

from acme.config import DEFAULT_TERMINAL_STATUSES


def normalize(status: str | None) -> str | None:
    return None if status is None else status.strip().upper()


@dataclass(frozen=True)
class StatusClassification:
    terminal: tuple[str, ...] = DEFAULT_TERMINAL_STATUSES
    pending: tuple[str, ...] = ()  # empty: pending means open

    def is_open(self, status: str | None) -> bool:
        return normalize(status) not in {normalize(s) for s in self.terminal}

    def is_pending(self, status: str | None) -> bool:
        if not self.pending:
            return self.is_open(status)
        return normalize(status) in {normalize(s) for s in self.pending}

    def sql_params(self) -> dict[str, list[str]]:
        """The lists the report SQL compares against (already normalized)."""
        return {"terminal": [normalize(s) for s in self.terminal],
                "pending": [normalize(s) for s in self.pending]}


def classification_from(terminal: tuple[str, ...], pending: tuple[str, ...]) -> \
        StatusClassification:
    return StatusClassification(tuple(terminal), tuple(pending))

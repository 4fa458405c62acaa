"""Which transactions a REPEATABLE READ snapshot already saw, by transaction id.

When the slot existed before the copy, the stream replays transactions the copy already holds;
the copy's snapshot (xmin, xmax, in-progress xids, as `pg_current_snapshot()` gives them)
decides which to skip. pgoutput's Begin carries a 32-bit xid; snapshots carry 64-bit xids
(epoch << 32 | xid), so the stream's xid is widened relative to the snapshot's xmax.
"""

from dataclasses import dataclass

WRAP = 1 << 32
HALF = 1 << 31


@dataclass(frozen=True)
class SnapshotVisibility:
    xmin: int
    xmax: int
    in_progress: frozenset[int]

    def widen(self, xid32: int) -> int:
        """The 64-bit xid nearest to the snapshot's xmax with these low 32 bits."""
        candidate = (self.xmax & ~(WRAP - 1)) | xid32
        if candidate > self.xmax + HALF:
            candidate -= WRAP
        elif candidate < self.xmax - HALF:
            candidate += WRAP
        return candidate

    def saw(self, xid32: int) -> bool:
        """Whether the snapshot sees this transaction's effects (it committed before it)."""
        xid = self.widen(xid32)
        if xid < self.xmin:
            return True
        return xid < self.xmax and xid not in self.in_progress

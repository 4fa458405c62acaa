"""Report answers shared by every reader between two commits of the warehouse.

An answer only changes when a batch commits, so a server asked the same question by many
clients computes and encodes it once per batch: readers then cost almost nothing, and the
pipeline that shares their process (and its two cores) keeps its pace. The pipeline calls
`invalidate` after each commit; a question being answered meanwhile is stored under the
generation it started in, so it is never served past the next commit.
"""

import threading
from collections.abc import Callable, Hashable


class AnswerCache:
    def __init__(self, max_entries: int = 256):
        self.generation = 0
        self.max_entries = max_entries
        self.entries: dict[Hashable, tuple[int, bytes]] = {}
        self.locks: dict[Hashable, threading.Lock] = {}
        self.guard = threading.Lock()

    def invalidate(self) -> None:
        with self.guard:
            self.generation += 1
            self.entries.clear()

    def peek(self, key: Hashable) -> bytes | None:
        """The stored answer of this generation, if there is one (never blocks on a compute)."""
        stored = self.entries.get(key)
        return stored[1] if stored is not None and stored[0] == self.generation else None

    def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The stored answer of this generation, else `compute()` once for all who ask."""
        with self.guard:
            lock = self.locks.setdefault(key, threading.Lock())
        with lock:
            generation = self.generation
            stored = self.entries.get(key)
            if stored is not None and stored[0] == generation:
                return stored[1]
            answer = compute()
            with self.guard:
                if len(self.entries) >= self.max_entries:
                    self.entries.clear()
                self.entries[key] = (generation, answer)
            return answer

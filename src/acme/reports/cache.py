"""Report answers shared by every reader between two commits of the warehouse.

An answer only changes when a batch commits, so a server asked the same question by many
clients computes and encodes it once per batch: readers then cost almost nothing, and the
pipeline that shares their process (and its two cores) keeps its pace. The pipeline calls
`invalidate` after each commit.

An answer asked again after a commit is served as it was at the commit before (its freshness
says so) while one background refresh computes it anew: readers never queue behind a
computation that itself queues behind the pipeline's apply, and one refresh at a time keeps
them from starving the pipeline. An answer older than that is never served: a question asked
after two commits, or for the first time, is computed while the asker waits (once for all who
ask). An answer being computed across a commit is stored under the generation it started in.
"""

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor


class AnswerCache:
    def __init__(self, max_entries: int = 256):
        self.generation = 0
        self.max_entries = max_entries
        self.entries: dict[Hashable, tuple[int, bytes]] = {}
        self.locks: dict[Hashable, threading.Lock] = {}
        self.refreshing: set[Hashable] = set()
        self.guard = threading.Lock()
        self.refresher = ThreadPoolExecutor(1, thread_name_prefix="answer-refresh")

    def invalidate(self) -> None:
        with self.guard:
            self.generation += 1
            self.entries = {key: stored for key, stored in self.entries.items()
                            if stored[0] == self.generation - 1}

    def peek(self, key: Hashable) -> bytes | None:
        """An answer to serve without computing (never blocks): this generation's, or the one
        before while its refresh runs."""
        stored = self.entries.get(key)
        if stored is None:
            return None
        generation, answer = stored
        if generation == self.generation or \
                (generation == self.generation - 1 and key in self.refreshing):
            return answer
        return None

    def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """This generation's answer; else the one before, refreshed in the background; else
        `compute()` once for all who ask."""
        with self.guard:
            stored = self.entries.get(key)
            if stored is not None and stored[0] == self.generation - 1:
                if key not in self.refreshing:
                    self.refreshing.add(key)
                    self.refresher.submit(self._refresh, key, compute)
                return stored[1]
            lock = self.locks.setdefault(key, threading.Lock())
        with lock:
            return self._compute(key, compute)

    def _refresh(self, key: Hashable, compute: Callable[[], bytes]) -> None:
        try:
            with self.locks.setdefault(key, threading.Lock()):
                self._compute(key, compute)
        except Exception:  # the next asker computes it, and gets the error
            with self.guard:
                self.entries.pop(key, None)
        finally:
            with self.guard:
                self.refreshing.discard(key)

    def _compute(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """Under the key's lock: the stored answer of this generation, or a new one."""
        generation = self.generation
        stored = self.entries.get(key)
        if stored is not None and stored[0] == generation:
            return stored[1]
        answer = compute()
        with self.guard:
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            if key not in self.entries or self.entries[key][0] <= generation:
                self.entries[key] = (generation, answer)
        return answer

"""Answers shared between two commits: computed once, never served past an invalidation."""

import threading
import time

from acme.reports.cache import AnswerCache


def test_an_answer_is_computed_once_for_concurrent_askers_until_invalidated():
    cache, calls = AnswerCache(), []

    def compute() -> bytes:
        calls.append(1)
        time.sleep(0.05)
        return f"answer {len(calls)}".encode()

    results = []
    askers = [threading.Thread(target=lambda: results.append(cache.get("q", compute)))
              for _ in range(8)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert results == [b"answer 1"] * 8 and len(calls) == 1
    cache.invalidate()
    assert cache.get("q", compute) == b"answer 2"
    assert cache.get("other", compute) == b"answer 3"


def test_an_answer_begun_before_an_invalidation_is_not_served_after_it():
    cache = AnswerCache()

    def slow_and_invalidated() -> bytes:
        cache.invalidate()  # a batch commits while the answer is being computed
        return b"old"

    assert cache.get("q", slow_and_invalidated) == b"old"
    assert cache.get("q", lambda: b"new") == b"new"

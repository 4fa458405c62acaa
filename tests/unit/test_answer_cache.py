"""Answers shared between two commits: computed once; after a commit, the answer before it is
served only while its refresh runs, and never one older than that."""

import threading
import time

import pytest

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
    assert cache.get("other", compute) == b"answer 2"  # asked first: computed while waiting


def wait_for(cache: AnswerCache, key: str, answer: bytes) -> None:
    deadline = time.monotonic() + 5
    while cache.peek(key) != answer:
        assert time.monotonic() < deadline, f"never refreshed to {answer!r}"
        time.sleep(0.01)


def test_after_a_commit_the_answer_before_is_served_while_one_refresh_computes_the_new():
    cache, calls = AnswerCache(), []
    release = threading.Event()

    def compute() -> bytes:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return f"answer {len(calls)}".encode()

    assert cache.get("q", compute) == b"answer 1"
    cache.invalidate()
    assert cache.peek("q") is None  # no refresh running: only a computation may answer
    assert [cache.get("q", compute) for _ in range(5)] == [b"answer 1"] * 5
    assert cache.peek("q") == b"answer 1"  # while the refresh runs
    release.set()
    wait_for(cache, "q", b"answer 2")
    assert len(calls) == 2


def test_an_answer_two_commits_old_is_never_served():
    cache = AnswerCache()
    assert cache.get("q", lambda: b"old") == b"old"
    cache.invalidate()
    cache.invalidate()
    assert cache.peek("q") is None
    assert cache.get("q", lambda: b"new") == b"new"


def test_an_answer_begun_before_a_commit_is_stored_as_the_answer_before_it():
    cache = AnswerCache()

    def slow_and_invalidated() -> bytes:
        cache.invalidate()  # a batch commits while the answer is being computed
        return b"old"

    assert cache.get("q", slow_and_invalidated) == b"old"
    assert cache.peek("q") is None
    assert cache.get("q", lambda: b"new") == b"old"  # while "new" is computed
    wait_for(cache, "q", b"new")


def test_a_refresh_that_fails_leaves_the_next_asker_to_compute_and_see_the_error():
    cache = AnswerCache()
    assert cache.get("q", lambda: b"old") == b"old"
    cache.invalidate()

    def failing() -> bytes:
        raise RuntimeError("warehouse gone")

    assert cache.get("q", failing) == b"old"
    deadline = time.monotonic() + 5
    while "q" in cache.entries:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="warehouse gone"):
        cache.get("q", failing)

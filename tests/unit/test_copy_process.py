"""The copy's child process starts before it is given work (`ParallelCopy.start`), so a copy
that fails before then (no slot, a lost connection) must still end it, and leave no pipe."""

from acme.capture.copy_process import ParallelCopy


def test_a_copy_closed_before_its_start_ends_its_child_process():
    with ParallelCopy() as copy:
        assert copy.process.poll() is None  # started at once: loading its modules
    assert copy.process.returncode is not None
    assert copy.process.stdin.closed and copy.process.stdout.closed

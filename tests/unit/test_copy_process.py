"""The copy's child process starts, and connects, before it is given work
(`ParallelCopy.start`), so a copy that fails before then (no slot, a lost connection) must
still end it, and leave no pipe; and a connection it could not open is told once its batches
are read, in one line."""

import pytest

from acme.capture.copy_process import ParallelCopy
from acme.errors import SourceUnreachable

NOWHERE = "postgresql://nobody:secret@127.0.0.1:9/none"  # the discard port: refused


def test_a_copy_closed_before_its_start_ends_its_child_process():
    with ParallelCopy(NOWHERE, 2) as copy:
        assert copy.process.poll() is None  # started at once: loading its modules
    assert copy.process.returncode is not None
    assert copy.process.stdin.closed and copy.process.stdout.closed


def test_a_connection_the_child_could_not_open_is_told_when_reading_in_one_line():
    with ParallelCopy(NOWHERE, 2) as copy, pytest.raises(SourceUnreachable) as failed:
        copy.start("00000003-00000002-1", [])  # the work is only handed over
        next(iter(copy))
    message = str(failed.value)
    assert message.startswith("cannot open the copy connection to "
                              "postgresql://nobody:***@127.0.0.1:9/none: ")
    assert "secret" not in message and "\n" not in message

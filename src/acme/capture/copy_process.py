"""The initial copy's readers in a child process of their own (`copy_readers`).

ADBC's PostgreSQL driver 1.8 aborts its whole process (`std::logic_error`) when a query starts
on a connection the network cut, which a copy of many parts cannot rule out; later versions
raise instead, but spend about 2.5 times the CPU decoding COPY. So the readers run in a child
process: if the driver aborts, the child dies and the copy fails like a lost connection (the
copy is then redone), while `acme sync` lives on. The child also decodes without competing for
this process's GIL.

The child is `copy_readers` run as a program, given its work (pickled) on stdin: a fresh
interpreter that imports nothing of the parent's program (multiprocessing's spawn would re-run
the parent's main module, `acme`'s CLI included), nor numpy, which pyarrow imports whenever it
is installed and reading never uses: it took 40 ms of the child's 105 ms start, and its
OpenBLAS thread spun some 0.1 s of CPU beside the copy.
"""

import pickle
import subprocess
import sys
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from acme.capture import copy_readers
from acme.capture.copy_readers import (
    BATCH,
    DONE,
    ERROR,
    KIND_BYTES,
    LENGTH,
    READER_KEY,
    READY,
    TABLE_KEY,
    CopiedBatch,
    CopyQuery,
    CopySource,
    CopyWork,
)
from acme.capture.snapshot import CopyPart
from acme.config import mask_dsn
from acme.errors import SourceUnreachable
from acme.source.connect import DEFAULT_APPLICATION, conninfo

CHILD_PROGRAM = ("import runpy, sys; sys.modules['numpy'] = None; "
                 f"runpy.run_module({copy_readers.__name__!r}, run_name='__main__')")


class ParallelCopy:
    """Several connections inside the exported snapshot, reading the parts as Arrow batches
    in a child process. The child is started at once and connects: loading its modules and
    opening its connections take it some 0.2 s, which overlaps whatever the caller does (such
    as creating the slot) until `start` gives it the work, and it reads on while the caller
    prepares (creates the tables) until it iterates. Iterating yields each part's batches
    (parts interleave); closing stops the child. Use it as a context manager."""

    def __init__(self, dsn: str, connections: int,
                 application_name: str = DEFAULT_APPLICATION):
        self.source = mask_dsn(dsn)
        self.process = subprocess.Popen([sys.executable, "-c", CHILD_PROGRAM],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        pickle.dump(CopySource(conninfo(dsn, application_name), self.source, connections),
                    self.process.stdin)
        self.process.stdin.flush()

    def start(self, snapshot_name: str, parts: list[CopyPart]) -> None:
        """Give the child the snapshot and the parts; it imports the snapshot and reads on
        while the caller goes on (creating the tables). Whether its connections got into the
        snapshot is told by iterating."""
        work = CopyWork(snapshot_name,
                        [CopyQuery(part.table.spec.name, part.query()) for part in parts])
        try:
            with self.process.stdin:
                pickle.dump(work, self.process.stdin)
        except BrokenPipeError:
            pass  # the child ended: reading its answer says so

    def __enter__(self) -> "ParallelCopy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[CopiedBatch]:
        self._expect(READY)  # the connections are in the snapshot (or why they are not)
        while (message := self._receive())[:1] == BATCH:
            batch = pa.ipc.open_stream(memoryview(message)[KIND_BYTES:]).read_next_batch()
            metadata = batch.schema.metadata
            yield CopiedBatch(metadata[TABLE_KEY].decode(), batch.replace_schema_metadata(None),
                              int(metadata[READER_KEY]))
        self._check(message, DONE)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its connections end with it
        self.process.wait()
        self.process.stdin.close()  # still open when closed before `start`
        self.process.stdout.close()

    def _expect(self, kind: bytes) -> None:
        self._check(self._receive(), kind)

    def _receive(self) -> bytearray:
        header = _read_exactly(self.process.stdout, bytearray(LENGTH.size))
        message = header and _read_exactly(self.process.stdout,
                                           bytearray(LENGTH.unpack(header)[0]))
        if message is None:
            raise SourceUnreachable(
                f"copy connection to {self.source} lost: the copy process ended "
                f"(exit code {self.process.wait()})")
        return message

    def _check(self, message: bytearray, kind: bytes) -> None:
        if message[:1] == ERROR:
            raise pickle.loads(message[KIND_BYTES:])
        if message[:1] != kind:
            raise RuntimeError(f"unexpected message from the copy process: {message[:1]!r}")


def _read_exactly(stream: BinaryIO, buffer: bytearray) -> bytearray | None:
    """Fill the buffer from the stream; None if the stream ends first."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = stream.readinto(view[filled:])
        if not count:
            return None
        filled += count
    return buffer

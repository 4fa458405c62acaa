"""The initial copy's readers in a child process of their own.

ADBC's PostgreSQL driver 1.8 aborts its whole process (`std::logic_error`) when a query starts
on a connection the network cut, which a copy of many parts cannot rule out; later versions
raise instead, but spend about 2.5 times the CPU decoding COPY. So the readers
(`snapshot.CopyReaders`) run in a child process: if the driver aborts, the child dies and the
copy fails like a lost connection (the copy is then redone), while `acme sync` lives on. The
child also decodes without competing for this process's GIL.

The child is `python -m acme.capture.copy_process`, given its work (pickled) on stdin: a
fresh interpreter that imports nothing of the parent's program (multiprocessing's spawn would
re-run the parent's main module, `acme`'s CLI included). It answers on stdout with
length-prefixed messages; each batch is one Arrow IPC stream, so at most a pipe's worth and
the readers' bounded queue are in flight, and memory stays flat. An error of ours in the child
reaches this process as the same exception; a driver's error as `SourceUnreachable` (the copy
is redone).
"""

import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from acme.capture.snapshot import CopiedBatch, CopyPart, CopyReaders
from acme.config import mask_dsn
from acme.errors import AcmeError, SourceUnreachable
from acme.source.connect import DEFAULT_APPLICATION

_READY, _BATCH, _DONE, _ERROR = b"R", b"B", b"D", b"E"
# A message is its length, then its kind padded to 8 bytes, so that a batch's Arrow buffers
# keep their 8-byte alignment (DuckDB's Arrow scan copies, and warns about, misaligned ones).
_LENGTH = struct.Struct("<Q")
_KIND = 8
_TABLE_KEY, _READER_KEY = b"acme.table", b"acme.reader"


class ParallelCopy:
    """Several connections inside the exported snapshot, reading the parts as Arrow batches
    in a child process. The child is started at once: loading its modules takes it some
    0.3 s, which overlaps whatever the caller does (such as creating the slot) until `start`
    gives it the work. Iterating yields each part's batches (parts interleave); closing stops
    the child. Use it as a context manager."""

    def __init__(self):
        self.dsn = ""
        self.process = subprocess.Popen([sys.executable, "-m", __name__],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def start(self, dsn: str, snapshot_name: str, parts: list[CopyPart], connections: int,
              application_name: str = DEFAULT_APPLICATION) -> None:
        """Open the child's connections in the snapshot and begin the copy."""
        self.dsn = dsn
        with self.process.stdin:
            pickle.dump((dsn, snapshot_name, parts, connections, application_name),
                        self.process.stdin)
        self._expect(_READY)  # the connections are open (or why they are not)

    def __enter__(self) -> "ParallelCopy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[CopiedBatch]:
        while (message := self._receive())[:1] == _BATCH:
            batch = pa.ipc.open_stream(memoryview(message)[_KIND:]).read_next_batch()
            metadata = batch.schema.metadata
            yield CopiedBatch(metadata[_TABLE_KEY].decode(), batch.replace_schema_metadata(None),
                              int(metadata[_READER_KEY]))
        self._check(message, _DONE)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its connections end with it
        self.process.wait()
        self.process.stdin.close()  # still open when closed before `start`
        self.process.stdout.close()

    def _expect(self, kind: bytes) -> None:
        self._check(self._receive(), kind)

    def _receive(self) -> bytearray:
        header = _read_exactly(self.process.stdout, bytearray(_LENGTH.size))
        message = header and _read_exactly(self.process.stdout,
                                           bytearray(_LENGTH.unpack(header)[0]))
        if message is None:
            raise SourceUnreachable(
                f"copy connection to {mask_dsn(self.dsn)} lost: the copy process ended "
                f"(exit code {self.process.wait()})")
        return message

    def _check(self, message: bytearray, kind: bytes) -> None:
        if message[:1] == _ERROR:
            raise pickle.loads(message[_KIND:])
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


def _send(out: BinaryIO, kind: bytes, *payload: bytes | pa.Buffer) -> None:
    size = _KIND + sum(len(part) for part in payload)
    out.write(_LENGTH.pack(size) + kind.ljust(_KIND, b"\0"))
    for part in payload:
        out.write(part)
    out.flush()


def _serve(out: BinaryIO) -> None:
    """The child: read its work from stdin, send the batches to `out`."""
    dsn, snapshot_name, parts, connections, application_name = pickle.load(sys.stdin.buffer)
    try:
        with CopyReaders(dsn, snapshot_name, parts, connections, application_name) as readers:
            _send(out, _READY)
            for copied in readers:
                batch = copied.batch.replace_schema_metadata(
                    {_TABLE_KEY: copied.table.encode(), _READER_KEY: str(copied.reader).encode()})
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, batch.schema) as stream:
                    stream.write_batch(batch)
                _send(out, _BATCH, sink.getvalue())
        _send(out, _DONE)
    except BaseException as error:  # noqa: BLE001 -- every failure goes to the parent
        if not isinstance(error, AcmeError):  # a driver's error: the copy is redone
            lines = str(error).strip().splitlines() or [type(error).__name__]
            error = SourceUnreachable(f"copy connection to {mask_dsn(dsn)} lost: {lines[0]}")
        _send(out, _ERROR, pickle.dumps(error))


if __name__ == "__main__":
    # The messages get stdout to themselves: anything else printed goes to stderr.
    messages = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(messages)

"""The initial copy's readers in a child process of their own.

ADBC's PostgreSQL driver 1.8 aborts its whole process (`std::logic_error`) when a query starts
on a connection the network cut, which a copy of many parts cannot rule out; later versions
raise instead, but spend about 2.5 times the CPU decoding COPY. So the readers
(`snapshot.CopyReaders`) run in a child process: if the driver aborts, the child dies and the
copy fails like a lost connection (the copy is then redone), while `acme sync` lives on. The
child also decodes without competing for this process's GIL.

Each batch crosses a pipe as one Arrow IPC message; the child stops at a bounded number of
unsent batches (the pipe and the readers' queue), so memory stays flat. The child is spawned
(not forked: this process runs DuckDB threads); an error of ours in it reaches this process as
the same exception, and a driver's error as `SourceUnreachable` (the copy is redone).
"""

import multiprocessing
import pickle
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pyarrow as pa

from acme.capture.snapshot import CopiedBatch, CopyPart, CopyReaders
from acme.config import mask_dsn
from acme.errors import AcmeError, SourceUnreachable
from acme.source.connect import DEFAULT_APPLICATION

_READY, _BATCH, _DONE, _ERROR = b"R", b"B", b"D", b"E"
_TABLE_KEY = b"acme.table"


class ParallelCopy:
    """Several connections inside the exported snapshot, reading the parts as Arrow batches
    in a child process. Iterating yields each part's batches (parts interleave); closing
    stops the child. Use it as a context manager."""

    def __init__(self, dsn: str, snapshot_name: str, parts: list[CopyPart], connections: int,
                 application_name: str = DEFAULT_APPLICATION):
        self.dsn = dsn
        context = multiprocessing.get_context("spawn")
        self.receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_read_in_child, name="acme-snapshot-reader", daemon=True,
            args=(dsn, snapshot_name, parts, connections, application_name, sender))
        self.process.start()
        sender.close()
        try:
            self._expect(_READY)  # the connections are open (or why they are not)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "ParallelCopy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[CopiedBatch]:
        while (message := self._receive())[:1] == _BATCH:
            batch = pa.ipc.open_stream(memoryview(message)[1:]).read_next_batch()
            table = batch.schema.metadata[_TABLE_KEY].decode()
            yield CopiedBatch(table, batch.replace_schema_metadata(None))
        self._check(message, _DONE)

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()  # its connections end with it
        self.process.join()
        self.receiver.close()

    def _expect(self, kind: bytes) -> None:
        self._check(self._receive(), kind)

    def _receive(self) -> bytes:
        try:
            return self.receiver.recv_bytes()
        except (EOFError, OSError):
            self.process.join()
            raise SourceUnreachable(
                f"copy connection to {mask_dsn(self.dsn)} lost: the copy process ended "
                f"(exit code {self.process.exitcode})") from None

    def _check(self, message: bytes, kind: bytes) -> None:
        if message[:1] == _ERROR:
            raise pickle.loads(message[1:])
        if message[:1] != kind:
            raise RuntimeError(f"unexpected message from the copy process: {message[:1]!r}")


def _read_in_child(dsn: str, snapshot_name: str, parts: list[CopyPart], connections: int,
                   application_name: str, sender: Connection) -> None:
    try:
        with CopyReaders(dsn, snapshot_name, parts, connections, application_name) as readers:
            sender.send_bytes(_READY)
            for copied in readers:
                batch = copied.batch.replace_schema_metadata(
                    {_TABLE_KEY: copied.table.encode()})
                sink = pa.BufferOutputStream()
                sink.write(_BATCH)
                with pa.ipc.new_stream(sink, batch.schema) as stream:
                    stream.write_batch(batch)
                sender.send_bytes(sink.getvalue())
        sender.send_bytes(_DONE)
    except BaseException as error:  # noqa: BLE001 -- every failure goes to the parent
        if not isinstance(error, AcmeError):  # a driver's error: the copy is redone
            lines = str(error).strip().splitlines() or [type(error).__name__]
            error = SourceUnreachable(f"copy connection to {mask_dsn(dsn)} lost: {lines[0]}")
        sender.send_bytes(_ERROR + pickle.dumps(error))

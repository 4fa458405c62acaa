"""Client CPU of the streaming hot path, without a server: decoding, assembling and staging
the same pgoutput messages message by message (the reference) and a chunk at a time.

    python -m benchmarks.decode [--changes 200000]

The messages are order_items updates as PostgreSQL sends them (8 columns, text values), in
1,000-row and 4-row transactions. Both paths run in the same process one after the other, so
the ratio says what the chunk-at-a-time decoder buys even on a busy machine.
"""

import argparse
import os
import struct
import time

from acme.capture.pgoutput import Begin, decode, decode_begin, decode_commit
from acme.capture.transactions import RowChange, TransactionAssembler
from acme.warehouse.stage import ChangeStager
from benchmarks.common import report

ITEM_COLUMNS = (("order_item_id", 20), ("order_id", 20), ("product_id", 20), ("quanity", 23),
                ("updated_at", 1114), ("updated_by", 20), ("created_at", 1114),
                ("created_by", 20))
OID = 16400
PG_MICROS = 848_000_000_000_000  # 2026-11-16 in microseconds since 2000-01-01


def _cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(values: list[str | None]) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        else:
            raw = value.encode()
            out += b"t" + struct.pack("!i", len(raw)) + raw
    return out


def messages(changes: int, rows_per_transaction: int) -> list[bytes]:
    relation = (b"R" + struct.pack("!I", OID) + _cstring("operations")
                + _cstring("order_items") + b"d" + struct.pack("!h", len(ITEM_COLUMNS)))
    for number, (name, type_oid) in enumerate(ITEM_COLUMNS):
        relation += struct.pack("!b", number == 0) + _cstring(name) + struct.pack("!Ii",
                                                                                  type_oid, -1)
    out, lsn = [], 1 << 32
    for transaction in range(changes // rows_per_transaction):
        out.append(b"B" + struct.pack("!qqI", lsn + 64, PG_MICROS + transaction, transaction))
        if transaction == 0:
            out.append(relation)
        for row in range(transaction * rows_per_transaction,
                         (transaction + 1) * rows_per_transaction):
            values = [str(row), str(row // 3), str(row % 500 + 1), str(row % 7 + 1),
                      "2026-11-25 10:00:00.123", "5", "2026-11-20 09:00:00", "1"]
            out.append(b"U" + struct.pack("!I", OID) + b"N" + _tuple(values))
        out.append(b"C" + struct.pack("!bqqq", 0, lsn + 64, lsn + 128, PG_MICROS + transaction))
        lsn += 256
    return out


def reference_seconds(payloads: list[bytes]) -> float:
    """Every message decoded and fed to the assembler, every row staged decoded."""
    assembler, stager, begin = TransactionAssembler(), ChangeStager(), None
    started = time.process_time()
    for payload in payloads:
        message = decode(payload)
        if isinstance(message, Begin):
            begin = message
        for event in assembler.feed(message):
            if isinstance(event, RowChange):
                stager.add(event, begin.commit_time, begin.final_lsn)
    stager.drain()
    return time.process_time() - started


def chunked_seconds(payloads: list[bytes]) -> float:
    """As sync's stream does: row messages kept undecoded and staged a chunk at a time, each
    transaction's Begin and Commit decoded straight from their bytes."""
    assembler, stager = TransactionAssembler(), ChangeStager()
    pending = stager.pending
    started = time.process_time()
    for payload in payloads:
        kind = payload[:1]
        if kind in (b"I", b"U", b"D"):
            pending.append(payload)
            if len(pending) >= stager.chunk_rows:
                stager.stage_pending(assembler)
        elif kind == b"B":
            begin = decode_begin(payload)
            assembler.began(begin)
            stager.transaction_began(begin.commit_time, begin.final_lsn)
        elif kind == b"C":
            assembler.committed(decode_commit(payload))
        else:
            stager.stage_pending(assembler)
            assembler.feed(decode(payload))
    stager.stage_pending(assembler)
    stager.drain()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200_000)
    args = parser.parse_args()
    figures = []
    for rows in (1000, 4):
        payloads = messages(args.changes, rows)
        reference = min(reference_seconds(payloads) for _ in range(2))
        chunked = min(chunked_seconds(payloads) for _ in range(2))
        # Shown as changes/s so that the ratio reads "times faster than the reference".
        figures.append((f"decode + stage, {rows}-row transactions (vs one by one)",
                        args.changes / chunked, args.changes / reference, "changes/s"))
    report("decode", figures, {"changes": args.changes, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()

"""Hand-made pgoutput v1 messages, byte for byte as the protocol documentation lays them out."""

import struct

from acme.capture.pgoutput import UNCHANGED


def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(values) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            raw = value.encode()
            out += b"t" + struct.pack("!i", len(raw)) + raw
    return out


def begin(final_lsn: int, micros: int, xid: int) -> bytes:
    return b"B" + struct.pack("!qqI", final_lsn, micros, xid)


def commit(commit_lsn: int, end_lsn: int, micros: int) -> bytes:
    return b"C" + struct.pack("!bqqq", 0, commit_lsn, end_lsn, micros)


def relation(oid: int, name: str, columns, namespace: str = "operations") -> bytes:
    """columns: (name, type_oid, typmod, is_key)"""
    out = b"R" + struct.pack("!I", oid) + cstring(namespace) + cstring(name) + b"d"
    out += struct.pack("!h", len(columns))
    for column_name, type_oid, typmod, is_key in columns:
        out += struct.pack("!b", 1 if is_key else 0) + cstring(column_name)
        out += struct.pack("!Ii", type_oid, typmod)
    return out


def insert(oid: int, values) -> bytes:
    return b"I" + struct.pack("!I", oid) + b"N" + tuple_data(values)


def update(oid: int, values, old=None, key_only: bool = True) -> bytes:
    out = b"U" + struct.pack("!I", oid)
    if old is not None:
        out += (b"K" if key_only else b"O") + tuple_data(old)
    return out + b"N" + tuple_data(values)


def delete(oid: int, old, key_only: bool = True) -> bytes:
    return b"D" + struct.pack("!I", oid) + (b"K" if key_only else b"O") + tuple_data(old)


def truncate(oids, options: int = 0) -> bytes:
    return b"T" + struct.pack("!Ib", len(oids), options) + struct.pack(f"!{len(oids)}I", *oids)


ORDERS = [("order_id", 20, -1, True), ("status", 1043, -1, False), ("note", 25, -1, False)]

"""Many pgoutput row messages decoded at once, straight into one Arrow string array per column.

The streaming hot path. Decoding a message at a time in Python costs a few microseconds per
row (a slice and a `decode()` per value, a tuple, a dataclass), about what the raw receive of
the whole message costs. Here the row messages received since the last chunk are joined into
one buffer (`RowMessages`), which tells each one's kind, relation and tuple marker for all of
them at once (numpy over the message positions); the plain ones of a relation are then walked a
column at a time (`new_tuples_as_columns`): each column's kinds, lengths and value offsets are
a handful of array operations, and Arrow's take copies its values out of the buffer, without a
Python object per value.

Only the plain case is handled: every value text or NULL, every tuple as wide as the relation.
Anything else (unchanged TOAST, binary values, a malformed message) returns None, and the
caller decodes those messages one by one with the reference decoder (`pgoutput.decode`), which
also says what is wrong with a malformed one. `tests/unit/test_columnar.py` holds the two equal
on random messages.
"""

import numpy as np
import pyarrow as pa

# Insert: 'I', relation oid (4 bytes), 'N', tuple. Update without an old tuple: 'U', oid, 'N',
# tuple. Both tuples start at byte 6 with their column count (int16).
NEW_TUPLE_AT = 6
INSERT, UPDATE, NEW_TUPLE = ord("I"), ord("U"), ord("N")
_TEXT, _NULL = ord("t"), ord("n")
_PADDING = b"\0" * 8  # so reading a length past the last NULL stays inside the buffer


def _big_endian(buffer: np.ndarray, dtype: str) -> np.ndarray:
    """The big-endian unsigned integers starting at each byte of `buffer` (a view)."""
    size = np.dtype(dtype).itemsize
    return np.ndarray((len(buffer) - size + 1,), dtype=dtype, buffer=buffer, strides=(1,))


class RowMessages:
    """Row messages (Insert, Update, Delete) joined into one buffer, with each one's bounds,
    kind and relation oid: read for all of them at once, never a message at a time."""

    def __init__(self, payloads: list[bytes]):
        count = len(payloads)
        self.joined = b"".join(payloads) + _PADDING
        self.buffer = np.frombuffer(self.joined, dtype=np.uint8)
        self.int16, self.int32 = _big_endian(self.buffer, ">u2"), _big_endian(self.buffer, ">u4")
        sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=count)
        self.ends = np.cumsum(sizes)
        self.starts = self.ends - sizes
        # A message too short to hold its header reads bytes of the next one (or the
        # padding) here: `complete` rules it out.
        self.complete = sizes >= NEW_TUPLE_AT + 2
        self.kinds = self.buffer[self.starts]
        self.relation_oids = self.int32[self.starts + 1]
        self.markers = self.buffer[self.starts + 5]

    def new_tuple_only(self, relation_oid: int, updates_too: bool) -> np.ndarray:
        """Positions of the messages of this relation that carry only a new tuple: Inserts,
        and Updates without an old tuple when `updates_too` (their new tuple is the row)."""
        kinds = self.kinds == INSERT
        if updates_too:
            kinds |= self.kinds == UPDATE
        return np.flatnonzero(kinds & (self.relation_oids == relation_oid)
                              & (self.markers == NEW_TUPLE) & self.complete)


def new_tuples_as_columns(messages: RowMessages, positions: np.ndarray,
                          width: int) -> list[pa.Array] | None:
    """The new tuples of the messages at `positions` (Inserts / Updates without an old tuple,
    `RowMessages.new_tuple_only`), one string array per column (NULL for NULL); None when one
    is not the plain case (see the module docstring)."""
    count = len(positions)
    if count == 0:
        return [pa.nulls(0, pa.string()) for _ in range(width)]
    if len(messages.joined) >= 1 << 31:
        return None  # past 32-bit offsets (never at the stager's chunk size)
    buffer, int16, int32 = messages.buffer, messages.int16, messages.int32
    ends = messages.ends[positions]
    at = messages.starts[positions] + NEW_TUPLE_AT
    if (ends < at + 2).any() or (int16[at] != width).any():
        return None
    at = at + 2
    # Each value's first byte and the byte after it, by message then column: a NULL is an
    # empty value after its kind byte.
    bounds = np.empty((count, width, 2), dtype=np.int64)
    valid = np.empty((width, count), dtype=bool)
    for column in range(width):
        if (at >= ends).any():
            return None
        kinds = buffer[at]
        is_text = kinds == _TEXT
        if not (is_text | (kinds == _NULL)).all():
            return None  # unchanged TOAST or a binary value: the reference decoder's job
        lengths = np.where(is_text, int32[at + 1], 0)
        first = at + np.where(is_text, 5, 1)
        at = first + lengths
        if (lengths >= 1 << 31).any() or (at > ends).any():
            return None
        bounds[:, column, 0], bounds[:, column, 1] = first, at
        valid[column] = is_text
    if (at != ends).any():
        return None  # bytes after the tuple: not a message shape we know
    # The buffer cut at every bound is a binary array whose odd items are the values, message
    # after message: Arrow's take copies a column's values out of it.
    offsets = np.concatenate(([0], bounds.reshape(-1), [len(messages.joined)])).astype(np.int32)
    segments = pa.Array.from_buffers(pa.binary(), len(offsets) - 1,
                                     [None, pa.py_buffer(offsets),
                                      pa.py_buffer(messages.joined)])
    columns = []
    for column in range(width):
        values = segments.take(pa.array(1 + 2 * (np.arange(count) * width + column)))
        array = _strings(values, valid[column])
        if array is None:
            return None
        columns.append(array)
    return columns


def _strings(values: pa.Array, valid: np.ndarray) -> pa.Array | None:
    """`values` (binary) as strings, NULL where not `valid`; None unless all are UTF-8."""
    nulls = len(valid) - int(valid.sum())
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    array = pa.Array.from_buffers(pa.string(), len(values), [validity, *values.buffers()[1:]],
                                  null_count=nulls)
    try:
        array.validate(full=True)  # UTF-8, as `bytes.decode()` would insist
    except pa.ArrowInvalid:
        return None
    return array

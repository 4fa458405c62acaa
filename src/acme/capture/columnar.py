"""Many pgoutput row messages decoded at once, straight into one Arrow string array per column.

The streaming hot path. Decoding a message at a time in Python costs a few microseconds per
row (a slice and a `decode()` per value, a tuple, a dataclass), about what the raw receive of
the whole message costs. Here the messages of a chunk are joined into one buffer and walked a
column at a time for all messages together (numpy over the message positions): each column's
kinds, lengths and value offsets are a handful of array operations, and its values are gathered
into an Arrow buffer without a Python object per value.

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
_TEXT, _NULL = ord("t"), ord("n")
_PADDING = b"\0" * 8  # so reading a length past the last NULL stays inside the buffer


def new_tuples_as_columns(payloads: list[bytes], width: int) -> list[pa.Array] | None:
    """The new tuples of Insert / old-tuple-less Update messages, one string array per column
    (NULL for NULL); None when a message is not the plain case (see the module docstring)."""
    count = len(payloads)
    if count == 0:
        return [pa.nulls(0, pa.string()) for _ in range(width)]
    buffer = np.frombuffer(b"".join(payloads) + _PADDING, dtype=np.uint8)
    sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=count)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    if (sizes < NEW_TUPLE_AT + 2).any():
        return None
    at = starts + NEW_TUPLE_AT
    if (_int(buffer, at, 2) != width).any():
        return None
    at = at + 2
    columns = []
    for _ in range(width):
        if (at >= ends).any():
            return None
        kinds = buffer[at]
        is_text = kinds == _TEXT
        if not (is_text | (kinds == _NULL)).all():
            return None  # unchanged TOAST or a binary value: the reference decoder's job
        lengths = np.where(is_text, _int(buffer, at + 1, 4), 0)
        values_at = at + 5
        at = at + 1 + np.where(is_text, 4 + lengths, 0)
        if (lengths >= 1 << 31).any() or (at > ends).any():
            return None
        column = _string_array(buffer, values_at, lengths, is_text)
        if column is None:
            return None
        columns.append(column)
    if (at != ends).any():
        return None  # bytes after the tuple: not a message shape we know
    return columns


def _int(buffer: np.ndarray, at: np.ndarray, size: int) -> np.ndarray:
    """The big-endian unsigned integers of `size` bytes at each position."""
    value = buffer[at].astype(np.int64)
    for offset in range(1, size):
        value = (value << 8) | buffer[at + offset]
    return value


def _string_array(buffer: np.ndarray, values_at: np.ndarray, lengths: np.ndarray,
                  valid: np.ndarray) -> pa.Array | None:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 1 << 31:
        return None
    # Byte i of the values is buffer[values_at[row] + (i - offsets[row])] for the row holding it.
    gather = np.repeat(values_at - offsets[:-1], lengths) + np.arange(offsets[-1])
    data = buffer[gather]
    nulls = len(valid) - int(valid.sum())
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    array = pa.Array.from_buffers(pa.string(), len(lengths),
                                  [validity, pa.py_buffer(offsets.astype(np.int32)),
                                   pa.py_buffer(data)], null_count=nulls)
    try:
        array.validate(full=True)  # UTF-8, as `bytes.decode()` would insist
    except pa.ArrowInvalid:
        return None
    return array

"""A minimal GGUF v3 writer for the tests: files made byte by byte, independently
of the library under test (and of gguf-py)."""

from __future__ import annotations

import struct
from typing import Any, List, Sequence, Tuple, Union

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
        BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


def _string(s: Union[str, bytes]) -> bytes:
    b = s if isinstance(s, bytes) else s.encode("utf-8")  # bytes: exactly those, UTF-8 or not
    return struct.pack("<Q", len(b)) + b


def _value(vtype: int, value: Any) -> bytes:
    if vtype == STRING:
        return _string(value)
    if vtype == ARRAY:
        item_type, items = value
        out = struct.pack("<IQ", item_type, len(items))
        return out + b"".join(_value(item_type, v) for v in items)
    return struct.pack(_FMT[vtype], value)


def write_gguf(
    path: Any,
    tensors: Sequence[Tuple[str, int, Sequence[int], bytes]],
    metadata: Sequence[Tuple[str, int, Any]] = (),
    alignment: int = 32,
) -> None:
    """Writes a GGUF v3 file: ``tensors`` as (name, ggml type id, ne in ggml
    order, raw blocks); ``metadata`` as (key, value type, value), arrays as
    (ARRAY, (item type, items))."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, vtype, value in metadata:
        head += _string(key) + struct.pack("<I", vtype) + _value(vtype, value)
    offsets: List[int] = []
    at = 0
    for _, _, _, data in tensors:
        offsets.append(at)
        at += (len(data) + alignment - 1) // alignment * alignment
    for (name, ty, ne, _), off in zip(tensors, offsets):
        head += _string(name) + struct.pack("<I", len(ne))
        head += b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", ty, off)
    head += b"\0" * (-len(head) % alignment)
    body = b""
    for (_, _, _, data), off in zip(tensors, offsets):
        body += b"\0" * (off - len(body)) + data
    with open(path, "wb") as f:
        f.write(head + body)

"""The few ONNX protobuf messages a model needs, written directly (the `onnx` package takes ~1 s to import).

Messages are lists of byte chunks, joined once at the end: the weights (90 MB for all-MiniLM-L6-v2) are
copied into the model's bytes once, not once per level of nesting.

Only what `onnx_bert.py` builds: a model with opset imports and one graph of nodes (string, int, float and
int-list attributes), raw-data tensors and value infos. Field numbers are those of onnx/onnx.proto; ONNX
Runtime parses the bytes and validates the graph when the session is created.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import numpy as np

# TensorProto.DataType
FLOAT, INT32, INT64 = 1, 6, 7
_DTYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.int32): INT32, np.dtype(np.int64): INT64}
# AttributeProto.AttributeType
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7

Message: TypeAlias = Sequence[bytes | memoryview]  # a message's serialised bytes, in chunks


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _message(field: int, message: Message) -> list[bytes | memoryview]:
    """A nested message as a length-delimited field, still in chunks."""
    return [_varint(field << 3 | 2), _varint(sum(len(c) for c in message)), *message]


def _messages(field: int, messages: Iterable[Message]) -> list[bytes | memoryview]:
    return [chunk for m in messages for chunk in _message(field, m)]


def attribute(name: str, value: int | float | str | Sequence[int]) -> Message:
    """An AttributeProto: int, float, string or a list of ints."""
    out = _bytes(1, name)
    if isinstance(value, bool | int):
        return [out + _int(3, int(value)) + _int(20, _ATTR_INT)]
    if isinstance(value, float):
        return [out + _varint(2 << 3 | 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)]
    if isinstance(value, str):
        return [out + _bytes(4, value) + _int(20, _ATTR_STRING)]
    return [out + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)]


def node(op: str, inputs: Sequence[str], outputs: Sequence[str], domain: str = "", **attrs: object) -> Message:
    """A NodeProto (attributes as keyword arguments)."""
    out = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    out += _bytes(3, outputs[0]) + _bytes(4, op) + (_bytes(7, domain) if domain else b"")
    return [out, *_messages(5, (attribute(k, v) for k, v in attrs.items()))]  # type: ignore[arg-type]


def tensor(name: str, array: np.ndarray) -> Message:
    """A TensorProto with the array's little-endian bytes as raw data (a view of them, not a copy)."""
    array = np.asarray(array)
    array = np.require(array, array.dtype.newbyteorder("<"), "C")  # (not ascontiguousarray: it makes scalars 1-D)
    head = b"".join(_int(1, d) for d in array.shape) + _int(2, _DTYPES[array.dtype]) + _bytes(8, name)
    data = array.reshape(-1).data.cast("B")
    return [head, *_message(9, [data])]


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> Message:
    """A ValueInfoProto of a tensor; a str in `shape` is a named (dynamic) dimension."""
    dims = ([_int(1, d) if isinstance(d, int) else _bytes(2, d)] for d in shape)
    tensor_type = [_int(1, elem_type), *_message(2, _messages(1, dims))]
    return [_bytes(1, name), *_message(2, _message(1, tensor_type))]


def model(
    nodes: Sequence[Message], initializers: Sequence[Message], inputs: Sequence[Message],
    outputs: Sequence[Message], opsets: dict[str, int], *, name: str = "graph", ir_version: int = 9,
) -> bytes:  # fmt: skip
    """A serialised ModelProto of one graph."""
    graph = [*_messages(1, nodes), _bytes(2, name), *_messages(5, initializers)]
    graph += [*_messages(11, inputs), *_messages(12, outputs)]
    opset_ids = ([(_bytes(1, domain) if domain else b"") + _int(2, version)] for domain, version in opsets.items())
    head = _int(1, ir_version) + _bytes(2, "caprl-index")
    return b"".join([head, *_message(7, graph), *_messages(8, opset_ids)])

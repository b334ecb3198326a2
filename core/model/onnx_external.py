"""Which tensors of an ONNX file keep their data outside it (``external data``: a ``sketch.data``
beside ``sketch.onnx``, which ONNX Runtime reads from the file's folder or the working directory).
The manifest's sha256 covers the ONNX file alone, so such weights would load unchecked.

Read straight from the protobuf wire format: the desktop package carries ONNX Runtime but not the
``onnx`` package. Only the messages that can hold a tensor are descended into (the graph, its nodes'
attributes, sub-graphs, functions, training graphs); every other field is skipped by its length."""

from __future__ import annotations

# message -> {field number: message it holds}; see onnx.proto
_GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE, _FUNCTION, _TRAINING = range(7)
_MODEL = -1
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTRIBUTE},
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MAX_DEPTH = 64  # sub-graphs nest; a file nested deeper than this is not a model anyone exported


class MalformedOnnx(ValueError):
    pass


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise MalformedOnnx("truncated or overlong number")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview):
    """(field number, wire type, value): an int for numbers, a memoryview for length-delimited."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = None, at + 8
        elif wire == 5:
            value, at = None, at + 4
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        else:
            raise MalformedOnnx(f"unsupported wire type {wire}")
        if at > len(data):
            raise MalformedOnnx("truncated field")
        yield number, wire, value


def _location(entry: memoryview) -> str | None:
    """The value of an external-data entry (a key/value pair) whose key is ``location``."""
    key = value = None
    for number, wire, field in _fields(entry):
        if wire == 2 and number in (1, 2):
            text = bytes(field).decode("utf-8", "replace")
            key, value = (text, value) if number == 1 else (key, text)
    return value if key == "location" else None


def external_tensors(model: bytes) -> list[tuple[str, str]]:
    """(name, file) of each tensor in ``model`` (an ONNX file's bytes) whose data lives outside it
    (the file as the model names it; '' when it names none)."""
    found: list[tuple[str, str]] = []
    stack = [(memoryview(model), _MODEL, 0)]
    while stack:
        data, kind, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise MalformedOnnx("messages nested too deep")
        name, external, location = "", False, ""
        for number, wire, value in _fields(data):
            if kind == _TENSOR:
                if number == _TENSOR_NAME and wire == 2:
                    name = bytes(value).decode("utf-8", "replace")
                elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
                    external = True
                    location = _location(value) or location
                elif number == _TENSOR_DATA_LOCATION and wire == 0 and value == _EXTERNAL:
                    external = True
                continue
            child = _CHILDREN[kind].get(number)
            if child is not None and wire == 2:
                stack.append((value, child, depth + 1))
        if external:
            found.append((name, location))
    return found

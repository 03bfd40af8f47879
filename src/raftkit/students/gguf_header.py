"""Reading a few metadata keys from a GGUF file's header without the ``gguf`` package.

The ``gguf`` reader maps every field of the file (the whole vocabulary included), which takes
seconds; checking that a BASE is a usable GGUF file and reading its architecture and context
length should not. The layout read here is GGUF v2/v3 (little-endian): magic ``GGUF``, version,
tensor count, key/value count, then typed key/value pairs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection
from typing import BinaryIO

from raftkit.errors import UsageError

__all__ = ["GGUF_MAGIC", "read_gguf_metadata"]

GGUF_MAGIC = b"GGUF"

# value type -> struct format of one scalar (strings and arrays are handled apart)
_SCALARS = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9

Value = int | float | bool | str | None


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise EOFError("the file ends inside its metadata")
    return data


def _string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(handle, 8))
    return _read(handle, length).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int, keep: bool) -> Value:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        raw = _read(handle, struct.calcsize(fmt))
        return struct.unpack(fmt, raw)[0] if keep else None
    if kind == _STRING:
        text = _string(handle)
        return text if keep else None
    if kind == _ARRAY:
        element, count = struct.unpack("<IQ", _read(handle, 12))
        if element in _SCALARS:
            handle.seek(struct.calcsize(_SCALARS[element]) * count, os.SEEK_CUR)
        else:
            for _ in range(count):
                _value(handle, element, keep=False)
        return None  # arrays (the vocabulary) are never what we look for
    raise ValueError(f"unknown metadata value type {kind}")


def read_gguf_metadata(path: str | os.PathLike[str], keys: Collection[str]) -> dict[str, Value]:
    """The scalar values of ``keys`` found in the header of the GGUF file ``path``.

    A key written as ``{arch}.context_length`` is looked up with ``{arch}`` replaced by the
    file's ``general.architecture``. Raises :class:`~raftkit.errors.UsageError` when the file
    is not GGUF v2/v3.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise UsageError(f"{name} is not a GGUF file (it does not start with 'GGUF')")
            version, _tensors, count = struct.unpack("<IQQ", _read(handle, 20))
            if version not in (2, 3):
                raise UsageError(
                    f"{name} is GGUF version {version}; transformers reads versions 2 and 3"
                )
            found: dict[str, Value] = {}
            wanted = set(keys)
            for _ in range(count):
                key = _string(handle)
                (kind,) = struct.unpack("<I", _read(handle, 4))
                architecture = found.get("general.architecture")
                templated = {k.replace("{arch}", str(architecture)) for k in wanted}
                keep = key in templated or key == "general.architecture"
                value = _value(handle, kind, keep)
                if keep:
                    found[key] = value
                if architecture is not None and templated <= found.keys():
                    break
    except (EOFError, ValueError, struct.error) as e:
        raise UsageError(f"{name} is not a readable GGUF file: {e}") from e
    except OSError as e:
        raise UsageError(f"cannot read {name}: {e.strerror or e}") from e
    architecture = found.get("general.architecture")
    return {
        key: found.get(key.replace("{arch}", str(architecture)))
        for key in (*keys, "general.architecture")
    }

"""Reader and writer for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

Header: two zero bytes, a type code, the number of dimensions d, then d big-endian uint32
sizes, then the data in C order. Sizes are checked against the bytes actually present
*before* anything is allocated, so a forged header cannot trigger a huge allocation.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy

_TYPES = {0x08: numpy.dtype(numpy.uint8), 0x09: numpy.dtype(numpy.int8), 0x0B: numpy.dtype(">i2"),
          0x0C: numpy.dtype(">i4"), 0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}
_CODES = {v.newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _TYPES.items()}
MAX_BYTES = 2 ** 31  # refuse to decompress more than this from one file


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head == b"\x1f\x8b":
            chunks, total = [], 0
            try:
                with gzip.GzipFile(fileobj=fh) as gz:
                    # decompress the header first, then no more than the size it declares (+1 byte
                    # to notice trailing data): a small forged file cannot make us inflate gigabytes
                    head = gz.read(4)
                    chunks.append(head)
                    limit = MAX_BYTES
                    if len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in _TYPES:
                        dims = gz.read(4 * head[3])
                        chunks.append(dims)
                        if len(dims) == 4 * head[3]:
                            count = 1
                            for i in range(head[3]):
                                count *= int.from_bytes(dims[4 * i:4 * i + 4], "big")
                            limit = min(MAX_BYTES, 4 + len(dims) + count * _TYPES[head[2]].itemsize + 1)
                    total = sum(len(c) for c in chunks)
                    while total < limit and (chunk := gz.read(min(1 << 22, limit - total))):
                        total += len(chunk)
                        chunks.append(chunk)
                    if total >= MAX_BYTES and gz.read(1):
                        raise ValueError(f"read_idx({path!r}): decompressed data exceeds {MAX_BYTES} bytes")
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(f"read_idx({path!r}): corrupt gzip data ({exc})") from None
            return b"".join(chunks)
        return fh.read()


def parse_idx(data: bytes, where: str = "parse_idx") -> numpy.ndarray:
    """Decode IDX bytes into a native-endian NumPy array."""
    if len(data) < 4:
        raise ValueError(f"{where}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{where}: bad magic number (first two bytes must be zero)")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise ValueError(f"{where}: unknown IDX type code 0x{code:02x}")
    if ndim == 0 or 4 + 4 * ndim > len(data):
        raise ValueError(f"{where}: header declares {ndim} dimensions but the file is {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _TYPES[code]
    count = 1
    for s in shape:
        count *= s
    offset = 4 + 4 * ndim
    expected = count * dtype.itemsize
    if expected != len(data) - offset:
        raise ValueError(f"{where}: header declares shape {shape} ({expected} bytes of data) "
                         f"but the file holds {len(data) - offset} bytes")
    arr = numpy.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> numpy.ndarray:
    """Read an IDX file (``.gz`` or plain, detected from its first bytes)."""
    path = os.fspath(path)
    return parse_idx(_read_bytes(path), f"read_idx({path!r})")


def write_idx(path: str | os.PathLike, array: numpy.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX; gzip-compressed when ``compress`` (default: path ends in .gz)."""
    from ..fsutil import atomic_write_bytes

    path = os.fspath(path)
    arr = numpy.asarray(array)
    code = _CODES.get(arr.dtype)
    if code is None:
        raise TypeError(f"write_idx: unsupported dtype {arr.dtype}; expected one of "
                        f"{sorted(str(d) for d in _CODES)}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"write_idx: expected 1 to 255 dimensions, got {arr.ndim}")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    body = header + numpy.ascontiguousarray(arr, dtype=_TYPES[code]).tobytes()
    if compress if compress is not None else path.endswith(".gz"):
        body = gzip.compress(body, compresslevel=9, mtime=0)
    atomic_write_bytes(path, body)

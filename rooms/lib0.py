"""lib0 encoding (the variable-length integers and byte strings Yjs and y-protocols use).

`Reader` never reads past the end of its data: every varint and length is
checked against the bytes actually present, and anything malformed raises
`ProtocolError` with the byte offset. Pure; no I/O.
"""

from __future__ import annotations

from typing import NoReturn

# lib0 varUints are JavaScript numbers: at most 2**53 - 1, i.e. 8 bytes of 7 bits.
MAX_VARUINT_BYTES = 8
MAX_SAFE_INTEGER = 2**53 - 1


class ProtocolError(ValueError):
    """Bytes that are not a valid message. `reason` says what is wrong (safe to show)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reader:
    """A cursor over bytes that refuses to read past the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def fail(self, what: str) -> NoReturn:
        raise ProtocolError(f"{what} at byte {self.pos}")

    def var_uint(self, what: str) -> int:
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x80:  # most varints are one byte
            self.pos = pos + 1
            return data[pos]
        end = min(len(data), pos + MAX_VARUINT_BYTES)
        value = 0
        shift = 0
        for i in range(pos, end):
            byte = data[i]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = i + 1
                if value > MAX_SAFE_INTEGER:
                    self.fail(f"{what} larger than 2**53")
                return value
            shift += 7
        if end - pos < MAX_VARUINT_BYTES:
            self.fail(f"truncated {what}")
        self.fail(f"{what} varint longer than {MAX_VARUINT_BYTES} bytes")

    def var_bytes(self, what: str) -> bytes:
        length = self.var_uint(f"{what} length")
        end = self.pos + length
        if end > len(self.data):
            self.fail(f"{what} length {length} exceeds the {len(self.data) - self.pos} bytes left")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self, what: str) -> str:
        raw = self.var_bytes(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            self.fail(f"{len(self.data) - self.pos} unexpected trailing bytes after {what}")


def var_uint(value: int) -> bytes:
    """lib0 varUint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def var_string(text: str) -> bytes:
    return var_bytes(text.encode("utf-8"))

"""Minimal reproductions of the updates that crash yrs (pycrdt 0.14, yrs 0.2x) with
a native stack overflow: the process dies with SIGSEGV, nothing can catch it.
Upstream reports to pycrdt/yrs could not be filed from where these were found
(no GitHub access): these builders are the reproductions to attach.

    python tests/fuzz/poison.py any 40000 | python -c 'import sys, pycrdt; pycrdt.Doc().apply_update(sys.stdin.buffer.read())'
        -> Segmentation fault (main thread, 8 MiB stack; 20,000 is survived)
    maps 60000: applies fine; the delete of its top map (`deep_maps_delete`)
        then segfaults (50,000 deep does too; 30,000 does not)

ysync refuses both before yrs sees them (`ysync.rooms.structure`).
"""

from __future__ import annotations

import sys

from ysync.rooms.lib0 import var_string, var_uint

CLIENT = 7


def deep_any(depth: int, client: int = CLIENT) -> bytes:
    """One item in root array "a" whose Any content is `depth` nested arrays."""
    content = b"\x75\x01" * (depth - 1) + b"\x75\x00"
    item = b"\x08" + var_uint(1) + var_string("a") + var_uint(1) + content
    return b"\x01\x01" + var_uint(client) + var_uint(0) + item + b"\x00"


def deep_maps(depth: int, client: int = CLIENT) -> bytes:
    """Maps nested `depth` deep under root map "m", each at key "k" of the one above."""
    structs = [b"\x27" + var_uint(1) + var_string("m") + var_string("k") + var_uint(1)]
    for clock in range(1, depth):
        parent = var_uint(0) + var_uint(client) + var_uint(clock - 1)
        structs.append(b"\x27" + parent + var_string("k") + var_uint(1))
    return b"\x01" + var_uint(depth) + var_uint(client) + var_uint(0) + b"".join(structs) + b"\x00"


def deep_maps_delete(client: int = CLIENT) -> bytes:
    """The 9-byte update deleting the top map of `deep_maps` (and so all below it)."""
    return b"\x00\x01" + var_uint(client) + b"\x01" + var_uint(0) + var_uint(1)


if __name__ == "__main__":
    kind, depth = sys.argv[1], int(sys.argv[2])
    sys.stdout.buffer.write(deep_any(depth) if kind == "any" else deep_maps(depth))

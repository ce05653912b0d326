"""What an update would build, checked before yrs sees it (pure, no I/O).

yrs decodes `Any` content and deletes nested shared types recursively: an
update nesting `Any` arrays ~30,000 deep, or a delete of maps nested ~50,000
deep, overflows the native stack and kills the whole process (no exception
can catch that). So every update a room applies is first read here, in
Python, without recursion:

- `Any` content (and a sub-document's options) may nest at most `max_depth`
  arrays/objects;
- a shared type may sit at most `max_depth` types below a root type. Type
  nesting builds up over many updates, so each room keeps a `StructureIndex`:
  the depth of the parent of every item it integrated (runs of clocks per
  client; only depths above 0 are stored, so a flat document costs one int per
  client). It is fed from what yrs actually integrated (the room's observer),
  so edits made on `room.doc` directly are counted too.
- structs yrs cannot integrate yet (a clock gap, or an origin not seen yet)
  are kept by yrs as "pending" and integrated later, when the gap is filled:
  the index keeps them too (bounded in count and bytes) and checks their depth
  as soon as what they hang from arrives, so a pending chain cannot slip in.

`scan(update)` reads the update (yjs v1 encoding: per client, structs; the
delete set after them is left to yrs, which decodes it without recursion) and
raises `ProtocolError` naming the problem. Nothing is recorded until the room
calls `commit` with what yrs integrated.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from heapq import merge
from itertools import islice

from ysync.rooms.lib0 import ProtocolError, Reader, var_uint

# Item content kinds (info & 0x1F), yjs/src/structs/Item.js contentRefs.
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
)
_XML_ELEMENT, _XML_HOOK = 3, 5  # type refs that carry a node name
_HAS_ORIGIN, _HAS_RIGHT_ORIGIN, _HAS_PARENT_SUB = 0x80, 0x40, 0x20

# lib0 Any tags (lib0/encoding.js writeAny).
_ANY_FIXED = {127: 0, 126: 0, 124: 4, 123: 8, 122: 8, 121: 0, 120: 0}
_ANY_INT, _ANY_STRING, _ANY_OBJECT, _ANY_ARRAY, _ANY_BYTES = 125, 119, 118, 117, 116


class PendingOverflow(ProtocolError):
    """Too much would wait for missing updates. Transient for an honest client (the
    node may just be behind another): the room answers 4503, retry with backoff."""


# The deepest nesting any node may be configured to accept, for readers that do
# not know the setting (compaction): 7x below the ~30,000 that crash yrs.
SAFE_NESTING_DEPTH = 4096

# Bytes that can open an Any array/object, and info bytes of a shared-type item
# (content kind 7, any flags): nesting D deep needs at least D of them.
_NESTING_BYTES = bytes((_ANY_ARRAY, _ANY_OBJECT))
_TYPE_INFO_BYTES = bytes(flags | 7 for flags in range(0, 256, 32))


def cannot_nest(updates: Sequence[bytes], depth: int) -> bool:
    """True when these updates, together, certainly nest nothing `depth` deep: no
    single one holds `depth` bytes that could open an Any level, and all of them
    hold fewer than `depth` bytes that could be a shared type's item. Counted in C
    (`bytes.translate`): a reader of many stored updates skips the scan with it."""
    types = 0
    for update in updates:
        size = len(update)
        if size - len(update.translate(None, _NESTING_BYTES)) >= depth:
            return False
        types += size - len(update.translate(None, _TYPE_INFO_BYTES))
        if types >= depth:
            return False
    return True


ROOT = 0  # ref kind: the parent is a root type (a name): its items sit at depth 0
PARENT = 1  # ref is the parent type's item: depth = that item's depth + 1
SIBLING = 2  # ref is a neighbour (origin or right origin): same parent, same depth
NONE = 3  # GC: no content, nothing hangs from it


@dataclass(slots=True)
class Struct:
    """One struct of an update: the clocks it covers and what its depth comes from."""

    client: int
    clock: int
    end: int
    size: int  # bytes on the wire
    ref_kind: int
    ref_client: int = 0
    ref_clock: int = 0
    is_type: bool = False
    depth: int = -1  # depth of its parent type below a root; -1: not known yet
    offset: int = 0  # where it starts in the update
    epoch: int = 0  # the scan that last found it waiting
    any_depth: int = 0  # nesting of its JSON (Any) content


@dataclass(slots=True)
class Scan:
    """What `StructureIndex.scan` found: structs yrs may integrate now or later."""

    structs: list[Struct]
    pending_bytes: int = 0  # bytes of structs that will wait for a gap (this scan's view)
    pending_count: int = 0


def read_update(data: bytes, max_depth: int) -> list[Struct]:
    """The structs of a yjs v1 update; `ProtocolError` if malformed or if `Any`
    content nests deeper than `max_depth`."""
    reader = Reader(data)
    structs: list[Struct] = []
    clients = reader.var_uint("update client count")
    if clients > len(data):
        reader.fail(f"update claims {clients} clients")
    for _ in range(clients):
        count = reader.var_uint("update struct count")
        if count > reader.left:
            reader.fail(f"update claims {count} structs")
        client = reader.var_uint("update client")
        clock = reader.var_uint("update clock")
        for _ in range(count):
            start = reader.pos
            struct = _read_struct(reader, client, clock, max_depth)
            struct.offset, struct.size = start, reader.pos - start
            clock = struct.end
            if struct.ref_kind != -1:
                structs.append(struct)
    return structs


def _read_struct(reader: Reader, client: int, clock: int, max_depth: int) -> Struct:
    data = reader.data
    if reader.pos >= len(data):
        reader.fail("truncated struct")
    info = data[reader.pos]
    reader.pos += 1
    kind = info & 0x1F
    if kind in (_GC, _SKIP):
        length = reader.var_uint("struct length")
        # A skip is a gap in the update, not a struct: marked to be dropped.
        return Struct(client, clock, clock + length, 0, NONE if kind == _GC else -1)
    struct = Struct(client, clock, clock, 0, ROOT)
    if info & _HAS_ORIGIN:
        struct.ref_kind = SIBLING
        struct.ref_client = reader.var_uint("origin client")
        struct.ref_clock = reader.var_uint("origin clock")
    if info & _HAS_RIGHT_ORIGIN:
        right_client = reader.var_uint("right origin client")
        right_clock = reader.var_uint("right origin clock")
        if struct.ref_kind != SIBLING:
            struct.ref_kind = SIBLING
            struct.ref_client, struct.ref_clock = right_client, right_clock
    if not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN):
        if reader.var_uint("parent info") == 1:
            reader.var_bytes("root type name")
        else:
            struct.ref_kind = PARENT
            struct.ref_client = reader.var_uint("parent client")
            struct.ref_clock = reader.var_uint("parent clock")
        if info & _HAS_PARENT_SUB:
            reader.var_bytes("parent key")
    struct.end = clock + _read_content(reader, kind, struct, max_depth)
    if struct.end == clock:
        reader.fail("struct of length 0")
    return struct


def _read_content(reader: Reader, kind: int, struct: Struct, max_depth: int) -> int:
    """Skip one item's content; its length in clocks."""
    if kind in (_DELETED, _JSON, _ANY):
        length = reader.var_uint("content length")
        if length > reader.left and kind != _DELETED:
            reader.fail(f"content claims {length} values")
        for _ in range(length if kind != _DELETED else 0):
            if kind == _JSON:
                reader.var_bytes("JSON content")
            else:
                struct.any_depth = max(struct.any_depth, _skip_any(reader, max_depth))
        return length
    if kind == _STRING:
        raw = reader.var_bytes("string content")
        if raw.isascii():
            return len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            reader.fail("string content is not UTF-8")
        # Clocks count UTF-16 code units, as JavaScript strings do.
        return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)
    if kind in (_BINARY, _EMBED):
        reader.var_bytes("content")
    elif kind == _FORMAT:
        reader.var_bytes("format key")
        reader.var_bytes("format value")
    elif kind == _TYPE:
        struct.is_type = True
        if reader.var_uint("type ref") in (_XML_ELEMENT, _XML_HOOK):
            reader.var_bytes("XML node name")
    elif kind == _DOC:
        reader.var_bytes("sub-document guid")
        struct.any_depth = _skip_any(reader, max_depth)
    else:
        reader.fail(f"unknown content kind {kind}")
    return 1


def _skip_any(reader: Reader, max_depth: int) -> int:
    """Skip one lib0 Any value without recursion, refusing nesting over `max_depth`;
    how deep it nests."""
    data = reader.data
    pos = reader.pos
    if pos < len(data) and data[pos] == _ANY_STRING:  # most values are plain strings
        reader.pos = pos + 1
        reader.var_bytes("Any string")
        return 0
    deepest = 0
    levels = [[1, False]]  # per open level: values still to read, whether keyed (object)
    while levels:
        level = levels[-1]
        if level[0] == 0:
            levels.pop()
            continue
        level[0] -= 1
        if level[1]:
            reader.var_bytes("Any object key")
        if reader.pos >= len(data):
            reader.fail("truncated Any value")
        tag = data[reader.pos]
        reader.pos += 1
        fixed = _ANY_FIXED.get(tag)
        if fixed is not None:
            if reader.pos + fixed > len(data):
                reader.fail("truncated Any value")
            reader.pos += fixed
        elif tag == _ANY_INT:
            _skip_var_int(reader)
        elif tag in (_ANY_STRING, _ANY_BYTES):
            reader.var_bytes("Any string")
        elif tag in (_ANY_ARRAY, _ANY_OBJECT):
            count = reader.var_uint("Any length")
            if count > reader.left:
                reader.fail(f"Any value claims {count} entries")
            if len(levels) > max_depth:
                reader.fail(f"content nests deeper than {max_depth} levels (max_nesting_depth)")
            levels.append([count, tag == _ANY_OBJECT])
            deepest = max(deepest, len(levels) - 1)
        else:
            reader.fail(f"unknown Any type {tag}")
    return deepest


def _skip_var_int(reader: Reader) -> None:
    data = reader.data
    for _ in range(10):
        if reader.pos >= len(data):
            reader.fail("truncated Any integer")
        reader.pos += 1
        if data[reader.pos - 1] < 0x80:
            return
    reader.fail("Any integer longer than 10 bytes")


@dataclass(slots=True)
class _Runs:
    """Per client: the depth of the parent of integrated clocks (runs above 0)."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)

    def get(self, clock: int) -> int:
        i = bisect_right(self.starts, clock) - 1
        if i >= 0 and clock < self.ends[i]:
            return self.depths[i]
        return 0

    def add(self, start: int, end: int, depth: int) -> None:
        if self.ends and self.ends[-1] == start and self.depths[-1] == depth:
            self.ends[-1] = end
            return
        self.starts.append(start)
        self.ends.append(end)
        self.depths.append(depth)


def _clock_of(struct: Struct) -> int:
    return struct.clock


def _client_clock(struct: Struct) -> tuple[int, int]:
    return struct.client, struct.clock


class _Overlay:
    """Structs not integrated yet (an update's), by client and clock; built on
    first use (most updates hang only from what is integrated already)."""

    __slots__ = ("_clocks", "_groups", "_structs")

    def __init__(self, structs: list[Struct]) -> None:
        self._structs = structs
        self._groups: dict[int, list[Struct]] | None = None
        self._clocks: dict[int, list[int]] = {}

    @property
    def groups(self) -> dict[int, list[Struct]]:
        if self._groups is None:
            groups: dict[int, list[Struct]] = {}
            for struct in self._structs:
                groups.setdefault(struct.client, []).append(struct)
            for client, group in groups.items():
                group.sort(key=_clock_of)
                self._clocks[client] = [s.clock for s in group]
            self._groups = groups
        return self._groups

    def find(self, client: int, clock: int) -> Struct | None:
        group = self.groups.get(client)
        if group is None:
            return None
        i = bisect_right(self._clocks[client], clock) - 1
        if i < 0:
            return None
        struct = group[i]
        return struct if clock < struct.end else None


_WAITING = -2  # depth of a struct that hangs from something not seen yet


class _Pending:
    """Structs yrs keeps until what they depend on arrives: per client, by clock."""

    __slots__ = ("by_client", "bytes", "clocks", "count", "waiting_on")

    def __init__(self) -> None:
        self.by_client: dict[int, list[Struct]] = {}
        self.clocks: dict[int, list[int]] = {}
        self.waiting_on: dict[int, set[int]] = {}  # ref client -> clients waiting on it
        self.count = 0
        self.bytes = 0

    def find(self, client: int, clock: int) -> Struct | None:
        clocks = self.clocks.get(client)
        if not clocks:
            return None
        i = bisect_right(clocks, clock) - 1
        if i < 0:
            return None
        struct = self.by_client[client][i]
        return struct if clock < struct.end else None

    def after(self, client: int, clock: int) -> Iterator[Struct]:
        """The client's pending structs from the one holding `clock` on, in clock
        order, lazily (a caller stops at the first gap)."""
        clocks = self.clocks.get(client)
        if not clocks:
            return iter(())
        return islice(self.by_client[client], max(bisect_right(clocks, clock) - 1, 0), None)

    def add(self, struct: Struct) -> None:
        client = struct.client
        clocks = self.clocks.setdefault(client, [])
        group = self.by_client.setdefault(client, [])
        i = bisect_right(clocks, struct.clock)
        if i and clocks[i - 1] == struct.clock:
            return  # sent twice: yrs keeps one
        clocks.insert(i, struct.clock)
        group.insert(i, struct)
        self.count += 1
        self.bytes += struct.size
        if struct.ref_kind in (PARENT, SIBLING):
            self.waiting_on.setdefault(struct.ref_client, set()).add(client)

    def drop_integrated(self, client: int, clock_end: int) -> None:
        group = self.by_client.get(client)
        if not group:
            return
        keep = 0
        while keep < len(group) and group[keep].end <= clock_end:
            self.count -= 1
            self.bytes -= group[keep].size
            keep += 1
        if keep:
            del group[:keep]
            del self.clocks[client][:keep]
        if not group:
            del self.by_client[client], self.clocks[client]
        if not self.count:
            self.waiting_on.clear()  # entries only ever point at pending structs


_NO_PENDING = _Pending()  # shared, never added to: rooms with nothing pending


class StructureIndex:
    """One room's view of its document's structure (see the module doc).

    Work per update is proportional to the update, plus the pending structs it
    lets yrs integrate: pending structs it leaves waiting are not looked at.
    Slots and a shared empty pending store keep an idle room's index small."""

    __slots__ = (
        "_advanced",
        "_clock_end",
        "_epoch",
        "_pending",
        "_runs",
        "items",
        "max_depth",
        "max_pending",
        "max_pending_bytes",
    )

    def __init__(self, max_depth: int, *, max_pending: int = 0, max_pending_bytes: int = 0) -> None:
        self.max_depth = max_depth
        self.max_pending = max_pending  # pending structs a room may hold; 0: no bound
        self.max_pending_bytes = max_pending_bytes  # their bytes; 0: no bound
        self._clock_end: dict[int, int] = {}  # per client: clocks below are integrated
        self._runs: dict[int, _Runs] = {}
        self._pending = _NO_PENDING  # replaced by a store of its own when needed
        self._epoch = 0  # scans so far: a waiting struct is retried once per scan
        self._advanced: list[int] = []  # clients whose clock moved since keep_pending
        # Structs integrated so far: an upper bound on yrs' blocks (it merges some),
        # which is what a room's memory grows with (~200 bytes each).
        self.items = 0

    @property
    def pending_count(self) -> int:
        return self._pending.count

    @property
    def pending_bytes(self) -> int:
        return self._pending.bytes

    def scan(self, update: bytes) -> Scan:
        """Check an update before it is applied; `ProtocolError` if it would nest
        too deep or leave too much waiting. Records nothing (see `commit`)."""
        self._epoch += 1
        structs = read_update(update, self.max_depth)
        clock_end = self._clock_end
        fresh = [s for s in structs if s.end > clock_end.get(s.client, 0)]
        overlay = _Overlay(fresh)
        for struct in fresh:
            if struct.depth != -1:
                continue
            depth = self._depth_of(struct, overlay)  # usually known at once
            if type(depth) is int and not (struct.is_type and depth >= self.max_depth):
                struct.depth = depth
            else:
                self._resolve(struct, overlay, check=True)
        scan = Scan(structs)
        pending = self._pending
        if not pending.count:
            # The common case, nothing waiting so far: what this update leaves waiting.
            new = self._left_waiting(fresh)
            scan.pending_count = len(new)
            scan.pending_bytes = sum(s.size for s in new)
            self._check_pending(scan)
            return scan
        released = self._released(overlay)
        waiting = {id(s) for s in fresh} - {id(s) for s in released}
        new = [s for s in fresh if id(s) in waiting and pending.find(s.client, s.clock) is None]
        old = [s for s in released if pending.find(s.client, s.clock) is s]
        scan.pending_count = pending.count + len(new) - len(old)
        scan.pending_bytes = pending.bytes + sum(s.size for s in new) - sum(s.size for s in old)
        self._check_pending(scan)
        return scan

    def _left_waiting(self, fresh: list[Struct]) -> list[Struct]:
        """With nothing pending yet: the structs yrs cannot integrate (a gap before
        them in their client's clocks, or hanging from something unknown)."""
        reached: dict[int, int] = {}
        waiting = []
        for struct in sorted(fresh, key=_client_clock) if len(fresh) > 1 else fresh:
            end = reached.get(struct.client)
            if end is None:
                end = self._clock_end.get(struct.client, 0)
            if end >= 0 and struct.clock <= end and struct.depth >= 0:
                reached[struct.client] = max(end, struct.end)
            else:
                reached[struct.client] = -1  # yrs integrates a client's structs in order
                waiting.append(struct)
        return waiting

    def _released(self, overlay: _Overlay) -> list[Struct]:
        """The structs (the update's and pending ones) yrs will integrate: per client,
        those contiguous from its clock, each hanging from something known. Pending
        structs are visited only where a client's clock moves."""
        released: list[Struct] = []
        reached = {c: self._clock_end.get(c, 0) for c in overlay.groups}
        queue = list(overlay.groups)
        while queue:
            client = queue.pop()
            start = reached.get(client, self._clock_end.get(client, 0))
            candidates = merge(
                overlay.groups.get(client, []),
                self._pending.after(client, start),
                key=_clock_of,
            )
            end = start
            for struct in candidates:
                if struct.end <= end:
                    continue
                if struct.clock > end or not self._known(struct, overlay):
                    break
                released.append(struct)
                end = struct.end
            if end > start:
                reached[client] = end
                queue.extend(self._pending.waiting_on.get(client, ()))
        return released

    def _known(self, struct: Struct, overlay: _Overlay) -> bool:
        """Whether what `struct` hangs from is known (resolving it again if it
        waited, once per scan): it may be integrated."""
        if struct.depth == _WAITING and struct.epoch != self._epoch:
            struct.epoch = self._epoch
            struct.depth = -1
        if struct.depth == -1:
            self._resolve(struct, overlay, check=True)
        return struct.depth >= 0

    def _check_pending(self, scan: Scan) -> None:
        if self.max_pending and scan.pending_count > self.max_pending:
            raise PendingOverflow(
                f"{scan.pending_count} structs would wait for missing updates, over the "
                f"{self.max_pending} allowed (max_gap_structs)"
            )
        if self.max_pending_bytes and scan.pending_bytes > self.max_pending_bytes:
            raise PendingOverflow(
                f"{scan.pending_bytes} bytes would wait for missing updates, over the "
                f"{self.max_pending_bytes} allowed (max_gap_bytes)"
            )

    def _resolve(self, first: Struct, overlay: _Overlay, *, check: bool) -> None:
        """Give `first` (and what it hangs from) its depth, without recursion;
        structs hanging from something not seen yet get `_WAITING`."""
        stack = [first]
        on_stack = {id(first)}
        while stack:
            struct = stack[-1]
            depth = self._depth_of(struct, overlay)
            if isinstance(depth, Struct):
                if id(depth) in on_stack:
                    raise ProtocolError("update structs refer to each other in a cycle")
                stack.append(depth)
                on_stack.add(id(depth))
                continue
            if depth is None:
                for waiting in stack:  # each hangs from the next: all wait
                    waiting.depth = _WAITING
                    waiting.epoch = self._epoch
                return
            if check and struct.is_type and depth + 1 > self.max_depth:
                raise ProtocolError(
                    f"shared types nest deeper than {self.max_depth} levels (max_nesting_depth)"
                )
            struct.depth = depth
            stack.pop()
            on_stack.discard(id(struct))

    def _depth_of(self, struct: Struct, overlay: _Overlay) -> int | Struct | None:
        """The struct's depth, the struct to resolve first, or None if unknowable yet."""
        kind = struct.ref_kind
        if kind in (ROOT, NONE):
            return 0
        client, clock = struct.ref_client, struct.ref_clock
        if clock < self._clock_end.get(client, 0):
            runs = self._runs.get(client)
            base = runs.get(clock) if runs is not None else 0
        else:
            target = overlay.find(client, clock) or self._pending.find(client, clock)
            if target is None:
                return None
            if target.depth == _WAITING and target.epoch != self._epoch:
                target.epoch = self._epoch
                target.depth = -1  # what it waited for may have come: once more
            if target.depth == _WAITING:
                return None
            if target.depth == -1:
                return target
            base = target.depth
        return base + 1 if kind == PARENT else base

    def commit(self, integrated: bytes, scan: Scan | None = None) -> None:
        """Record what yrs integrated (a transaction's update). `scan` is the scan
        of the very same bytes, if there is one (saves reading them again). Never
        raises: this also records edits made on the document directly."""
        clock_end = self._clock_end
        try:
            if scan is not None and all(s.depth >= 0 for s in scan.structs):
                structs = [s for s in scan.structs if s.end > clock_end.get(s.client, 0)]
            else:
                structs = read_update(integrated, 1 << 30)
                structs = [s for s in structs if s.end > clock_end.get(s.client, 0)]
                overlay = _Overlay(structs)
                for struct in structs:
                    if struct.depth == -1:
                        self._resolve(struct, overlay, check=False)
        except ProtocolError:
            return
        for struct in sorted(structs, key=_client_clock) if len(structs) > 1 else structs:
            client = struct.client
            end = clock_end.get(client, 0)
            if struct.end <= end or struct.clock > end:
                continue  # already recorded; or past a gap (yrs integrates in order)
            if struct.depth > 0:
                runs = self._runs.get(client)
                if runs is None:
                    runs = self._runs[client] = _Runs()
                runs.add(max(end, struct.clock), struct.end, struct.depth)
            clock_end[client] = struct.end
            self.items += 1
            if self._pending.count:  # only then can the advance release anything
                self._advanced.append(client)

    def keep_pending(self, scan: Scan) -> None:
        """After an update was applied: keep its structs yrs still waits on, and
        forget the pending ones it integrated."""
        clock_end = self._clock_end
        for struct in scan.structs:
            if struct.end > clock_end.get(struct.client, 0):
                if self._pending is _NO_PENDING:
                    self._pending = _Pending()
                self._pending.add(struct)
        if self._pending.count:
            for client in set(self._advanced):
                self._pending.drop_integrated(client, clock_end.get(client, 0))
        self._advanced.clear()


# -- repair -------------------------------------------------------------------------------


def repair(updates: list[bytes], max_depth: int) -> tuple[list[bytes], int]:
    """Stored updates rewritten so that a room loads them: every struct that nests
    deeper than `max_depth` (and everything inside it) becomes a GC struct of the
    same clocks, which is what yrs makes of deleted content, so the clocks of
    everything else stay valid. Returns the updates and how many structs were
    replaced. Updates that cannot be read at all are dropped (counted as one)."""
    index = StructureIndex(max_depth)
    out: list[bytes] = []
    replaced = 0
    for update in updates:
        try:
            structs = read_update(update, 1 << 30)
        except ProtocolError:
            replaced += 1
            continue
        fresh = [s for s in structs if s.end > index._clock_end.get(s.client, 0)]
        overlay = _Overlay(fresh)
        for struct in fresh:
            if struct.depth == -1:
                index._resolve(struct, overlay, check=False)
        bad = [
            s
            for s in structs
            if s.any_depth > max_depth
            or s.depth > max_depth
            or (s.is_type and s.depth + 1 > max_depth)
        ]
        for struct in bad:
            struct.depth = max_depth + 1  # what hangs from it is too deep as well
        fixed = _splice_gc(update, bad)
        index.commit(fixed)
        replaced += len(bad)
        out.append(fixed)
    return out, replaced


def _splice_gc(update: bytes, bad: list[Struct]) -> bytes:
    if not bad:
        return update
    parts: list[bytes] = []
    position = 0
    for struct in sorted(bad, key=lambda s: s.offset):
        parts.append(update[position : struct.offset])
        parts.append(b"\x00" + var_uint(struct.end - struct.clock))
        position = struct.offset + struct.size
    parts.append(update[position:])
    return b"".join(parts)

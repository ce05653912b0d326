"""CPU time and memory of a process and all its descendants, read from /proc (Linux).

`ProcessTree(pid).sample()` returns the tree's CPU seconds (user + system) and
resident memory at that moment; `RssSampler` keeps the peak while a run lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Sample:
    cpu_seconds: float
    rss_bytes: int


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _stat(pid: int) -> Sample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:  # exited between listing and reading
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])
    return Sample((utime + stime) / _TICKS, int(statm.split()[1]) * _PAGE)


def machine_busy_seconds() -> float:
    """CPU seconds every CPU of the machine spent busy since boot (/proc/stat, all modes but idle)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


class ProcessTree:
    """A process and its descendants, found afresh at each sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def pids(self) -> list[int]:
        pending, seen = [self.pid], []
        while pending:
            pid = pending.pop()
            seen.append(pid)
            pending += _children(pid)
        return seen

    def sample(self) -> Sample:
        cpu, rss = 0.0, 0
        for pid in self.pids():
            s = _stat(pid)
            if s is not None:
                cpu += s.cpu_seconds
                rss += s.rss_bytes
        return Sample(cpu, rss)


class RssSampler:
    """Track a tree's peak RSS in the background: `async with RssSampler(tree) as s: ... s.peak`."""

    def __init__(self, tree: ProcessTree, interval: float = 0.1) -> None:
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssSampler:
        self.peak = self.tree.sample().rss_bytes
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, self.tree.sample().rss_bytes)

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.tree.sample().rss_bytes)
            await asyncio.sleep(self.interval)

"""Profile a Python server under benchmark load with py-spy, and summarise where time goes.

`bench --profile DIR` runs ``py-spy record --format raw`` on the server's process during
each measured window (Python servers only) and writes DIR/<server>-<scenario>.txt (collapsed
stacks, one ``frame;frame;... count`` a line: flamegraph.pl and speedscope read it) and
prints the top functions by self and by inclusive time. ``python -m ysync.loadtest.profile
FILE`` prints the same summary for a saved file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

_PROCESS = re.compile(r'^process \d+:".*?";')
_LIB = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")  # greedy: the last one wins
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH (pip install py-spy)."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record_command(pid: int, seconds: float, out: Path) -> list[str]:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[load]'")
    return [
        *(exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))),
        *("--rate", "200", "--format", "raw", "--nonblocking", "--subprocesses"),
        *("--output", str(out)),
    ]


def _short(frame: str) -> str:
    """`func (path/to/file.py:12)` → `func (file.py)`; the line number would split a function."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m["file"]
    lib = _LIB.search(file)  # an installed package or the standard library: its path inside
    file = file[lib.end() :] if lib else "/".join(file.split("/")[-2:])
    return f"{m['func']} ({file})"


def summarise(text: str, top: int = 15) -> str:
    """Top functions by self time and by inclusive time from py-spy's raw (collapsed) output."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        stack = _PROCESS.sub("", stack)  # --subprocesses prefixes the process and its command
        frames = [_short(f) for f in stack.split(";") if not f.startswith("thread (")]
        if not frames:
            continue
        total += n
        self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ysync.loadtest.profile")
    parser.add_argument("file", type=Path, help="py-spy raw output (collapsed stacks)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    print(summarise(args.file.read_text(), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Summaries of py-spy's raw (collapsed-stack) output, as `bench --profile` prints them."""

from __future__ import annotations

from ysync.loadtest.profile import summarise

RAW = """\
process 7:"python -m ysync serve --port 1";run (/usr/lib/python3.11/asyncio/runners.py:118);receive (/work/main/rooms/room.py:120);apply_update (pycrdt/_doc.py:210) 6
process 7:"python -m ysync serve --port 1";run (/usr/lib/python3.11/asyncio/runners.py:118);receive (/work/main/rooms/room.py:121);encode_update (/work/main/rooms/codec.py:260) 3
process 7:"python -m ysync serve --port 1";run (/usr/lib/python3.11/asyncio/runners.py:118);send (/x/lib/python3.11/site-packages/uvicorn/protocols/websockets/impl.py:9) 1
"""


def test_self_and_inclusive_time_by_function() -> None:
    text = summarise(RAW, top=5)
    assert text.splitlines()[0] == "10 samples"
    self_part, inclusive_part = text.split("inclusive time:")
    # Line numbers are dropped so one function's samples add up; paths are shortened.
    assert "60.0%  apply_update (pycrdt/_doc.py)" in self_part
    assert "30.0%  encode_update (rooms/codec.py)" in self_part
    assert "10.0%  send (uvicorn/protocols/websockets/impl.py)" in self_part
    assert "100.0%  run (asyncio/runners.py)" in inclusive_part
    assert "90.0%  receive (rooms/room.py)" in inclusive_part
    assert "process" not in text


def test_empty_profile() -> None:
    assert summarise("") == "no samples"

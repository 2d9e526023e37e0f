"""Recorded upstream event streams (tests/data/*.sse), parsed as the transport parses them."""

from __future__ import annotations

from pathlib import Path

from llms.adapters.base import SseEvent
from llms.sse import EventSplitter, parse_event

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def load_events(name: str, chunk_size: int = 37) -> list[SseEvent]:
    """The events of tests/data/NAME, split and parsed as llms/transport.py does, in arbitrary-sized network
    chunks."""
    raw = (DATA_DIR / name).read_bytes()
    splitter = EventSplitter()
    blocks = [block for start in range(0, len(raw), chunk_size)
              for block in splitter.split(raw[start : start + chunk_size])[1]]
    blocks.append(splitter.rest())
    return [SseEvent(event=name, data=data) for name, data in filter(None, map(parse_event, blocks))]

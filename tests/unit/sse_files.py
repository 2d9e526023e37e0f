"""Recorded upstream event streams (tests/data/*.sse), parsed as the transport parses them."""

from __future__ import annotations

from pathlib import Path

import sseclient

from llms.adapters.base import SseEvent

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def load_events(name: str, chunk_size: int = 37) -> list[SseEvent]:
    """The events of tests/data/NAME, read through sseclient in arbitrary-sized network chunks."""
    raw = (DATA_DIR / name).read_bytes()
    pieces = [raw[start : start + chunk_size] for start in range(0, len(raw), chunk_size)]
    return [
        SseEvent(event=event.event, data=event.data) for event in sseclient.SSEClient(iter(pieces)).events()
    ]

"""A client that holds many SSE streams at once (asyncio, raw HTTP/1.1): what 1,000 agents do."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class StreamResult:
    status: int = 0
    first_chunk: float | None = None  # seconds from the request to the first data event
    last_chunk: float | None = None  # and to the last
    done: bool = False  # ended with data: [DONE]
    error: str = ""
    events: list[bytes] = field(default_factory=list)


async def _one(url: str, headers: dict[str, str], body: dict) -> StreamResult:
    result = StreamResult()
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        status_line = await reader.readline()
        result.status = int(status_line.split()[1])
        headers_block = await reader.readuntil(b"\r\n\r\n")
        chunked = b"transfer-encoding: chunked" in headers_block.lower()
        buffer = b""
        while chunk := await (_read_chunk(reader) if chunked else reader.read(65536)):
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                data = event.split(b"data: ", 1)[-1] if b"data: " in event else b""
                if not data:
                    continue
                result.last_chunk = time.monotonic() - started
                if result.first_chunk is None:
                    result.first_chunk = result.last_chunk
                result.events.append(data)
                result.done = result.done or data.endswith(b"[DONE]")
        writer.close()
    except Exception as exc:  # noqa: BLE001 - every failure is a result to count
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body (b"" at its end)."""
    size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
    data = await reader.readexactly(size) if size else b""
    await reader.readline()
    return data


def hold_streams(url: str, headers: dict[str, str], body: dict, count: int) -> list[StreamResult]:
    """Open `count` streams at once and read each to its end."""

    async def run() -> list[StreamResult]:
        return await asyncio.gather(*(_one(url, headers, body) for _ in range(count)))

    return asyncio.run(run())

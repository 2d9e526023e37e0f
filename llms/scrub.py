"""Keeping a provider's key out of what mcpd relays: the provider may echo it back, whole or in part.

Error paths (a provider's error text passed to the client and kept in the audit row) get the thorough
treatment: the key in any letter case, any run of WINDOW or more of its characters (a "middle"), its
base64 forms, and masked echoes such as `sk-ab***wxyz`. Success bytes, which every chunk of every
stream pays for, get one substring test for the exact key.
"""

from __future__ import annotations

import base64
import re
from functools import cached_property

REDACTED = "[redacted]"
WINDOW = 8  # a run this long of the key's characters counts as an echo of it


class Scrubber:
    """Removes one key from texts and relayed bytes; a Scrubber without a key changes nothing."""

    def __init__(self, key: str | None):
        self._key = key or ""
        self._key_bytes = self._key.encode()

    def __repr__(self) -> str:
        return "<Scrubber>"

    def __call__(self, text: str) -> str:
        """The text with every echo of the key replaced by [redacted]."""
        if not self._key or not text:
            return text
        text = _redact_spans(text, self._windows)
        return self._encoded.sub(REDACTED, text)

    def chunk(self, data: bytes) -> bytes:
        """Relayed bytes with the exact key replaced: one substring test when it is absent."""
        if self._key_bytes and self._key_bytes in data:
            return data.replace(self._key_bytes, REDACTED.encode())
        return data

    @cached_property
    def _windows(self) -> re.Pattern[str]:
        """Every WINDOW-long run of the key, any letter case, found where runs overlap (lookahead)."""
        key = self._key
        size = min(WINDOW, len(key))
        runs = sorted({key[i:i + size].lower() for i in range(len(key) - size + 1)})
        return re.compile("(?=(" + "|".join(map(re.escape, runs)) + "))", re.IGNORECASE)

    @cached_property
    def _encoded(self) -> re.Pattern[str]:
        """The key's base64 forms (standard and URL-safe, at each of the three byte alignments it may
        have inside an encoded text) and masked echoes (`sk-ab***wxyz`, `***wxyz`)."""
        key = self._key_bytes
        forms = set()
        for start in range(3):
            whole = key[start:start + (len(key) - start) // 3 * 3]
            if len(whole) >= 6:
                forms |= {base64.b64encode(whole).decode(), base64.urlsafe_b64encode(whole).decode()}
        head, tail = re.escape(self._key[:6]), re.escape(self._key[-4:])
        masked = [rf"{head}[\w*.\-]*", rf"[\w\-]*\*{{3,}}[\w*.\-]*{tail}"]
        return re.compile("|".join([*map(re.escape, sorted(forms, key=len, reverse=True)), *masked]))


def _redact_spans(text: str, runs: re.Pattern[str]) -> str:
    """Replace each stretch of text covered by overlapping matches of `runs` with one [redacted]."""
    spans: list[list[int]] = []
    for match in runs.finditer(text):
        start, end = match.start(), match.start() + len(match.group(1))
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], REDACTED]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def scrub_error(error, scrub: Scrubber):
    """The error with its client message and its audit detail scrubbed (in place; returned)."""
    error.message = scrub(error.message)
    if getattr(error, "detail", None):
        error.detail = scrub(error.detail)
    return error

"""Small helpers for tests that call the inference routes through Django's test client."""

from __future__ import annotations

import json

from audit.models import INFERENCE, AuditEvent

CHAT = {"messages": [{"role": "user", "content": "Say hello"}]}


def infer(client, body=CHAT, name="gpt", **extra):
    """POST the body to the Llm's native infer route."""
    return client.post(f"/api/v1/llms/{name}/infer", data=json.dumps(body), content_type="application/json", **extra)


def error_of(response) -> dict:
    """The contract's error object of a response, checked for its exact shape."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def rows() -> list[AuditEvent]:
    """The inference audit rows, oldest first."""
    return list(AuditEvent.objects.filter(kind=INFERENCE).order_by("id"))


def sse_body(response) -> bytes:
    """The whole body of a streamed response."""
    return b"".join(response.streaming_content)

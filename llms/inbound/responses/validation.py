"""What every Responses request must be on every provider, the passthrough included: stateless.

mcpd stores no responses, so nothing that reads or writes server-side state is accepted (faking it
would answer from a conversation the provider never saw). `store` is accepted and has no effect.
"""

from __future__ import annotations

from typing import Any

from mcpd.errors import InvalidRequest

# Fields that need a stored response or conversation, accepted only at their neutral value (absent, null,
# false), else refused with what to do instead.
SEND_IT_ALL = "mcpd is stateless and stores no responses: send the whole conversation in 'input' on every request"
STATEFUL = {
    "previous_response_id": SEND_IT_ALL,
    "conversation": SEND_IT_ALL,
    "background": "mcpd stores no responses to poll later: send the request without it (stream it to see the "
                  "answer as it comes)",
}


def check_request(body: dict[str, Any]) -> None:
    for field, instead in STATEFUL.items():
        if body.get(field) not in (None, False):
            raise InvalidRequest(f"{field}: {instead}.", param=field)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("stream: must be a boolean.", param="stream")

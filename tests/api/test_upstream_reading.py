"""How mcpd reads a provider's reply (llms/transport.py): a whole reply up to MCPD_UPSTREAM_MAX_BODY_BYTES and
within the read timeout, decoded as the provider encoded it.
"""

from __future__ import annotations

import json

import pytest

from tests.api.calls import error_of, infer, rows
from tests.fakes.faults import WireReply, huge_reply, paced_reply
from tests.fakes.upstream import json_reply

pytestmark = pytest.mark.django_db

@pytest.mark.parametrize("how", [{}, {"chunked": True}, {"gzip": True}])
def test_a_reply_over_the_limit_is_a_502_however_it_comes(alice, client_for, upstream_llm, fake_upstream, settings,
                                                          how):
    settings.UPSTREAM_MAX_BODY_BYTES = 1024 * 1024
    fake_upstream.reply(huge_reply(8 * 1024 * 1024, **how))
    response = infer(client_for(alice))
    assert response.status_code == 502 and error_of(response)["code"] == "upstream_bad_response"
    assert "larger than mcpd accepts" in error_of(response)["message"]
    assert [(r.status, r.outcome) for r in rows()] == [(502, "error")]


def test_a_reply_of_exactly_the_limit_is_read(alice, client_for, upstream_llm, fake_upstream, settings):
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}).encode()
    settings.UPSTREAM_MAX_BODY_BYTES = len(body)
    fake_upstream.reply(WireReply(lambda: [body[:10], body[10:]], chunked=True))
    assert infer(client_for(alice)).status_code == 200


def test_a_whole_reply_gives_its_connection_back_to_the_pool(alice, client_for, upstream_llm, fake_upstream):
    client = client_for(alice)
    for _ in range(3):
        assert infer(client).status_code == 200
    assert len({request.peer for request in fake_upstream.requests}) == 1


def test_a_whole_reply_must_arrive_within_the_read_timeout(alice, client_for, upstream_llm, fake_upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "late"}}]}).encode()
    fake_upstream.reply(paced_reply([body[i:i + 10] for i in range(0, len(body), 10)], interval=0.1))  # never 0.3 s silent
    response = infer(client_for(alice))
    assert response.status_code == 504 and error_of(response)["code"] == "upstream_timeout"
    assert [(r.status, r.outcome) for r in rows()] == [(504, "error")]


def test_an_error_body_is_read_only_up_to_its_bound(alice, client_for, upstream_llm, fake_upstream):
    fake_upstream.reply(huge_reply(64 * 1024 * 1024, status=500, content_type="text/html"),
                        json_reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}))
    client = client_for(alice)
    assert infer(client).status_code == 502
    assert infer(client).status_code == 200  # the next call has a connection of its own

"""Prices and the cost of each call, on every inbound API, cache tokens counted apart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llms.permissions import grant_run
from tests.fakes.upstream import json_reply, responses_object
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PRICES = {"price_input": Decimal("3"), "price_output": Decimal("15"), "price_cache_read": Decimal("0.30"),
          "price_cache_write": Decimal("3.75")}


@pytest.fixture
def priced(upstream_llm):
    for field, value in PRICES.items():
        setattr(upstream_llm, field, value)
    upstream_llm.save()
    return upstream_llm


def test_a_chat_calls_cost_counts_cached_prompt_tokens_at_the_cache_price(client_for, alice, priced, fake_upstream,
                                                                         audit_rows):
    fake_upstream.reply(json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                                 "finish_reason": "stop"}],
                                    "usage": {"prompt_tokens": 10_000, "completion_tokens": 500, "total_tokens": 10_500,
                                              "prompt_tokens_details": {"cached_tokens": 8000}}}))
    response = client_for(alice).post("/v1/chat/completions", {"model": "gpt", "messages": [
        {"role": "user", "content": "Hi"}]}, format="json")
    assert response.status_code == 200
    [row] = wait_for(audit_rows)
    assert (row.prompt_tokens, row.cache_read_tokens, row.completion_tokens) == (10_000, 8000, 500)
    assert row.cost == Decimal("0.0159")  # (2,000 × 3 + 8,000 × 0.30 + 500 × 15) / 1e6


def test_a_messages_calls_cost_counts_cache_reads_and_writes(client_for, alice, make_llm, fake_upstream, audit_rows):
    claude = make_llm("claude", provider="anthropic", model="claude-sonnet-4-5", base_url=fake_upstream.url + "/v1",
                      **PRICES)
    grant_run(alice, claude)
    fake_upstream.reply(json_reply({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                                    "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                                    "usage": {"input_tokens": 1000, "cache_read_input_tokens": 8000,
                                              "cache_creation_input_tokens": 1000, "output_tokens": 500}}))
    response = client_for(alice).post("/v1/messages", {"model": "claude", "max_tokens": 100, "messages": [
        {"role": "user", "content": "Hi"}]}, format="json")
    assert response.status_code == 200
    [row] = wait_for(audit_rows)
    assert (row.prompt_tokens, row.cache_read_tokens, row.cache_write_tokens) == (10_000, 8000, 1000)
    assert row.cost == Decimal("0.01665")  # (1,000 × 3 + 8,000 × 0.30 + 1,000 × 3.75 + 500 × 15) / 1e6


def test_a_responses_calls_cost_counts_cached_input_tokens(client_for, alice, priced, fake_upstream, audit_rows):
    usage = {"input_tokens": 10_000, "input_tokens_details": {"cached_tokens": 8000}, "output_tokens": 500,
             "output_tokens_details": {"reasoning_tokens": 100}, "total_tokens": 10_500}
    fake_upstream.reply(json_reply(responses_object(usage=usage)))
    response = client_for(alice).post("/v1/responses", {"model": "gpt", "input": "Hi"}, format="json")
    assert response.status_code == 200
    [row] = wait_for(audit_rows)
    assert row.cost == Decimal("0.0159")


def test_a_call_to_an_llm_without_prices_has_no_cost(client_for, alice, upstream_llm, audit_rows):
    client_for(alice).post("/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]},
                           format="json")
    [row] = wait_for(audit_rows)
    assert row.prompt_tokens is not None and row.cost is None


def test_the_catalogue_api_shows_prices_and_the_currency(client_for, alice, priced, settings):
    settings.CURRENCY = "EUR"
    entry = client_for(alice).get("/api/v1/llms/gpt/").json()
    assert (entry["price_input"], entry["price_cache_write"], entry["currency"]) == ("3.000000", "3.750000", "EUR")


def test_a_price_change_applies_to_calls_made_after_it(client_for, alice, priced, audit_rows):
    client = client_for(alice)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]}
    client.post("/v1/chat/completions", body, format="json")
    priced.price_input, priced.price_output = Decimal(0), Decimal(0)
    priced.save()
    client.post("/v1/chat/completions", body, format="json")
    first, second = wait_for(lambda: audit_rows() if len(audit_rows()) == 2 else None)
    assert first.cost == Decimal("0.000117") and second.cost == Decimal(0)  # 9 × 3 + 6 × 15, then free

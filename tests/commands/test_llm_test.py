"""manage.py llm test: one call through mcpd's own service, printed, audited, failing loudly."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import INFERENCE, AuditEvent
from tests.fakes.upstream import json_reply, openai_stream_frames, sse_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_llm(llm, fake_upstream):
    llm.base_url = fake_upstream.url + "/v1"
    llm.save()
    return llm


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("llm", "test", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_reply_and_audits_the_call(fake_llm, fake_upstream):
    assert run("gpt", "Say hi").strip() == "Hello from the fake provider."
    assert fake_upstream.requests[0].json()["messages"] == [{"role": "user", "content": "Say hi"}]
    row = AuditEvent.objects.get(kind=INFERENCE)
    assert (row.actor, row.outcome, row.status, row.user) == ("manage.py llm test", "ok", 200, None)


def test_it_streams_the_reply(fake_llm, fake_upstream):
    fake_upstream.reply(sse_reply(openai_stream_frames(["one ", "two ", "three"])))
    assert run("gpt", "Count", "--stream").strip() == "one two three"
    assert AuditEvent.objects.get(kind=INFERENCE).streaming is True


def test_a_provider_error_is_a_command_error(fake_llm, fake_upstream):
    fake_upstream.reply(json_reply({"error": {"message": "context too long"}}, status=400))
    with pytest.raises(CommandError, match="400 invalid_request_error: context too long"):
        run("gpt", "Hi")


def test_an_unknown_llm_is_a_command_error(db):
    with pytest.raises(CommandError, match="No Llm named 'nope'"):
        run("nope", "Hi")

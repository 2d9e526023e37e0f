"""/playground/: a logged-in user's chat page. Its script calls the real infer route as the session, with
the CSRF token of the page (the browser test runs the script itself: tests/e2e/test_playground_browser.py)."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from audit.models import Outcome
from llms.permissions import grant_run
from mcpd.middleware import CONTENT_SECURITY_POLICY
from tests.api.calls import CHAT, error_of, rows, sse_body
from tests.fakes.upstream import openai_stream_frames, sse_reply

pytestmark = pytest.mark.django_db

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
HOSTILE = '<img src=x onerror="alert(1)">'


def page(response) -> str:
    return response.content.decode()


def options(html: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', html)


@pytest.fixture
def browser(alice) -> Client:
    """alice's logged-in browser, which must send the CSRF token like a real one."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def test_it_sends_a_visitor_to_the_admin_login_and_back(client):
    response = client.get("/playground/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/playground/"


def test_it_lists_only_the_enabled_llms_the_user_may_run(browser, make_llm, alice):
    make_llm("other")  # alice holds no run on it
    grant_run(alice, make_llm("off", enabled=False))
    grant_run(alice, make_llm("claude", provider="anthropic", model="claude-sonnet-4-5", price_input="3",
                              price_output="15"))
    response = browser.get("/playground/")
    assert response.status_code == 200
    html = page(response)
    assert options(html) == ["claude", "gpt"]
    assert 'data-price-input="3.000000"' in html and 'data-price-output="15.000000"' in html
    assert 'data-llms-url="/api/v1/llms/"' in html and 'data-currency="USD"' in html


def test_it_chooses_the_llm_named_in_the_address_if_the_user_may_run_it(browser, make_llm, alice):
    grant_run(alice, make_llm("zeta"))
    assert re.search(r'<option value="zeta"[^>]* selected', page(browser.get("/playground/?llm=zeta")))
    assert " selected" not in page(browser.get("/playground/?llm=other")).split('value="zeta"')[1].split(">")[0]


def test_a_user_who_may_run_nothing_is_told_so(client, carol):
    client.force_login(carol)
    html = page(client.get("/playground/"))
    assert "You may not run any LLM yet" in html and "<select" not in html


def test_the_page_loads_its_script_and_styles_from_files_under_the_policy(browser):
    response = browser.get("/playground/")
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = page(response)
    assert '<script src="/static/llms/playground.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/llms/playground.css">' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline script
    assert response["Cache-Control"].startswith("max-age=0")


def test_whitenoise_serves_the_script_as_javascript(settings, client):
    settings.WHITENOISE_USE_FINDERS = True  # tests do not collectstatic; the server does (tests/e2e)
    response = client.get("/static/llms/playground.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["X-Content-Type-Options"] == "nosniff"
    script = b"".join(response.streaming_content).decode()
    assert "X-CSRFToken" in script and "innerHTML" not in script
    assert client.get("/static/llms/playground.css")["Content-Type"].startswith("text/css")


def test_hostile_names_are_escaped(browser, make_llm, alice):
    grant_run(alice, make_llm("hostile", model=HOSTILE, description=HOSTILE))
    html = page(browser.get("/playground/"))
    assert HOSTILE not in html and "<img" not in html
    assert 'data-model="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"' in html


def test_the_infer_route_refuses_the_session_without_the_csrf_token(browser, upstream_llm, fake_upstream):
    response = browser.post("/api/v1/llms/gpt/infer", data=json.dumps({**CHAT, "stream": True}),
                            content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in error_of(response)["message"]
    assert fake_upstream.requests == []  # refused before anything was spent
    [row] = rows()  # refused while authenticating: the session's user is not known to the row
    assert (row.status, row.outcome, row.llm_name, row.user) == (403, Outcome.ERROR, "gpt", None)


def test_the_page_token_streams_an_answer_as_the_session_and_it_is_audited(browser, upstream_llm, fake_upstream):
    token = CSRF_INPUT.search(page(browser.get("/playground/"))).group(1)
    fake_upstream.reply(sse_reply(openai_stream_frames(["Hel", "lo"], include_usage=True)))
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True, "stream_options": {"include_usage": True}}
    response = browser.post("/api/v1/llms/gpt/infer", data=json.dumps(body), content_type="application/json",
                            headers={"X-CSRFToken": token, "Accept": "text/event-stream"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = [frame.removeprefix(b"data: ") for frame in sse_body(response).split(b"\n\n") if frame]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello"
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert fake_upstream.requests[-1].json()["stream_options"] == {"include_usage": True}
    [row] = rows()
    assert (row.user.username, row.token_sha, row.streaming, row.outcome) == ("alice", "", True, Outcome.OK)

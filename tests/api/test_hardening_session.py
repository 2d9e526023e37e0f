"""Session-authenticated inference: a logged-in browser with its CSRF token."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth.models import User

from llms.permissions import grant_run
from tests.api.calls import CHAT

pytestmark = pytest.mark.django_db


# --- 7. session-authenticated inference with CSRF


@pytest.fixture
def staff_runner(db, upstream_llm) -> User:
    user = User.objects.create_user("sam", password="pw-sam-1234", is_staff=True)
    grant_run(user, upstream_llm)
    return user


@pytest.fixture
def browser_session(live_server, staff_runner) -> requests.Session:
    """Logged in through the admin's login form, as a browser would be."""
    session = requests.Session()
    session.get(f"{live_server.url}/admin/login/", timeout=10)
    login = session.post(f"{live_server.url}/admin/login/?next=/admin/", timeout=10,
                         data={"username": "sam", "password": "pw-sam-1234",
                               "csrfmiddlewaretoken": session.cookies["csrftoken"], "next": "/admin/"},
                         headers={"Referer": f"{live_server.url}/admin/login/"})
    assert login.status_code == 200 and "sessionid" in session.cookies
    yield session
    session.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path, body", [("/api/v1/llms/gpt/infer", CHAT), ("/v1/chat/completions", {**CHAT, "model": "gpt"})])
def test_a_logged_in_browser_runs_inference_with_its_csrf_token(live_server, browser_session, fake_upstream, path,
                                                                body):
    url = f"{live_server.url}{path}"
    same_origin = {"Origin": live_server.url, "Referer": f"{live_server.url}/playground/"}
    with_token = browser_session.post(url, json=body, timeout=10,
                                      headers={**same_origin, "X-CSRFToken": browser_session.cookies["csrftoken"]})
    assert with_token.status_code == 200, with_token.text
    assert with_token.json()["choices"][0]["message"]["content"] == "Hello from the fake provider."
    without = browser_session.post(url, json=body, timeout=10, headers=same_origin)
    assert without.status_code == 403 and "CSRF" in without.json()["error"]["message"]
    streamed = browser_session.post(url, json={**body, "stream": True}, timeout=10, stream=True,
                                    headers={**same_origin, "X-CSRFToken": browser_session.cookies["csrftoken"]})
    assert streamed.content.endswith(b"data: [DONE]\n\n")
    assert len(fake_upstream.requests) == 2  # the refused call spent nothing

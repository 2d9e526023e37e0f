"""The login and 401 throttles hold across gunicorn's workers: the counts live in the database.

A server of its own, with small limits: every request here comes from 127.0.0.1, and a lock on that
address must not reach the shared server of the other e2e tests. Each request closes its connection,
so requests land on both workers; gunicorn's access log names the worker (pid) of each request id.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import Server, running_server

pytestmark = pytest.mark.xdist_group("e2e-throttle")

ADMIN, PASSWORD = "admin", "pw-admin-throttle-1234"
USER_LIMIT, API_LIMIT = 3, 4
WINDOW = 24 * 3600  # fixed windows: a long one, so that none ends during the test
LIMITS = {
    "MCPD_LOGIN_MAX_FAILURES_PER_USER": str(USER_LIMIT),
    "MCPD_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
    "MCPD_LOGIN_LOCKOUT_SECONDS": str(WINDOW),
    "MCPD_API_MAX_AUTH_FAILURES_PER_ADDRESS": str(API_LIMIT),
    "MCPD_API_AUTH_LOCKOUT_SECONDS": str(WINDOW),
}
ACCESS_LOG_WITH_PID = '%(h)s "%(r)s" %(s)s pid=%(p)s rid=%({x-request-id}o)s'
CLOSE = {"Connection": "close"}  # a new connection for every request: either worker may accept it
ROUNDS, AT_ONCE = 20, 4  # up to 80 requests, 4 at a time (concurrent connections spread over the workers)
LOCKED = "Too many failed login attempts for this account or address; try again in"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def throttled(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory, env=LIMITS, args=["--access-logformat", ACCESS_LOG_WITH_PID]) as server:
        server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                     f"User.objects.create_superuser('{ADMIN}', password='{PASSWORD}')")
        yield server


def worker_of(server: Server, request_id: str) -> str:
    """The pid of the worker that answered the request, from the access log (written just after it)."""
    deadline = time.monotonic() + 5
    pattern = re.compile(rf"pid=<(\d+)> rid={re.escape(request_id)}$", re.MULTILINE)
    while time.monotonic() < deadline:
        if match := pattern.search(server.log()):
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


def log_in(server: Server, password: str) -> tuple[requests.Response, str]:
    """One admin login attempt on fresh connections; the response to the POST and the worker that answered it."""
    with requests.Session() as session:
        session.headers.update(CLOSE)
        form = session.get(f"{server.url}/admin/login/", timeout=10)
        token = CSRF_INPUT.search(form.text).group(1)
        request_id = f"login-{uuid.uuid4().hex}"
        response = session.post(f"{server.url}/admin/login/?next=/admin/", allow_redirects=False, timeout=10,
                                headers={"X-Request-ID": request_id, "Referer": f"{server.url}/admin/login/"},
                                data={"csrfmiddlewaretoken": token, "username": ADMIN, "password": password})
    return response, worker_of(server, request_id)


def bad_token_call(server: Server) -> tuple[requests.Response, str]:
    request_id = f"api-{uuid.uuid4().hex}"
    response = requests.get(f"{server.url}/v1/models", timeout=10,
                            headers={**CLOSE, "X-Request-ID": request_id, "Authorization": "Bearer mcpd_not-a-token"})
    return response, worker_of(server, request_id)


def on_both_workers(call: Callable[[], tuple[requests.Response, str]]) -> list[requests.Response]:
    """Repeat `call`, a few at once, until both workers have answered; every response."""
    answers: list[tuple[requests.Response, str]] = []
    with ThreadPoolExecutor(AT_ONCE) as pool:
        for _ in range(ROUNDS):
            answers += pool.map(lambda _: call(), range(AT_ONCE))
            if len({worker for _, worker in answers}) == 2:
                return [response for response, _ in answers]
    raise AssertionError(f"all {len(answers)} requests landed on the same worker")


def test_a_login_lock_holds_on_every_worker(throttled):
    for _ in range(USER_LIMIT):
        response, _ = log_in(throttled, "wrong-password")
        assert response.status_code == 200 and "Please enter the correct username" in response.text
    # Counted per process, the failures would leave at least one worker below the limit: it would let this in.
    for response in on_both_workers(lambda: log_in(throttled, PASSWORD)):
        assert response.status_code == 200 and LOCKED in response.text, response.status_code


def test_repeated_401s_get_429_from_every_worker(throttled):
    for _ in range(API_LIMIT):
        response, _ = bad_token_call(throttled)
        assert response.status_code == 401
    for response in on_both_workers(lambda: bad_token_call(throttled)):
        assert response.status_code == 429, (response.status_code, response.text)
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert 0 < int(response.headers["Retry-After"]) <= WINDOW

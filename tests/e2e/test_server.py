"""`make run`'s production server for real: gunicorn, DEBUG off, whitenoise, an operator's commands, clients.

Configured only the way an operator would: `manage.py secret set`, `llm add`, `llm grant`, `token issue`;
then called with plain HTTP, a streamed `curl -N`-style read and the official openai SDK.
"""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import requests

from tests.fakes.upstream import HELLO, FakeUpstream, json_reply, openai_stream_frames, sse_reply
from tests.waiting import wait_for

pytestmark = pytest.mark.xdist_group("e2e")  # one server for every e2e test (run.sh: --dist loadgroup)

KEY = "sk-e2e-PROVIDER-KEY-never-shown-0123456789"
HASHED_CSS = re.compile(r"""href="(/static/admin/css/[\w/.-]+\.[0-9a-f]{12}\.css)\"""")
REFERENCES = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
SCRIPT_TAGS = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
ONE_YEAR = 365 * 24 * 3600


@dataclass
class Gateway:
    url: str
    token: str
    fake: FakeUpstream

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(server, fake) -> Gateway:
    """The operator's set-up from the README, with manage.py commands only."""
    server.manage("secret", "set", "k", "--backend", "db", "--stdin", input=KEY)
    server.manage("llm", "add", "fake", "--provider", "openai", "--model", "m", "--base-url", f"{fake.url}/v1",
                  "--secret", "k")
    server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                 "User.objects.create_user('u', password='pw-u-e2e-1234')")
    server.manage("llm", "grant", "fake", "--user", "u")
    token = server.manage("token", "issue", "u", "--name", "e2e").strip().splitlines()[-1]
    assert token.startswith("mcpd_")
    return Gateway(server.url, token, fake)


@pytest.fixture
def fresh_fake(fake):
    fake.reset()
    return fake


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


def test_healthz_answers_ok(server):
    response = requests.get(f"{server.url}/healthz", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["X-Request-ID"]


def test_every_response_carries_a_request_id(server):
    assert requests.get(f"{server.url}/healthz", headers={"X-Request-ID": "rid-e2e-1"},
                        timeout=5).headers["X-Request-ID"] == "rid-e2e-1"
    assert requests.get(f"{server.url}/v1/models", timeout=5).headers["X-Request-ID"]  # a 401 too


def test_the_admin_is_styled_with_debug_off(server):
    login = requests.get(f"{server.url}/admin/", timeout=5)
    assert login.status_code == 200 and login.url.endswith("/admin/login/?next=/admin/")
    assert "mcpd administration" in login.text and "Traceback" not in login.text
    stylesheets = HASHED_CSS.findall(login.text)
    assert "/static/admin/css/base.css" not in login.text
    assert any(s.startswith("/static/admin/css/base.") for s in stylesheets), login.text[:2000]
    for path in stylesheets:
        css = requests.get(f"{server.url}{path}", timeout=5)
        assert css.status_code == 200, path
        assert css.headers["Content-Type"].startswith("text/css")
        max_age = int(re.search(r"max-age=(\d+)", css.headers["Cache-Control"]).group(1))
        assert max_age >= ONE_YEAR, css.headers["Cache-Control"]  # whitenoise: hashed names are immutable
        assert css.headers["Access-Control-Allow-Origin"] == "*"  # whitenoise's default, not Django's
        assert css.headers["X-Request-ID"]
    assert "body" in requests.get(f"{server.url}{stylesheets[0]}", timeout=5).text


def policy_of(response: requests.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as {directive: [sources]}."""
    header = response.headers.get("Content-Security-Policy", "")
    return {name: sources for name, *sources in (d.split() for d in header.split(";") if d.strip())}


def test_the_api_docs_load_nothing_from_another_host(server):
    """Swagger UI comes from the packaged static files: the server may have no internet, and a CDN's
    unpinned script would run on the admin's origin."""
    docs = requests.get(f"{server.url}/api/docs/", timeout=5)
    assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
    references = REFERENCES.findall(docs.text)
    assert [r for r in references if r.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/")]
    assert [r for r in references if "//" in r] == [], references
    assert all(" src=" in tag for tag in SCRIPT_TAGS.findall(docs.text))  # no inline script to allow
    for reference in references:
        assert requests.get(f"{server.url}{reference}", timeout=5).status_code == 200, reference


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/admin/login/", 200), ("GET", "/api/docs/", 200), ("GET", "/no-such-page", 404),
    ("POST", "/admin/login/", 403),  # Django's CSRF failure page
])
def test_html_pages_carry_a_content_security_policy(server, method, path, status):
    page = requests.request(method, f"{server.url}{path}", timeout=5)
    assert (page.status_code, page.headers["Content-Type"].split(";")[0]) == (status, "text/html")
    policy = policy_of(page)
    assert policy["default-src"] == policy["script-src"] == ["'self'"], policy
    assert (policy["object-src"], policy["frame-ancestors"]) == (["'none'"], ["'none'"])
    assert (policy["base-uri"], policy["form-action"]) == (["'self'"], ["'self'"])


def test_api_answers_carry_no_content_security_policy(gateway, fresh_fake):
    """JSON and event streams are no documents: the hot path pays one header check, not a header."""
    fresh_fake.reply(sse_reply(openai_stream_frames(["Hi"])))
    stream = requests.post(f"{gateway.url}/v1/chat/completions", headers=gateway.auth, timeout=10,
                           json={"model": "fake", "stream": True, "messages": [{"role": "user", "content": "Hi"}]})
    answers = [stream, requests.get(f"{gateway.url}/api/v1/llms/", headers=gateway.auth, timeout=5),
               requests.get(f"{gateway.url}/v1/models", timeout=5),  # a 401
               requests.get(f"{gateway.url}/api/v1/no-such-route", timeout=5),  # the JSON 404
               requests.get(f"{gateway.url}/api/schema/", timeout=5), requests.get(f"{gateway.url}/healthz", timeout=5)]
    assert [(a.status_code, "Content-Security-Policy" in a.headers) for a in answers] == [
        (200, False), (200, False), (401, False), (404, False), (200, False), (200, False)]


def test_a_stream_arrives_while_the_provider_is_still_generating(gateway, fresh_fake):
    fresh_fake.reply(sse_reply(openai_stream_frames(["Hel", "lo"]), interval=0.3))  # 5 frames, 0.3 s apart
    response = requests.post(f"{gateway.url}/api/v1/llms/fake/infer", stream=True, timeout=10,
                             headers=gateway.auth, json={"messages": [{"role": "user", "content": "Hi"}],
                                                         "stream": True})
    started = time.monotonic()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert (response.headers["Cache-Control"], response.headers["X-Accel-Buffering"]) == ("no-cache", "no")
    lines = response.iter_lines()
    first = next(line for line in lines if line)
    first_at = time.monotonic() - started
    assert first.startswith(b"data: {")
    assert not fresh_fake.stream_completed.is_set()  # neither gunicorn nor mcpd buffered the answer
    rest = [line for line in lines if line]
    assert rest[-1] == b"data: [DONE]"
    assert fresh_fake.stream_completed.wait(2)  # set just after the last bytes went out
    assert first_at < (time.monotonic() - started) / 2
    assert_no_key(first.decode(), *(line.decode() for line in rest))
    assert fresh_fake.requests[-1].headers["Authorization"] == f"Bearer {KEY}"


def test_a_client_leaving_mid_stream_stops_the_provider_call_and_is_audited(server, gateway, fresh_fake):
    fresh_fake.reply(sse_reply(openai_stream_frames([f"w{i} " for i in range(40)]), interval=0.1))
    response = requests.post(f"{gateway.url}/v1/chat/completions", stream=True, timeout=10, headers=gateway.auth,
                             json={"model": "fake", "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
                             )
    assert next(line for line in response.iter_lines() if line).startswith(b"data: {")
    response.close()  # the client goes away after the first chunk
    assert fresh_fake.stream_aborted.wait(5), "gunicorn and mcpd kept reading after the client left"
    assert not fresh_fake.stream_completed.is_set()
    script = ("from audit.models import AuditEvent; "
              "print(*AuditEvent.objects.filter(kind='llm_inference_call', streaming=True, llm_name='fake')"
              ".values_list('outcome', flat=True))")
    deadline = time.monotonic() + 5
    while "client_disconnected" not in (outcomes := server.manage("shell", "-c", script)):
        assert time.monotonic() < deadline, outcomes
        time.sleep(0.2)


@pytest.fixture
def sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0, timeout=20)


def test_the_openai_sdk_completes(sdk, fresh_fake):
    completion = sdk.chat.completions.create(model="fake", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == HELLO
    assert completion.usage.total_tokens == 15
    assert fresh_fake.requests[-1].json()["model"] == "m"  # the Llm's model goes upstream, not its name
    assert_no_key(completion.model_dump_json())


def test_the_openai_sdk_streams(sdk, fresh_fake):
    chunks = list(sdk.chat.completions.create(model="fake", messages=[{"role": "user", "content": "Hi"}],
                                              stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    assert_no_key(*(c.model_dump_json() for c in chunks))


def test_the_openai_sdk_lists_only_what_the_user_may_run(sdk, gateway):
    assert [m.id for m in sdk.models.list()] == ["fake"]


def test_the_catalogue_shows_no_key(gateway):
    response = requests.get(f"{gateway.url}/api/v1/llms/fake/", headers=gateway.auth, timeout=5)
    assert response.status_code == 200 and response.json()["has_api_key"] is True
    assert_no_key(response.text, str(response.headers))


def test_a_provider_echoing_the_key_does_not_leak_it(gateway, fresh_fake):
    fresh_fake.reply(json_reply({"error": {"message": f"Incorrect API key provided: {KEY}.",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}},
                                status=401))
    response = requests.post(f"{gateway.url}/v1/chat/completions", headers=gateway.auth, timeout=10,
                             json={"model": "fake", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_auth_failed"
    assert_no_key(response.text, str(response.headers))


def test_manage_llm_test_streams_the_reply(server, gateway, fresh_fake):
    out = server.manage("llm", "test", "fake", "hi", "--stream")
    assert HELLO in out
    assert_no_key(out)


def test_the_server_log_holds_no_key(server, gateway):
    requests.get(f"{server.url}/healthz", timeout=5)
    assert "/healthz" in server.log()  # the access log is being written
    assert_no_key(server.log())


def test_metrics_add_up_the_calls_of_every_worker(gateway, fresh_fake):
    """gunicorn runs several processes: /metrics must sum them, whichever worker answers."""

    def calls() -> float:
        text = requests.get(f"{gateway.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("mcpd_inference_calls_total{") and 'llm="fake"' in line)

    before = calls()
    with requests.Session() as session:  # several connections over the run reach both workers
        for _ in range(6):
            session.post(f"{gateway.url}/v1/chat/completions", headers={**gateway.auth, "Connection": "close"},
                         json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    # A call is counted as its response closes, just after the client has the bytes.
    assert wait_for(lambda: calls() == before + 6), calls()


def upstream_sockets(master: int, port: int) -> list[int]:
    """Per gunicorn worker, its established connections to 127.0.0.1:port (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(f":{port:04X}") and fields[3] == "01":  # remote port, ESTABLISHED
            inodes.add(fields[9])
    counts = []
    for worker in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        links = [str(fd.readlink()) for fd in Path(f"/proc/{worker}/fd").iterdir() if fd.is_symlink()]
        counts.append(sum(link[8:-1] in inodes for link in links if link.startswith("socket:[")))
    return counts


def test_the_open_streams_gauge_adds_up_every_workers_streams(server, gateway, fresh_fake):
    """Streams held open on both workers at once: mcpd_streams_open sums the live workers' (livesum)."""
    def open_streams() -> float:
        text = requests.get(f"{gateway.url}/metrics", timeout=5).text
        return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("mcpd_streams_open"))

    fresh_fake.reply(*[sse_reply(openai_stream_frames([f"w{i} " for i in range(8)]), interval=0.25)
                       for _ in range(6)])
    streams = [requests.post(f"{gateway.url}/v1/chat/completions", stream=True, timeout=10,
                             headers={**gateway.auth, "Connection": "close"},
                             json={"model": "fake", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
               for _ in range(6)]
    held = upstream_sockets(server.process.pid, int(fresh_fake.url.rsplit(":", 1)[1]))
    assert len(held) == 2 and sum(held) >= 6, held
    if min(held) == 0:
        pytest.skip(f"every stream landed on one worker this time ({held}); the sum is not shown")
    assert open_streams() == 6
    for stream in streams:
        assert stream.content.endswith(b"data: [DONE]\n\n")
    assert wait_for(lambda: open_streams() == 0), open_streams()


def test_metrics_list_every_family_and_no_label_of_a_clients_choosing(gateway):
    requests.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": "Bearer mcpd_not-a-token"},
                  json={"model": "zz-injected-label", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    text = requests.get(f"{gateway.url}/metrics", timeout=5).text  # the test runs on loopback: allowed
    assert "zz-injected-label" not in text
    for family in ("mcpd_inference_calls_total", "mcpd_inference_duration_seconds", "mcpd_inference_ttft_seconds",
                   "mcpd_inference_tokens_total", "mcpd_audit_write_failures_total"):
        assert f"# HELP {family} " in text and f"# TYPE {family} " in text


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def readable_by_others(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that its group or other users may read or enter."""
    return [f"{p} {mode_of(p):o}" for p in [root, *root.rglob("*")] if mode_of(p) & 0o077]


def test_the_data_dir_and_the_database_are_the_server_users_alone(server, gateway, fresh_fake):
    """It holds sessions and keys: a local user who could read the SQLite file could replay a session."""
    reply = requests.post(f"{gateway.url}/v1/chat/completions", headers=gateway.auth, timeout=10,
                          json={"model": "fake", "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text  # a call served: its audit row went through the WAL
    assert f"{mode_of(server.data_dir):o}" == "700"
    database = server.data_dir / "mcpd.sqlite3"
    for path in (database, database.with_name("mcpd.sqlite3-wal"), database.with_name("mcpd.sqlite3-shm")):
        assert (path.name, f"{mode_of(path):o}") == (path.name, "600")
    assert readable_by_others(server.data_dir) == []


def test_the_prometheus_files_are_the_server_users_alone(server, gateway, fresh_fake):
    """gunicorn's master makes their directory under TMPDIR and each worker writes its samples there."""
    reply = requests.post(f"{gateway.url}/v1/chat/completions", headers=gateway.auth, timeout=10,
                          json={"model": "fake", "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text
    [metrics_dir] = server.tmp_dir.glob("mcpd-metrics-*")
    assert list(metrics_dir.glob("*.db")), "no worker wrote a sample"
    assert readable_by_others(metrics_dir) == []

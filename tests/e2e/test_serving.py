"""Serving as `make run` does, with gunicorn's gevent worker: graceful restarts that lose no stream and no
audit row, keep-alives through a provider's silence, and the per-process memory's bound across servers.

Servers of their own (signals, settings of their own), each on a fresh SQLite data dir.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
import requests

from tests.e2e.conftest import Server, running_server
from tests.fakes.upstream import FakeUpstream, openai_stream_frames, sse_reply

pytestmark = pytest.mark.xdist_group("e2e-serving")

KEY = "sk-serving-PROVIDER-KEY-0123456789"
CHAT = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fresh_fake(fake):
    fake.reset()
    return fake


SET_UP = """
from django.contrib.auth.models import User
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
from secrets_app.models import Secret
secret = Secret(name="k", backend="db"); secret.set_value({key!r}); secret.save()
llm = Llm.objects.create(name="fake", provider="openai", model="m", base_url={base_url!r}, api_key_secret=secret)
user = User.objects.create_user("u")
grant_run(user, llm)
print(ApiToken.objects.issue(user)[1])
"""


def set_up(server: Server, fake: FakeUpstream) -> str:
    """An openai Llm `fake` on the fake provider, a user who may run it; their new token (one shell run:
    each manage.py start costs a second)."""
    script = SET_UP.format(key=KEY, base_url=f"{fake.url}/v1")
    return server.manage("shell", "-c", script).strip().splitlines()[-1]


def rows_of(server: Server) -> list[tuple[int, str]]:
    """(status, outcome) of each inference audit row, read from the server's SQLite file."""
    with closing(sqlite3.connect(f"file:{server.data_dir / 'mcpd.sqlite3'}?mode=ro", uri=True, timeout=10)) as db:
        return db.execute("SELECT status, outcome FROM audit_auditevent WHERE kind = 'llm_inference_call' "
                          "ORDER BY id").fetchall()


def wait_rows(server: Server, count: int, timeout: float = 10.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while len(found := rows_of(server)) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    return found


class Reader(threading.Thread):
    """Reads one streamed call in the background: its data lines, and when the first one came."""

    def __init__(self, server: Server, token: str):
        super().__init__(daemon=True)
        self.response = requests.post(f"{server.url}/v1/chat/completions", json=CHAT, stream=True, timeout=30,
                                      headers={"Authorization": f"Bearer {token}"})
        self.lines: list[bytes] = []
        self.first = threading.Event()

    def run(self) -> None:
        for line in self.response.iter_lines():
            if line.startswith(b"data: "):
                self.lines.append(line)
                self.first.set()


@pytest.mark.parametrize("how", ["reload (SIGHUP)", "stop (SIGTERM)"])
def test_a_graceful_restart_lets_open_streams_finish_and_loses_no_audit_row(tmp_path_factory, fresh_fake, how):
    with running_server(tmp_path_factory, env={"WEB_CONCURRENCY": "1"}) as server:
        token = set_up(server, fresh_fake)
        fresh_fake.reply(sse_reply(openai_stream_frames([f"w{i} " for i in range(10)]), interval=0.3))  # ~3.6 s
        reader = Reader(server, token)
        reader.start()
        assert reader.first.wait(5)
        server.process.send_signal(signal.SIGHUP if how.startswith("reload") else signal.SIGTERM)
        reader.join(15)
        assert reader.lines[-1] == b"data: [DONE]" and len(reader.lines) == 13  # role, 10 pieces, finish, DONE
        if how.startswith("stop"):
            assert server.process.wait(20) == 0
        else:
            assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200  # new workers serve
        assert wait_rows(server, 1) == [(200, "ok")]  # written by the old worker before it went


def test_a_client_gone_during_a_providers_silence_is_noticed_at_the_next_keep_alive(tmp_path_factory, fresh_fake):
    with running_server(tmp_path_factory, env={"MCPD_STREAM_KEEPALIVE_SECONDS": "0.5"}) as server:
        token = set_up(server, fresh_fake)
        fresh_fake.reply(sse_reply(openai_stream_frames(["Hi"]), hang_after=1))  # one chunk, then 30 s of silence
        response = requests.post(f"{server.url}/v1/chat/completions", json=CHAT, stream=True, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})
        lines = response.iter_lines()
        assert next(line for line in lines if line).startswith(b"data: {")
        assert next(line for line in lines if line) == b": keep-alive"  # the silence, bridged
        response.close()  # the client goes away while the provider says nothing
        assert fresh_fake.stream_aborted.wait(3), "mcpd kept the provider's stream after the client left"
        assert wait_rows(server, 1) == [(200, "client_disconnected")]


def test_a_revocation_reaches_every_server_within_the_memos_bound(tmp_path_factory, fresh_fake):
    bound = 2.0
    settings = {"WEB_CONCURRENCY": "1", "MCPD_AUTH_CACHE_SECONDS": str(bound)}
    with running_server(tmp_path_factory, env=settings) as first:
        token = set_up(first, fresh_fake)
        with running_server(tmp_path_factory, env=settings, data_dir=first.data_dir) as second:
            servers = [first, second]
            call = {"model": "fake", "messages": [{"role": "user", "content": "Hi"}]}
            auth = {"Authorization": f"Bearer {token}"}
            for server in servers:  # each remembers the token now
                assert requests.post(f"{server.url}/v1/chat/completions", json=call, headers=auth,
                                     timeout=10).status_code == 200
            token_id = first.manage("token", "list", "u").split("\t", 1)[0]
            first.manage("token", "revoke", token_id)  # a third process: neither server hears of it
            revoked_at = time.monotonic()
            refused_after = {}
            while len(refused_after) < len(servers):
                for server in servers:
                    if server.url not in refused_after and requests.post(
                            f"{server.url}/v1/chat/completions", json=call, headers=auth,
                            timeout=10).status_code == 401:
                        refused_after[server.url] = time.monotonic() - revoked_at
                assert time.monotonic() - revoked_at < bound + 3, refused_after
                time.sleep(0.05)
    assert max(refused_after.values()) <= bound + 0.5, refused_after


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Iterator[Server]:
    """One gevent worker; an idle connection kept 1 s (the e2e servers' MCPD_KEEPALIVE), a first request
    waited for 3 s."""
    with running_server(tmp_path_factory, env={"WEB_CONCURRENCY": "1", "MCPD_FIRST_REQUEST_TIMEOUT": "3"}) as server:
        yield server


def test_the_workers_run_on_gevent_and_nothing_was_imported_before_the_patch(one_worker):
    assert "Using worker: mcpd.gunicorn_worker.Worker" in one_worker.log()
    assert "MonkeyPatchWarning" not in one_worker.log()
    os.kill(one_worker.process.pid, 0)


def test_a_new_connection_waits_longer_for_its_first_request_than_an_idle_one_for_its_next(one_worker):
    """A first request late by more than MCPD_KEEPALIVE is still read (a burst of connections is slow to
    send); the next one, after an idle MCPD_KEEPALIVE, finds the connection closed."""
    host, port = one_worker.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.connect()
    with closing(connection):
        time.sleep(2)  # past the 1 s keep-alive, within the 3 s for a first request
        for _ in range(2):  # and kept alive after it
            connection.request("GET", "/healthz")
            reply = connection.getresponse()
            assert (reply.status, json.loads(reply.read())) == (200, {"status": "ok"})
        time.sleep(2)  # idle past the keep-alive: gunicorn has closed it
        assert connection.sock.recv(1) == b""

    with closing(socket.create_connection((host, int(port)), timeout=10)) as silent:
        time.sleep(4)  # past the first request's 3 s too
        assert silent.recv(1) == b""

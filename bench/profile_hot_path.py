"""Profile N in-process inference calls (Django test client -> mcpd -> the fast stand-in on loopback).

    .venv/bin/python bench/profile_hot_path.py [--calls 500] [--stream] [--html out.html]

Sets up a temp data dir exactly as bench/proxy_overhead.py does (migrate, db secret, openai Llm, user with a
per-object grant, token), then prints: the mean in-process time per call, the time per call inside the
functions that make up the hot path (cProfile, inclusive), and pyinstrument's call tree when it is
installed (`.venv/bin/pip install pyinstrument`; it is not a project dependency).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from time import perf_counter

from harness import Mcpd, Upstream, chat_body, django_in_process

# (label, file fragment, function name): inclusive time per call is reported for each one found.
HOT_PATH = [
    ("whole request: test client -> WSGIHandler", "django/test/client.py", "request"),
    ("  middleware chain + view (BaseHandler.get_response)", "django/core/handlers/base.py", "get_response"),
    ("    DRF APIView.dispatch", "rest_framework/views.py", "dispatch"),
    ("      DRF initial (auth, permissions, throttles)", "rest_framework/views.py", "initial"),
    ("        bearer auth: authenticate_bearer", "mcpd/auth.py", "authenticate_bearer"),
    ("          ApiToken.touch", "mcpd/models.py", "touch"),
    ("      read_body (orjson.loads)", "mcpd/http.py", "read_body"),
    ("      llm_to_run", "llms/permissions.py", "llm_to_run"),
    ("        can_run", "llms/permissions.py", "can_run"),
    ("          may_run_every (user.has_perm)", "llms/permissions.py", "may_run_every"),
    ("      proxy.chat_completion", "llms/proxy.py", "chat_completion"),
    ("        _target (secret resolve = Fernet decrypt)", "llms/proxy.py", "_target"),
    ("        Scrubber (per call: the key as bytes)", "llms/scrub.py", "__init__"),
    ("        transport.post (requests Session.post)", "llms/transport.py", "post"),
    ("          requests Session.request", "requests/sessions.py", "request"),
    ("            urllib3 urlopen (socket I/O)", "urllib3/connectionpool.py", "urlopen"),
    ("        _answer (read + parse the reply)", "llms/proxy.py", "_answer"),
    ("          CallRecord.finish (audit INSERT)", "audit/recorder.py", "finish"),
    ("      Response rendering (JSONRenderer)", "rest_framework/response.py", "rendered_content"),
    ("    RequestIdMiddleware", "mcpd/middleware.py", "__call__"),
    ("  all SQL: CursorWrapper.execute", "django/db/backends/utils.py", "execute"),
    ("  DB connection open/health (close_old_connections)", "django/db/__init__.py", "close_old_connections"),
]


def median_ms(fn, n: int, setup=None) -> float:
    """Median wall time of fn() over n runs, in ms (setup() runs untimed before each, its result passed in)."""
    times = []
    for _ in range(n):
        arg = setup() if setup else None
        t0 = perf_counter()
        fn(arg) if setup else fn()
        times.append(perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1000


def components(mcpd: Mcpd, upstream: Upstream, n: int, whole: float) -> None:
    """Each piece of the hot path timed alone, no profiler: unbiased costs to rank the suggestions by."""
    import urllib3
    from django.contrib.auth import get_user_model

    from audit.recorder import Caller, CallRecord
    from llms import proxy, transport
    from llms.models import Llm
    from llms.permissions import can_run, llm_to_run, may_run_every
    from mcpd.auth import authenticate_bearer
    from secrets_app.backends import resolve

    header = f"Bearer {mcpd.token}".encode()
    user_model = get_user_model()
    user_pk = user_model.objects.get(username=mcpd.user).pk
    fresh_user = lambda: user_model.objects.get(pk=user_pk)  # noqa: E731 - has_perm caches on the instance
    llm = Llm.objects.select_related("api_key_secret").get(name=mcpd.llm)
    body = {"model": mcpd.llm, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}
    url = f"{upstream.url}/chat/completions"
    payload = json.dumps({**body, "model": "bench-model"}).encode()
    pool = urllib3.PoolManager()

    def record(_=None) -> CallRecord:
        return CallRecord(Caller(request_id="bench"), api="chat_completions", streaming=False)

    def with_perms():
        user = fresh_user()
        may_run_every(user)
        return user

    def finished_record():
        r = record()
        r.set_llm(llm.name, llm.provider, llm.model)
        r.ok()
        return r

    rows = [
        ("authenticate_bearer (token+user SELECT; touch is a no-op)", median_ms(lambda: authenticate_bearer(header), n)),
        ("llm_to_run, all of it (4 queries for a per-object grant)", median_ms(lambda u: llm_to_run(u, mcpd.llm), n, fresh_user)),
        ("  may_run_every: user.has_perm (2 queries, uncached user)", median_ms(may_run_every, n, fresh_user)),
        ("  Llm SELECT … JOIN secret (.first())", median_ms(
            lambda: Llm.objects.select_related("api_key_secret").filter(name=mcpd.llm).first(), n)),
        ("  can_run's per-object EXISTS (model perms cached)", median_ms(lambda u: can_run(u, llm), n, with_perms)),
        ("proxy.chat_completion (upstream call + audit INSERT)", median_ms(
            lambda: proxy.chat_completion(Caller(request_id="bench"), llm, dict(body)).close(), n)),
        ("  CallRecord.finish (audit INSERT)", median_ms(lambda r: r.finish(), n, finished_record)),
        ("  resolve(secret): Fernet decrypt", median_ms(lambda: resolve(llm.api_key_secret), n)),
        ("  transport.SESSION.post + .content (requests)", median_ms(lambda: transport.SESSION.post(
            url, data=payload, headers={"Content-Type": "application/json"}, timeout=10).content, n)),
        ("  the same with urllib3.PoolManager directly", median_ms(lambda: pool.request(
            "POST", url, body=payload, headers={"Content-Type": "application/json"}).data, n)),
    ]
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    rows.append(("GET /healthz via the test client: the middleware + one SELECT 1 floor",
                 median_ms(lambda: client.get("/healthz"), n)))
    print("\neach piece alone, median of", n, "runs, no profiler:")
    for label, ms in rows:
        print(f"  {ms:7.3f} ms  {label}")
    print(f"  {whole * 1000:7.3f} ms  (the whole in-process call, mean, for comparison)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--stream", action="store_true", help="profile streamed calls (20 chunks) instead")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--html", default=None, help="also write pyinstrument's HTML report here")
    args = parser.parse_args()

    upstream, mcpd = Upstream(20), Mcpd(args.database_url)
    try:
        mcpd.set_up(upstream.url)
        django_in_process(mcpd)
        from django.test import Client

        client = Client(HTTP_HOST="127.0.0.1")
        kwargs = {"content_type": "application/json", "HTTP_AUTHORIZATION": f"Bearer {mcpd.token}"}
        body = chat_body(mcpd.llm, stream=args.stream)

        def call() -> None:
            response = client.post("/v1/chat/completions", body, **kwargs)
            if args.stream:
                b"".join(response.streaming_content)
                response.close()
            assert response.status_code == 200

        for _ in range(50):
            call()
        t0 = perf_counter()
        for _ in range(args.calls):
            call()
        plain = (perf_counter() - t0) / args.calls
        print(f"{args.calls} in-process {'streamed' if args.stream else 'non-streaming'} calls: "
              f"{plain * 1000:.3f} ms per call without a profiler")
        if not args.stream:
            components(mcpd, upstream, args.calls, plain)

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.calls):
            call()
        profiler.disable()
        stats = pstats.Stats(profiler)
        total_calls = args.calls
        print("\ninclusive time per call under cProfile (inflates Python-heavy code; compare rows, not to the above):")
        for label, fragment, name in HOT_PATH:
            found = [(v[3], v[1]) for (file, _, func), v in stats.stats.items()  # type: ignore[attr-defined]
                     if func == name and fragment in file]
            if found:
                cum = max(found)[0]
                print(f"  {cum / total_calls * 1000:7.3f} ms  {label}")
        print("\ntop functions by own time (cProfile, per call):")
        own = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # type: ignore[attr-defined]
        for (file, line, func), (_, ncalls, tottime, _, _) in own:
            where = "/".join(file.split("/")[-2:])
            print(f"  {tottime / total_calls * 1000:7.3f} ms  {ncalls / total_calls:5.1f}x  {func}  ({where}:{line})")

        try:
            from pyinstrument import Profiler
        except ImportError:
            print("\n(pyinstrument is not installed: skipping its call tree)")
            return
        sampler = Profiler(interval=0.0005)
        sampler.start()
        t0 = time.perf_counter()
        for _ in range(args.calls):
            call()
        sampler.stop()
        print(f"\npyinstrument ({(time.perf_counter() - t0) / args.calls * 1000:.3f} ms per call while sampling):")
        print(sampler.output_text(unicode=True, color=False, show_all=False, short_mode=False))
        if args.html:
            with open(args.html, "w") as handle:
                handle.write(sampler.output_html())
    finally:
        upstream.stop()
        mcpd.remove()


if __name__ == "__main__":
    main()

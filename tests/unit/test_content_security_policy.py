"""mcpd's Content-Security-Policy goes on HTML pages only, and never replaces one a view set itself."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from mcpd.middleware import CONTENT_SECURITY_POLICY, ContentSecurityPolicyMiddleware


def served(response, debug: bool = False):
    middleware = ContentSecurityPolicyMiddleware(lambda request: response)
    middleware.debug = debug
    return middleware(None)


def test_an_html_page_gets_the_policy():
    assert served(HttpResponse("<p>hi</p>"))["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "Content-Security-Policy" in served(HttpResponse("<p>gone</p>", status=500))


def test_json_and_event_streams_do_not():
    stream = StreamingHttpResponse(iter([b"data: [DONE]\n\n"]), content_type="text/event-stream")
    assert "Content-Security-Policy" not in served(stream)
    assert "Content-Security-Policy" not in served(JsonResponse({"status": "ok"}))


def test_a_views_own_policy_is_kept():
    page = HttpResponse("<p>hi</p>", headers={"Content-Security-Policy": "default-src 'none'"})
    assert served(page)["Content-Security-Policy"] == "default-src 'none'"


def test_the_debug_traceback_page_keeps_its_inline_scripts():
    assert "Content-Security-Policy" not in served(HttpResponse("<script>toggle()</script>", status=500),
                                                   debug=True)
    assert "Content-Security-Policy" in served(HttpResponse("<p>not found</p>", status=404), debug=True)


def test_the_policy_allows_no_inline_script_nor_eval_and_loads_from_no_other_host():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY
    assert "*" not in CONTENT_SECURITY_POLICY

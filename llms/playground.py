"""/playground/: a logged-in user's chat page for the Llms they may run.

The page is plain HTML; its script (llms/static/llms/playground.js) calls the real inference route,
POST /api/v1/llms/{name}/infer, as the browser's session with its CSRF token: the call is permitted,
limited and audited exactly as any other.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from llms.permissions import runnable_llms


@never_cache
@login_required(login_url="admin:login")
@require_http_methods(["GET", "HEAD"])
def playground(request: HttpRequest) -> TemplateResponse:
    """The chat page: the enabled Llms the user may run, the one asked for (?llm=NAME) chosen."""
    llms = list(runnable_llms(request.user).filter(enabled=True).order_by("name"))
    chosen = request.GET.get("llm", "")
    if not any(llm.name == chosen for llm in llms):
        chosen = llms[0].name if llms else ""
    return TemplateResponse(request, "llms/playground.html", {
        **admin.site.each_context(request),
        "title": "Playground",
        "llms": llms,
        "chosen": chosen,
        "currency": settings.CURRENCY,
    })

"""What an Llm's admin page shows beside its form (llms/admin.py): its deployments and which of them are
cooling down, who may run it, the limits on it and its recent calls; and the one call of its Test button.

Each panel reads what it shows when the page is asked for, from the database and the counter store (not
from this process's memory of them), so the page tells what every worker does now.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Count, Q

from audit.models import AuditEvent
from audit.recorder import Caller
from limits.models import Limit
from llms import proxy, routing
from llms.models import Llm, LlmGroupObjectPermission, LlmUserObjectPermission, redact_userinfo
from mcpd.errors import ApiError

RECENT_CALLS = 20
TEST_PROMPT = "Say hello"
TEST_PROMPT_MAX = 2000  # characters: a test is one short prompt


@dataclass(frozen=True)
class DeploymentRow:
    """One deployment as the page lists it: id "0" is the Llm's own base URL, secret and model."""

    id: str
    base_url: str
    model: str
    secret: str
    weight: int
    enabled: bool
    state: str = ""  # ready, standby, cooling down, disabled, unknown


def deployments(llm: Llm) -> tuple[list[DeploymentRow], str]:
    """The Llm's deployments, its own first, each with its state as the fleet sees it now; and why the
    cool-downs could not be read, when they could not."""
    rows = [DeploymentRow("0", llm.shown_base_url, llm.model, _secret_name(llm.api_key_secret), llm.weight, True)]
    rows += [DeploymentRow(str(d.pk), redact_userinfo(d.effective_base_url), d.model or llm.model,
                           _secret_name(d.api_key_secret), d.weight, d.enabled)
             for d in llm.deployments.select_related("api_key_secret").order_by("id")]
    enabled = [row for row in rows if row.enabled]
    cooling: set[str] | None = set()
    problem = ""
    if len(enabled) > 1:  # an Llm's only deployment is never cooled down (llms/proxy.py)
        from limits.admission import counters
        from limits.store import StoreUnavailable

        try:
            cooling = counters().cooling([routing.cool_key(llm.pk, row.id) for row in enabled], int(time.time()))
        except StoreUnavailable as exc:
            cooling, problem = None, f"The cool-downs could not be read: {exc}"
    return [replace(row, state=_state(llm, row, cooling)) for row in rows], problem


def _state(llm: Llm, row: DeploymentRow, cooling: set[str] | None) -> str:
    if not row.enabled:
        return "disabled"
    if cooling is None:
        return "unknown"
    if routing.cool_key(llm.pk, row.id) in cooling:
        return "cooling down"
    return "standby" if row.weight == 0 else "ready"


def _secret_name(secret) -> str:
    return secret.name if secret is not None else ""


@dataclass(frozen=True)
class Holder:
    """A user or group who holds run on the Llm: on this one (per object) or on every Llm (model-level)."""

    kind: str  # "user" or "group"
    pk: int
    name: str
    every_llm: bool
    active: bool = True
    members: int | None = None  # a group's
    kept: tuple[str, ...] = ()  # the holder's other object permissions on this Llm: a revoke keeps them


def run_holders(llm: Llm) -> list[Holder]:
    """Who may run the Llm by a grant (superusers, who need none, apart): per object first, then model-level."""
    run = Permission.objects.get(content_type__app_label="llms", codename="run_llm")
    holders: list[Holder] = []
    for model, kind in ((LlmUserObjectPermission, "user"), (LlmGroupObjectPermission, "group")):
        perms: dict[int, set[str]] = {}
        for holder_id, codename in model.objects.filter(content_object=llm).values_list(
                f"{kind}_id", "permission__codename"):
            perms.setdefault(holder_id, set()).add(codename)
        running = [pk for pk, codenames in perms.items() if "run_llm" in codenames]
        for each in _holders_named(kind, running):
            holders.append(replace(each, kept=tuple(sorted(perms[each.pk] - {"run_llm"}))))
    users = get_user_model().objects.filter(user_permissions=run).values_list("pk", flat=True)
    groups = Group.objects.filter(permissions=run).values_list("pk", flat=True)
    holders += [replace(each, every_llm=True) for each in (*_holders_named("user", list(users)),
                                                           *_holders_named("group", list(groups)))]
    return holders


def _holders_named(kind: str, pks: list[int]) -> list[Holder]:
    if not pks:
        return []
    if kind == "user":
        users = get_user_model().objects.filter(pk__in=pks).order_by("username")
        return [Holder("user", user.pk, user.get_username(), False, active=user.is_active) for user in users]
    groups = Group.objects.filter(pk__in=pks).annotate(members=Count("user")).order_by("name")
    return [Holder("group", group.pk, group.name, False, members=group.members) for group in groups]


def superusers() -> int:
    """Active superusers: they may run every Llm without a grant."""
    return get_user_model().objects.filter(is_superuser=True, is_active=True).count()


def limits_on(llm: Llm) -> list[Limit]:
    """The limits that apply to calls of the Llm: those on it, then those on every Llm together."""
    limits = Limit.objects.filter(Q(llm=llm) | Q(llm__isnull=True)).select_related("user", "group", "llm")
    return sorted(limits, key=lambda limit: (limit.llm_id is None, limit.pk))


def recent_calls(llm: Llm) -> list[AuditEvent]:
    """The Llm's last audit rows, newest first: one range of the (llm_name, created_at, id) index. Each
    with `shown_cost`, its cost without the column's trailing zeros."""
    calls = list(AuditEvent.objects.filter(llm_name=llm.name).order_by("-created_at", "-id")[:RECENT_CALLS])
    for call in calls:
        call.shown_cost = money(call.cost)
    return calls


def money(amount: Decimal | None) -> str:
    """A cost as the page shows it: 0.00043, not 0.0004300000 (nor 4.3E-4); "—" when unknown."""
    return "—" if amount is None else f"{amount.normalize():f}"


def trial(caller: Caller, llm: Llm, prompt: str) -> dict[str, Any]:
    """One prompt through the service as `caller`, not streamed, as `manage.py llm test` sends it: what
    the Test button shows (plain values, kept in the session until the page shows them). Audited, limited
    and priced like any call; an error is the one the API would send, scrubbed of the key."""
    started = time.monotonic()
    result: dict[str, Any] = {"llm": llm.name, "prompt": prompt, "request_id": caller.request_id}
    try:
        answer = proxy.chat_completion(caller, llm, {"messages": [{"role": "user", "content": prompt}]})
    except ApiError as exc:
        return {**result, "ok": False, "status": exc.status, "type": exc.type, "code": exc.code,
                "message": exc.message, "ms": _ms(started)}
    try:
        completion = json.loads(answer.body)
    finally:
        answer.close()  # writes the audit row
    choices = completion.get("choices") or [{}]
    message = choices[0].get("message") or {}
    usage = completion.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    cost = llm.prices.cost(usage.get("prompt_tokens"), usage.get("completion_tokens"), details.get("cached_tokens"))
    return {**result, "ok": True, "status": 200, "ms": _ms(started),
            "text": message.get("content") or "",
            "reasoning": message.get("reasoning_content") or "",
            "tool_calls": json.dumps(message["tool_calls"], indent=1) if message.get("tool_calls") else "",
            "finish_reason": choices[0].get("finish_reason") or "",
            "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
            "cost": None if cost is None else money(cost)}


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

"""An Llm's admin page: its deployments and their cool-downs, who may run it (with revoke and grant on
guardian's pages), its limits, its recent calls, and the Test button."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm, get_user_perms

from audit.models import INFERENCE, AuditEvent, Outcome
from limits.models import Limit
from llms.models import Deployment, Llm
from llms.permissions import can_run, grant_run
from llms.routing import cool_key
from tests.api.calls import rows
from tests.api.test_admin import fresh, page
from tests.conftest import FAKE_KEY
from tests.fakes.upstream import HELLO, json_reply

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script>'


def change_url(llm: Llm) -> str:
    return f"/admin/llms/llm/{llm.pk}/change/"


def trial_url(llm: Llm) -> str:
    return f"/admin/llms/llm/{llm.pk}/test/"


def section(html: str, id: str) -> str:
    """The overview's panel `id` (up to the next panel)."""
    start = html.index(f'id="{id}"')
    end = html.find('<div class="module"', start + 1)
    return html[start:end if end > 0 else None]


def states(html: str) -> dict[str, str]:
    """Deployment id ("own" for the Llm's own) -> its state, as the deployments panel shows them."""
    found = re.findall(r"<tr class=\"llm-state-[^\"]*\">\s*<td>([^<]+)</td>.*?<td class=\"llm-state\">([^<]+)</td>",
                       section(html, "llm-deployments"), re.S)
    return dict(found)


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password=f"pw-{username}-1234", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def logged_in(user: User, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


# --- deployments and their cool-downs


def test_it_shows_each_deployment_and_which_are_cooling_down(admin_client, llm, secret):
    standby = Deployment.objects.create(llm=llm, base_url="http://standby.internal/v1", weight=0)
    second = Deployment.objects.create(llm=llm, base_url="http://second.internal/v1", model="gpt-eu",
                                       api_key_secret=secret)
    off = Deployment.objects.create(llm=llm, base_url="http://off.internal/v1", enabled=False)
    from limits.admission import counters

    counters().cool(cool_key(llm.pk, str(second.pk)), int(time.time()) + 60)  # as a failed call marks it
    html = page(admin_client.get(change_url(llm)))
    assert states(html) == {"own": "ready", str(standby.pk): "standby", str(second.pk): "cooling down",
                            str(off.pk): "disabled"}
    panel = section(html, "llm-deployments")
    assert "http://second.internal/v1" in panel and "gpt-eu" in panel and "provider-key" in panel


def test_an_llms_only_deployment_is_ready_without_asking_the_store(admin_client, llm, monkeypatch):
    from limits import admission

    monkeypatch.setattr(admission, "counters", lambda: pytest.fail("the store was asked"))
    assert states(page(admin_client.get(change_url(llm)))) == {"own": "ready"}


def test_an_unreachable_counter_store_shows_as_unknown(admin_client, llm, monkeypatch):
    from limits import admission
    from limits.store import StoreUnavailable

    class Down:
        def cooling(self, keys, now):
            raise StoreUnavailable("redis: connection refused")

    Deployment.objects.create(llm=llm, base_url="http://second.internal/v1")
    monkeypatch.setattr(admission, "counters", lambda: Down())
    html = page(admin_client.get(change_url(llm)))
    assert set(states(html).values()) == {"unknown"}
    assert "The cool-downs could not be read: redis: connection refused" in html


# --- who may run it


@pytest.fixture
def holders(llm, alice, carol, dave):
    """alice (per object), dave (per object, inactive), group team (per object), carol and group all (every Llm)."""
    team = Group.objects.create(name="team")
    team.user_set.add(carol)
    grant_run(team, llm)
    grant_run(carol, None)
    grant_run(Group.objects.create(name="all"), None)
    return team


def holder_rows(html: str) -> list[str]:
    panel = section(html, "llm-access")
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for row in re.findall(r'<tr class="llm-holder">\s*<td>(.*?)</td>\s*<td>(?:.*?)</td>', panel, re.S)]


def test_a_superuser_sees_who_may_run_it_per_object_and_on_every_llm(admin_client, llm, holders):
    html = page(admin_client.get(change_url(llm)))
    assert holder_rows(html) == ["user alice", "user dave (inactive: may not run)", "group team (1 member)",
                                 "user carol", "group all (0 members)"]
    panel = section(html, "llm-access")
    assert panel.count('value="Revoke run"') == 3  # the per-object grants; every-Llm ones on the user's page
    assert "And the 1 active superuser, who may run every LLM." in panel
    assert f'action="/admin/llms/llm/{llm.pk}/permissions/"' in panel  # granting: guardian's page


def test_revoking_from_the_page_goes_through_guardian_and_keeps_the_other_permissions(admin_client, llm, alice):
    assign_perm("view_llm", alice, llm)  # a superuser gave it: a revoke of run must keep it
    html = page(admin_client.get(change_url(llm)))
    form = re.search(r'<form method="post" action="([^"]+)" class="llm-inline">(.*?)</form>',
                     section(html, "llm-access"), re.S)
    assert form.group(1) == f"/admin/llms/llm/{llm.pk}/permissions/user-manage/{alice.pk}/"
    posted = dict(re.findall(r'name="(next|permissions)" value="([^"]+)"', form.group(2)))
    assert posted == {"next": "llm", "permissions": "view_llm"}
    response = admin_client.post(form.group(1), posted)
    assert (response.status_code, response["Location"]) == (302, f"{change_url(llm)}#llm-access")
    assert not can_run(fresh(alice), llm)
    assert set(get_user_perms(alice, llm)) == {"view_llm"}
    revoked = AuditEvent.objects.get(kind="permission.revoked", detail__llm="gpt")
    assert (revoked.actor, revoked.detail["holder"]) == ("root", "user:alice")


def test_a_granter_revokes_run_for_a_group_and_only_run(llm, holders):
    gina = staff("gina", "grant_run_llm", "view_llm")
    client = logged_in(gina)
    html = page(client.get(change_url(llm)))
    assert 'name="permissions"' not in section(html, "llm-access")  # their form offers run alone
    response = client.post(f"/admin/llms/llm/{llm.pk}/permissions/group-manage/{holders.pk}/", {"next": "llm"})
    assert response["Location"] == f"{change_url(llm)}#llm-access"
    assert "group team" not in " ".join(holder_rows(page(client.get(change_url(llm)))))


def test_a_grant_from_the_page_lands_on_guardians_page_for_that_user(admin_client, llm, carol):
    response = admin_client.post(f"/admin/llms/llm/{llm.pk}/permissions/",
                                 {"user": "carol", "submit_manage_user": "Choose…"})
    assert response["Location"] == f"/admin/llms/llm/{llm.pk}/permissions/user-manage/{carol.pk}/"


def test_a_catalogue_editor_sees_no_holders_limits_or_calls_and_cannot_revoke(client, bob, llm, alice):
    client.force_login(bob)
    html = page(client.get(change_url(llm)))
    assert "alice" not in section(html, "llm-access")
    assert "Shown to those who may grant run on LLMs." in html
    assert "Shown to those who may view limits." in html and "Shown to those who may view audit events." in html
    response = client.post(f"/admin/llms/llm/{llm.pk}/permissions/user-manage/{alice.pk}/", {"next": "llm"})
    assert response.status_code == 403
    assert can_run(fresh(alice), llm)


# --- limits and recent calls


def test_it_lists_the_limits_on_it_and_on_every_llm_but_not_on_others(admin_client, llm, make_llm, alice):
    on_it = Limit.objects.create(user=alice, llm=llm, requests_per_minute=5)
    everywhere = Limit.objects.create(everyone=True, concurrent=3)
    Limit.objects.create(everyone=True, llm=make_llm("other"), tokens_per_minute=9)
    panel = section(page(admin_client.get(change_url(llm))), "llm-limits")
    found = re.findall(r'<a href="/admin/limits/limit/(\d+)/change/">', panel)
    assert found == [str(on_it.pk), str(everywhere.pk)]
    assert "user alice" in panel and "5 requests/min" in panel and "3 at once" in panel
    assert "every LLM together" in panel and "tokens/min" not in panel
    assert f'href="/admin/limits/limit/add/?llm={llm.pk}"' in panel


def test_it_shows_the_last_20_calls_of_this_llm_newest_first_from_its_index(admin_client, llm):
    for n in range(25):
        AuditEvent.objects.create(kind=INFERENCE, llm_name="gpt", actor=f"caller{n}", status=200, outcome="ok",
                                  duration_ms=n, api="chat_completions")
    AuditEvent.objects.create(kind=INFERENCE, llm_name="other", actor="elsewhere", status=200, outcome="ok")
    with CaptureQueriesContext(connection) as queries:
        html = page(admin_client.get(change_url(llm)))
    panel = section(html, "llm-calls")
    callers = re.findall(r"<td>(caller\d+)</td>", panel)
    assert callers == [f"caller{n}" for n in range(24, 4, -1)]
    assert "elsewhere" not in panel
    [query] = [q["sql"] for q in queries.captured_queries if "audit_auditevent" in q["sql"]]
    assert re.search(r'WHERE "audit_auditevent"."llm_name" = .*ORDER BY "audit_auditevent"."created_at" DESC, '
                     r'"audit_auditevent"."id" DESC LIMIT 20', query), query
    assert "/admin/audit/auditevent/?llm_name=gpt" in panel


# --- the Test button


def test_test_calls_the_llm_as_the_admin_and_shows_the_answer_once(admin_client, upstream_llm, fake_upstream):
    upstream_llm.price_input, upstream_llm.price_output = 2.5, 10
    upstream_llm.save()
    response = admin_client.post(trial_url(upstream_llm), {"prompt": "Say hi to the admin"})
    assert (response.status_code, response["Location"]) == (302, f"{change_url(upstream_llm)}#llm-test")
    assert fake_upstream.requests[-1].json()["messages"] == [{"role": "user", "content": "Say hi to the admin"}]
    [row] = rows()
    assert (row.user.username, row.token_sha, row.status, row.outcome, row.api, row.streaming) == (
        "root", "", 200, Outcome.OK, "chat_completions", False)
    html = page(admin_client.get(change_url(upstream_llm)))
    result = section(html, "llm-test")
    assert f'<pre class="llm-answer" id="llm-test-answer">{HELLO}</pre>' in result
    assert "9 prompt + 6 completion tokens · 0.0000825 USD" in result
    assert f"Request ID {row.request_id}" in result
    assert 'value="Say hi to the admin"' in result
    assert "llm-test-answer" not in page(admin_client.get(change_url(upstream_llm)))  # shown once


def test_test_shows_the_providers_error_scrubbed_of_the_key_and_audits_it(admin_client, upstream_llm, fake_upstream):
    # A provider's 4xx passes its message on: here one that echoes the key (and some markup).
    fake_upstream.reply(json_reply({"error": {"message": f"Bad request with key {FAKE_KEY.upper()}. <b>x</b>"}},
                                   status=400))
    admin_client.post(trial_url(upstream_llm), {"prompt": "Say hello"})
    html = page(admin_client.get(change_url(upstream_llm)))
    error = re.search(r'<p class="errornote" id="llm-test-error" role="alert">(.*?)</p>', html, re.S).group(1)
    assert error.startswith("400 invalid_request_error: Bad request with key ")
    assert "[redacted]" in error and "&lt;b&gt;x&lt;/b&gt;" in error
    assert FAKE_KEY.upper()[8:16] not in html.upper()
    [row] = rows()
    assert (row.status, row.outcome, row.user.username) == (400, Outcome.ERROR, "root")
    assert FAKE_KEY.upper()[8:16] not in row.error.upper() and "[redacted]" in row.error


def test_test_needs_run_on_the_llm(llm, fake_upstream):
    viewer = staff("vera", "view_llm", "change_llm")
    client = logged_in(viewer)
    html = page(client.get(change_url(llm)))
    assert 'id="llm-test-button"' not in html and "it needs run on this LLM" in html
    assert client.post(trial_url(llm), {"prompt": "Say hello"}).status_code == 403
    assert fake_upstream.requests == [] and rows() == []


def test_staff_who_may_run_and_view_it_may_test_it(upstream_llm, fake_upstream):
    runner = staff("sam", "view_llm")
    grant_run(runner, upstream_llm)
    client = logged_in(runner)
    assert 'id="llm-test-button"' in page(client.get(change_url(upstream_llm)))
    assert client.post(trial_url(upstream_llm), {"prompt": ""}).status_code == 302
    assert fake_upstream.requests[-1].json()["messages"][0]["content"] == "Say hello"  # the default prompt
    assert rows()[0].user == runner


def test_test_refuses_a_disabled_llm_as_the_api_does(admin_client, upstream_llm, fake_upstream):
    upstream_llm.enabled = False
    upstream_llm.save()
    admin_client.post(trial_url(upstream_llm))
    assert "404 not_found_error: The Llm &#x27;gpt&#x27; is disabled." in page(admin_client.get(change_url(upstream_llm)))
    assert fake_upstream.requests == []


def test_test_is_a_post_with_the_csrf_token(admin_user, upstream_llm, fake_upstream):
    client = logged_in(admin_user, enforce_csrf=True)
    assert client.get(trial_url(upstream_llm)).status_code == 405
    assert client.post(trial_url(upstream_llm), {"prompt": "Say hello"}).status_code == 403
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page(client.get(change_url(upstream_llm))))
    assert client.post(trial_url(upstream_llm), {"prompt": "Say hello", "csrfmiddlewaretoken": token.group(1)}
                       ).status_code == 302
    assert len(fake_upstream.requests) == 1


# --- hostile text


def test_hostile_names_and_texts_are_escaped(admin_client, upstream_llm, fake_upstream, carol):
    upstream_llm.model = HOSTILE
    upstream_llm.save()
    Deployment.objects.create(llm=upstream_llm, base_url="http://second.internal/v1", model=HOSTILE)
    group = Group.objects.create(name=HOSTILE)
    grant_run(group, upstream_llm)
    Limit.objects.create(group=group, llm=upstream_llm, requests_per_minute=1)
    AuditEvent.objects.create(kind=INFERENCE, llm_name="gpt", actor="x", error=HOSTILE, status=502, outcome="error")
    fake_upstream.reply(json_reply({"error": {"message": HOSTILE}}, status=400))
    admin_client.post(trial_url(upstream_llm), {"prompt": HOSTILE})
    html = page(admin_client.get(change_url(upstream_llm)))
    overview = html[html.index('id="llm-overview"'):]
    assert HOSTILE not in overview and "<script>" not in overview
    assert overview.count("&lt;script&gt;") >= 6  # model twice, group, limit, call error, test error (and prompt)

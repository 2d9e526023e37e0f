"""A Secret's admin page says where it is used: the Llms and the deployments that send it as their key."""

from __future__ import annotations

import re

import pytest

from llms.models import Deployment
from secrets_app.models import Secret
from tests.api.test_admin import page

pytestmark = pytest.mark.django_db


def test_a_secrets_page_shows_the_llms_and_deployments_that_use_it(admin_client, llm, make_llm, secret):
    other = make_llm("other", api_key_secret=None)
    deployment = Deployment.objects.create(llm=other, base_url="http://second.internal/v1", api_key_secret=secret)
    html = page(admin_client.get(f"/admin/secrets_app/secret/{secret.pk}/change/"))
    uses = re.search(r'<ul class="secret-uses">(.*?)</ul>', html, re.S).group(1)
    assert uses == (f'<li>LLM <a href="/admin/llms/llm/{llm.pk}/change/">gpt</a></li>'
                    f'<li>LLM <a href="/admin/llms/llm/{other.pk}/change/">other</a>, deployment {deployment.pk}</li>')
    listing = page(admin_client.get("/admin/secrets_app/secret/"))
    assert f"gpt, other (deployment {deployment.pk})" in listing


def test_an_unused_secrets_page_says_nothing_uses_it(admin_client, db):
    unused = Secret(name="spare", backend="env", ref="SPARE_KEY")
    unused.save()
    assert "Nothing: no LLM or deployment sends it." in page(admin_client.get(
        f"/admin/secrets_app/secret/{unused.pk}/change/"))

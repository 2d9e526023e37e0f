"""The README's `manage.py shell` recipes, run as they are written: against a loopback fake provider."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from audit.models import INFERENCE, AuditEvent
from llms.models import Llm
from llms.permissions import can_run
from mcpd.models import TOKEN_PREFIX, ApiToken

README = Path(__file__).resolve().parents[2] / "README.md"


def recipes() -> str:
    found = re.search(r"<!-- shell-recipes -->\n```python\n(.*?)\n```", README.read_text(), re.S)
    assert found, "the README's shell recipes are gone"
    return found.group(1)


@pytest.mark.django_db
def test_the_readme_shell_recipes_run_as_written(fake_upstream, secret):
    Llm.objects.create(name="gpt4o", provider="openai", model="gpt-4o", base_url=fake_upstream.url + "/v1",
                       api_key_secret=secret)
    alice = User.objects.create_user("alice")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(recipes(), "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith(TOKEN_PREFIX) and ApiToken.objects.filter(user=alice, name="notebook").exists()
    assert lines[1] == "Hello from the fake provider."
    assert lines[2].startswith("1 ") and "('gpt4o', 1)" in lines[2]
    assert can_run(alice, Llm.objects.get(name="gpt4o"))
    [row] = AuditEvent.objects.filter(kind=INFERENCE)
    assert (row.user, row.llm_name, row.status) == (alice, "gpt4o", 200)

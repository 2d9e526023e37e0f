"""Shared fixtures: the cast (alice runs, bob changes only, carol nothing, dave inactive), Llms, tokens."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from rest_framework.test import APIClient

from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
from secrets_app.models import Secret
from tests.waiting import wait_for

pytest_plugins = ["tests.fakes.fixtures"]

FAKE_KEY = "sk-test-FAKE-KEY-0123456789abcdef"

# Property tests (hypothesis) in the suite: the same examples on every run (a property test that fails
# now and then is a defect of its own), a bounded count, no example database left in the work tree. The
# examples share their test's fixtures (a client, an Llm, the fake provider): they are fresh per test, not
# per example, by design. MCPD_HYPOTHESIS_PROFILE=explore draws new examples, many more, for a longer hunt.
_HYPOTHESIS = {"database": None, "deadline": None, "print_blob": True,
               "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
hypothesis_settings.register_profile("mcpd", derandomize=True, max_examples=300, **_HYPOTHESIS)
hypothesis_settings.register_profile("explore", max_examples=3000, **_HYPOTHESIS)
hypothesis_settings.load_profile(os.environ.get("MCPD_HYPOTHESIS_PROFILE", "mcpd"))
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "mcpd-hypothesis")  # its caches, not in the work tree


@pytest.fixture
def secret(db) -> Secret:
    secret = Secret(name="provider-key", backend="db")
    secret.set_value(FAKE_KEY)
    secret.save()
    return secret


@pytest.fixture
def make_llm(db, secret):
    def make(name: str = "gpt", provider: str = "openai", model: str = "gpt-4o-mini", **fields) -> Llm:
        fields.setdefault("api_key_secret", secret)
        return Llm.objects.create(name=name, provider=provider, model=model, **fields)

    return make


@pytest.fixture
def llm(make_llm) -> Llm:
    return make_llm()


@pytest.fixture
def alice(db, llm) -> User:
    """May run `llm` (a per-object grant)."""
    user = User.objects.create_user("alice", password="pw-alice-1234")
    grant_run(user, llm)
    return user


@pytest.fixture
def bob(db) -> User:
    """Staff who may change the catalogue but not run it."""
    user = User.objects.create_user("bob", password="pw-bob-1234", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["change_llm", "view_llm", "add_llm"]))
    return user


@pytest.fixture
def carol(db) -> User:
    """No permissions at all."""
    return User.objects.create_user("carol", password="pw-carol-1234")


@pytest.fixture
def dave(db, llm) -> User:
    """Inactive, though granted run."""
    user = User.objects.create_user("dave", password="pw-dave-1234", is_active=False)
    grant_run(user, llm)
    return user


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("root", password="pw-root-1234", email="root@example.com")


@pytest.fixture
def token_for(db):
    def issue(user: User, **kwargs) -> str:
        return ApiToken.objects.issue(user, **kwargs)[1]

    return issue


@pytest.fixture
def client_for(token_for):
    """An API client authenticated with a fresh bearer token of the user."""

    def make(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return client

    return make


@pytest.fixture(autouse=True)
def _fast_test_settings(settings):
    """A fast password hasher (the default costs ~0.2 s a user) and plain static storage, so pages
    render without `collectstatic` having run (the manifest storage needs it)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture(autouse=True)
def _no_remembered_blocks():
    """Each test starts with no address known to be blocked (the counts themselves roll back with the test)."""
    from mcpd.auth import blocked_addresses

    blocked_addresses.clear()
    yield
    blocked_addresses.clear()


@pytest.fixture(autouse=True)
def _fresh_memos():
    """Each test starts with nothing remembered (mcpd/memo.py): primary keys repeat across tests."""
    from llms.routing import forget_cooling
    from mcpd.memo import forget_everything

    forget_everything()
    forget_cooling()
    yield
    forget_everything()
    forget_cooling()


@pytest.fixture(autouse=True)
def _live_requests_finished(request):
    """A test on the live server ends when the server has finished its requests: a call writes its
    audit row after its response, and a row written while the test database is emptied deadlocks it
    on PostgreSQL (the flush's TRUNCATE against the row's upsert). Set up after the database (an
    autouse fixture of pytest-django's), so torn down before it is emptied."""
    yield
    if "live_server" in request.fixturenames:
        wait_for(lambda: not _serving_threads(), timeout=10)


def _serving_threads() -> list[threading.Thread]:
    """The live server's request threads (socketserver's ThreadingMixIn names them by their target)."""
    return [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory) -> None:
    """SQLite tests on a file, as mcpd runs (WAL, a busy timeout), not the shared-cache in-memory
    database, whose table locks refuse a second thread's writes (the audit writer, a live server)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")

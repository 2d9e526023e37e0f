"""The admin login is throttled: failures count per username (any case) and per address, in the database."""

from __future__ import annotations

import pytest

from mcpd.models import ThrottleCounter

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed login attempts for this account or address; try again in 15 minutes."
WRONG = "Please enter the correct username and password for a staff account."


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_MAX_FAILURES_PER_USER = 3
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    settings.LOGIN_LOCKOUT_SECONDS = 900


def login(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password},
                       REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def errors_of(response) -> list[str]:
    return list(response.context["form"].non_field_errors())


def fail(client, times: int, username: str = "root", address: str = "127.0.0.1") -> None:
    for _ in range(times):
        response = login(client, username, "wrong-password", address)
        assert not logged_in(response) and WRONG in errors_of(response)[0]


def test_a_username_is_locked_after_its_failures_even_with_the_right_password(client, admin_user, clock):
    fail(client, 3)
    response = login(client, "root", "pw-root-1234")
    assert not logged_in(response) and errors_of(response) == [LOCKED]
    assert "_auth_user_id" not in client.session


def test_a_lock_is_refused_before_the_password_is_checked(client, admin_user, clock, django_assert_num_queries):
    fail(client, 3)
    with django_assert_num_queries(1):  # the counts; no user lookup, no password hash, no new count
        login(client, "root", "wrong-password")
    assert ThrottleCounter.objects.get(scope="login-user").count == 3


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(client, admin_user, clock):
    fail(client, 2)
    assert logged_in(login(client, "root", "pw-root-1234"))


def test_every_spelling_of_a_username_shares_its_failures(client, admin_user, clock):
    for spelling in ("ROOT", "Root", "root"):
        fail(client, 1, spelling)
    assert errors_of(login(client, "root", "pw-root-1234")) == [LOCKED]


def test_a_locked_username_is_locked_from_every_address(client, admin_user, clock):
    fail(client, 3, address="192.0.2.1")
    assert errors_of(login(client, "root", "pw-root-1234", address="198.51.100.2")) == [LOCKED]


def test_an_address_is_locked_whatever_the_username(client, admin_user, clock):
    for name in ("a", "b", "c", "d", "e"):
        fail(client, 1, name, address="192.0.2.1")
    assert errors_of(login(client, "root", "pw-root-1234", address="192.0.2.1")) == [LOCKED]
    assert logged_in(login(client, "root", "pw-root-1234", address="198.51.100.2"))  # root itself is not locked


def test_a_staff_password_of_a_non_staff_user_counts_as_a_failure(client, carol, clock):
    for _ in range(3):  # the same answer as a wrong password, so it must count the same
        assert WRONG in errors_of(login(client, "carol", "pw-carol-1234"))[0]
    assert errors_of(login(client, "carol", "pw-carol-1234")) == [LOCKED]


def test_the_lock_ends_with_its_window_and_says_how_long_is_left(client, admin_user, clock):
    clock.advance(60)
    fail(client, 3)
    assert errors_of(login(client, "root", "pw-root-1234")) == [LOCKED.replace("15 minutes", "14 minutes")]
    clock.advance(14 * 60 - 30)
    assert errors_of(login(client, "root", "pw-root-1234")) == [LOCKED.replace("15 minutes", "1 minute")]
    clock.advance(30)
    assert logged_in(login(client, "root", "pw-root-1234"))


def test_zero_turns_the_limits_off(client, admin_user, clock, settings):
    settings.LOGIN_MAX_FAILURES_PER_USER = settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 0
    fail(client, 30)
    assert logged_in(login(client, "root", "pw-root-1234"))
    assert not ThrottleCounter.objects.exists()


def test_the_lock_message_shows_on_the_login_page(client, admin_user, clock):
    fail(client, 3)
    response = login(client, "root", "pw-root-1234")
    assert response.status_code == 200 and LOCKED in response.content.decode()

"""The admin's login form, throttled: failed logins are counted per username and per address."""

from __future__ import annotations

import math
import unicodedata

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from mcpd import throttle


def login_limits() -> tuple[throttle.Limit, throttle.Limit]:
    """The per-username and per-address limits on failed logins, from the settings."""
    seconds = settings.LOGIN_LOCKOUT_SECONDS
    return (throttle.Limit("login-user", settings.LOGIN_MAX_FAILURES_PER_USER, seconds),
            throttle.Limit("login-address", settings.LOGIN_MAX_FAILURES_PER_ADDRESS, seconds))


def username_key(username: str) -> str:
    """One key for every spelling of a username: 'Root', 'ROOT' and 'root' share their failures."""
    return unicodedata.normalize("NFKC", username).casefold()


def lockout_message(retry_after: int) -> str:
    minutes = math.ceil(retry_after / 60)
    return (f"Too many failed login attempts for this account or address; "
            f"try again in {minutes} minute{'' if minutes == 1 else 's'}.")


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """Refuses, before the password is checked, a username or address that used up its failures.

    The right password is refused too while locked, so a lock answers nothing about the password.
    Every attempt that does not log in counts once for the username and once for the address.
    """

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # a missing field: no password is checked, nothing is counted
        user_limit, address_limit = login_limits()
        pairs = [(user_limit, username_key(username)), (address_limit, throttle.address_of(self.request))]
        pairs = [(limit, key) for limit, key in pairs if limit.enabled]
        locked = [tally for tally in throttle.peek(*pairs) if tally.reached]
        if locked:
            retry_after = max(tally.retry_after() for tally in locked)
            raise ValidationError(lockout_message(retry_after), code="locked_out")
        try:
            return super().clean()
        except ValidationError:
            for limit, key in pairs:
                throttle.hit(limit, key)
            raise

"""Who may run what: can_run, runnable_llms and may_run_every for the whole cast, and grant/revoke."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User

from llms.models import Llm
from llms.permissions import can_run, grant_run, may_run_every, revoke_run, runnable_llms

pytestmark = pytest.mark.django_db



@pytest.fixture
def other(make_llm) -> Llm:
    """A second Llm that only the 'every Llm' members of the cast may run."""
    return make_llm("other")


@pytest.fixture
def disabled(make_llm) -> Llm:
    return make_llm("off", enabled=False)


@pytest.fixture
def group_member(db, llm) -> User:
    """Runs `llm` through a group's per-object grant."""
    user = User.objects.create_user("gina")
    group = Group.objects.create(name="runners-of-gpt")
    grant_run(group, llm)
    user.groups.add(group)
    return user


@pytest.fixture
def model_user(db) -> User:
    """Holds the model-level run permission: every Llm."""
    user = User.objects.create_user("mo")
    grant_run(user, None)
    return user


@pytest.fixture
def model_group_member(db) -> User:
    """Member of a group holding the model-level run permission."""
    user = User.objects.create_user("greta")
    group = Group.objects.create(name="run-everything")
    grant_run(group, None)
    user.groups.add(group)
    return user


@pytest.fixture
def inactive_superuser(db) -> User:
    return User.objects.create_superuser("ghost", email="ghost@example.com", is_active=False)


# name -> (may run `llm`, may run `other`, may run every Llm)
MATRIX = {
    "admin_user": (True, True, True),
    "model_user": (True, True, True),
    "model_group_member": (True, True, True),
    "alice": (True, False, False),
    "group_member": (True, False, False),
    "dave": (False, False, False),
    "inactive_superuser": (False, False, False),
    "bob": (False, False, False),
    "carol": (False, False, False),
}


def fresh(user: User) -> User:
    """The user as a new request would load it (no permission cache)."""
    return User.objects.get(pk=user.pk)


@pytest.mark.parametrize("who", MATRIX)
def test_the_run_matrix(who, request, llm, other):
    user = fresh(request.getfixturevalue(who))
    on_llm, on_other, every = MATRIX[who]
    assert can_run(user, llm) is on_llm
    assert can_run(user, other) is on_other
    assert may_run_every(user) is every
    expected = {name for name, allowed in [("gpt", on_llm), ("other", on_other)] if allowed}
    assert set(runnable_llms(user).values_list("name", flat=True)) == expected


@pytest.mark.parametrize("who", MATRIX)
def test_can_run_agrees_with_runnable_llms(who, request, llm, other, disabled):
    user = fresh(request.getfixturevalue(who))
    runnable = set(runnable_llms(user))
    for entry in Llm.objects.all():
        assert can_run(user, entry) is (entry in runnable), entry.name


def test_an_anonymous_user_runs_nothing(llm):
    anonymous = AnonymousUser()
    assert can_run(anonymous, llm) is False
    assert may_run_every(anonymous) is False
    assert not runnable_llms(anonymous).exists()


def test_change_and_every_other_model_permission_never_imply_run(bob, llm):
    from django.contrib.auth.models import Permission

    bob.user_permissions.add(*Permission.objects.filter(content_type__app_label="llms").exclude(codename="run_llm"))
    bob = fresh(bob)
    assert bob.has_perm("llms.change_llm") and bob.has_perm("llms.delete_llm")
    assert can_run(bob, llm) is False
    assert may_run_every(bob) is False
    assert not runnable_llms(bob).exists()


def test_a_per_object_grant_on_one_llm_gives_no_other(alice, other):
    alice = fresh(alice)
    assert list(runnable_llms(alice).values_list("name", flat=True)) == ["gpt"]
    assert can_run(alice, other) is False


# --- grant_run / revoke_run round trips


def test_grant_and_revoke_run_on_one_llm_for_a_user(carol, llm, other):
    grant_run(carol, llm)
    assert can_run(fresh(carol), llm) and not can_run(fresh(carol), other)
    revoke_run(carol, llm)
    assert not can_run(fresh(carol), llm)
    assert not runnable_llms(fresh(carol)).exists()


def test_grant_and_revoke_run_on_one_llm_for_a_group(carol, llm, other):
    group = Group.objects.create(name="team")
    carol.groups.add(group)
    grant_run(group, llm)
    assert can_run(fresh(carol), llm) and not can_run(fresh(carol), other)
    revoke_run(group, llm)
    assert not can_run(fresh(carol), llm)
    assert not runnable_llms(fresh(carol)).exists()


def test_grant_and_revoke_run_on_every_llm_for_a_user(carol, llm, other):
    grant_run(carol, None)
    assert may_run_every(fresh(carol))
    assert set(runnable_llms(fresh(carol))) == {llm, other}
    revoke_run(carol, None)
    assert not may_run_every(fresh(carol))
    assert not can_run(fresh(carol), other)


def test_grant_and_revoke_run_on_every_llm_for_a_group(carol, llm, other):
    group = Group.objects.create(name="everyone")
    carol.groups.add(group)
    grant_run(group, None)
    assert may_run_every(fresh(carol)) and can_run(fresh(carol), other)
    revoke_run(group, None)
    assert not may_run_every(fresh(carol))
    assert not runnable_llms(fresh(carol)).exists()


def test_revoking_the_every_llm_grant_leaves_a_per_object_one(alice, llm, other):
    grant_run(alice, None)
    revoke_run(alice, None)
    assert can_run(fresh(alice), llm) and not can_run(fresh(alice), other)


def test_granting_twice_then_revoking_once_removes_the_grant(carol, llm):
    grant_run(carol, llm)
    grant_run(carol, llm)
    revoke_run(carol, llm)
    assert not can_run(fresh(carol), llm)

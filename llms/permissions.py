"""The only answer to "may this user run this Llm?" and "which Llms may they run?".

Run comes from `llms.run_llm`, per object (guardian, user or group) or model-level (every Llm).
`change_llm` and the other model permissions never imply it; superusers pass; inactive users never do.
"""

from __future__ import annotations

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user
from rest_framework.permissions import BasePermission

from llms.models import RUN_PERM, Llm, LlmGroupObjectPermission, LlmUserObjectPermission


def may_run_every(user) -> bool:
    """True when the user may run every Llm (superuser, or model-level run of the user or a group)."""
    return bool(user.is_active and (user.is_superuser or user.has_perm(RUN_PERM)))


def can_run(user, llm: Llm) -> bool:
    """May this user run this Llm? Agrees with runnable_llms (model-level grants count)."""
    if not user.is_active or not user.is_authenticated:
        return False
    if may_run_every(user):
        return True
    codename = RUN_PERM.split(".", 1)[1]
    return (
        LlmUserObjectPermission.objects.filter(
            user=user, content_object=llm, permission__codename=codename
        ).exists()
        or LlmGroupObjectPermission.objects.filter(
            group__user=user, content_object=llm, permission__codename=codename
        ).exists()
    )


def runnable_llms(user) -> QuerySet[Llm]:
    """The Llms this user may run (enabled or not: callers filter as they need)."""
    if not user.is_active or not user.is_authenticated:
        return Llm.objects.none()
    if may_run_every(user):
        return Llm.objects.all()
    return get_objects_for_user(user, RUN_PERM, klass=Llm, accept_global_perms=False)


def visible_llms(user) -> QuerySet[Llm]:
    """The catalogue entries this user may see: those they may run or view."""
    if not user.is_active or not user.is_authenticated:
        return Llm.objects.none()
    if user.is_superuser or user.has_perm("llms.view_llm") or may_run_every(user):
        return Llm.objects.all()
    return get_objects_for_user(
        user, [RUN_PERM, "llms.view_llm"], klass=Llm, any_perm=True, accept_global_perms=False
    )


class CanRunLlm(BasePermission):
    """DRF object permission: the caller may run the Llm."""

    def has_object_permission(self, request, view, obj: Llm) -> bool:
        return can_run(request.user, obj)


def _run_permission():
    from django.contrib.auth.models import Permission

    return Permission.objects.get(content_type__app_label="llms", codename="run_llm")


def grant_run(holder, llm: Llm | None) -> None:
    """Grant run on one Llm, or on every Llm (llm=None: the model-level permission) to a user or group."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    if llm is not None:
        assign_perm("run_llm", holder, llm)
    elif isinstance(holder, Group):
        holder.permissions.add(_run_permission())
    else:
        holder.user_permissions.add(_run_permission())


def revoke_run(holder, llm: Llm | None) -> None:
    """Withdraw what grant_run gave (a per-object grant, or the model-level one)."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import remove_perm

    if llm is not None:
        remove_perm("run_llm", holder, llm)
    elif isinstance(holder, Group):
        holder.permissions.remove(_run_permission())
    else:
        holder.user_permissions.remove(_run_permission())


def llm_to_run(user, name: str) -> Llm:
    """The enabled Llm `name` if the user may run it. The contract's answers otherwise: 403 for a caller
    without run (whether or not the name exists), 404 only for one who may run every Llm (or that Llm)."""
    from mcpd.errors import NotFound, PermissionDenied

    llm = Llm.objects.select_related("api_key_secret").filter(name=name).first()
    if llm is not None and can_run(user, llm):
        if llm.enabled:
            return llm
        raise NotFound(f"The Llm '{name}' is disabled.")
    if may_run_every(user):
        raise NotFound(f"There is no Llm named '{name}'.")
    raise PermissionDenied(f"You may not run '{name}'.")

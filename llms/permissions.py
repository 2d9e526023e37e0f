"""The only answer to "may this user run this Llm?" and "which Llms may they run?".

Run comes from `llms.run_llm`, per object (guardian, user or group) or model-level (every Llm).
`change_llm` and the other model permissions never imply it; superusers pass; inactive users never do.
"""

from __future__ import annotations

import re
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm

from llms.models import RUN_PERM, Deployment, Fallback, Llm, LlmGroupObjectPermission, LlmUserObjectPermission
from mcpd.errors import NotFound, PermissionDenied
from mcpd.memo import TtlMemo

LLM_NAME = re.compile(r"[-a-zA-Z0-9_]{1,100}")  # what the name field (a SlugField) can hold


def may_run_every(user) -> bool:
    """True when the user may run every Llm (superuser, or model-level run of the user or a group)."""
    return bool(user.is_active and (user.is_superuser or user.has_perm(RUN_PERM)))


@cache
def _run_granted_sql(llm_id: str) -> tuple[str, int]:
    """SQL true when the user (every %s) holds run on the Llm with id `llm_id` by any grant but
    superuser: per object (user or group) or model-level (user or group).

    One hand-written query because it is paid on every inference call: ModelBackend.has_perm and
    guardian's checks take four queries (and ~1 ms of ORM) for the same answer. It reads the same
    tables, so it agrees with runnable_llms; the permission-matrix tests hold both to that.
    """
    q = connection.ops.quote_name
    user_model = get_user_model()
    user_object = q(LlmUserObjectPermission._meta.db_table)
    group_object = q(LlmGroupObjectPermission._meta.db_table)
    user_groups = q(user_model.groups.through._meta.db_table)
    user_perms = q(user_model.user_permissions.through._meta.db_table)
    group_perms = q(Group.permissions.through._meta.db_table)
    app_label, codename = RUN_PERM.split(".", 1)
    perm = (f"(SELECT p.id FROM {q(Permission._meta.db_table)} p JOIN {q(ContentType._meta.db_table)} ct "
            f"ON ct.id = p.content_type_id WHERE ct.app_label = '{app_label}' AND p.codename = '{codename}')")
    sql = f"""(
        EXISTS (SELECT 1 FROM {user_object} o WHERE o.user_id = %s AND o.content_object_id = {llm_id}
                AND o.permission_id = {perm})
        OR EXISTS (SELECT 1 FROM {group_object} o JOIN {user_groups} ug ON ug.group_id = o.group_id
                   WHERE ug.user_id = %s AND o.content_object_id = {llm_id} AND o.permission_id = {perm})
        OR EXISTS (SELECT 1 FROM {user_perms} up WHERE up.user_id = %s AND up.permission_id = {perm})
        OR EXISTS (SELECT 1 FROM {group_perms} gp JOIN {user_groups} ug ON ug.group_id = gp.group_id
                   WHERE ug.user_id = %s AND gp.permission_id = {perm})
    )"""
    return sql, 4


def _annotate_may_run(queryset: QuerySet[Llm], user) -> QuerySet[Llm]:
    """The Llms with `may_run` (by grant) worked out for the user in the same query."""
    q = connection.ops.quote_name
    sql, users = _run_granted_sql(f"{q(Llm._meta.db_table)}.{q('id')}")
    return queryset.annotate(may_run=RawSQL(sql, [user.pk] * users, output_field=BooleanField()))


def can_run(user, llm: Llm) -> bool:
    """May this user run this Llm? Agrees with runnable_llms (model-level grants count)."""
    if not user.is_active or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return _annotate_may_run(Llm.objects.filter(pk=llm.pk), user).values_list("may_run", flat=True).get()


def runnable_llms(user) -> QuerySet[Llm]:
    """The Llms this user may run (enabled or not: callers filter as they need). The same predicate as
    can_run and llm_to_run: one SQL expression of every kind of grant."""
    if not user.is_active or not user.is_authenticated:
        return Llm.objects.none()
    if user.is_superuser:
        return Llm.objects.all()
    return _annotate_may_run(Llm.objects.all(), user).filter(may_run=True)


def visible_llms(user) -> QuerySet[Llm]:
    """The catalogue entries this user may see: those they may run or view."""
    if not user.is_active or not user.is_authenticated:
        return Llm.objects.none()
    if user.is_superuser or user.has_perm("llms.view_llm"):
        return Llm.objects.all()
    viewable = get_objects_for_user(user, "llms.view_llm", klass=Llm, accept_global_perms=False).values("pk")
    return _annotate_may_run(Llm.objects.all(), user).filter(Q(may_run=True) | Q(pk__in=viewable))


def is_in_use(llm: Llm) -> bool:
    """Do a key or callers already depend on where this Llm routes? True when it has a key, or anyone
    holds run on it: per object (user or group), or on every Llm (model-level, user or group). Then
    moving it (name, provider, base URL, secret) or deleting it is for superusers: an editor could
    otherwise give its name to an Llm of theirs and receive its callers' prompts, or its key.

    Inactive holders count (reactivating them must not find the name moved); superusers do not.
    One query, for the admin.
    """
    if llm.has_api_key:
        return True
    user_perms = get_user_model().user_permissions.through.objects
    return Permission.objects.filter(content_type__app_label="llms", codename="run_llm").filter(
        Exists(LlmUserObjectPermission.objects.filter(permission=OuterRef("pk"), content_object_id=llm.pk))
        | Exists(LlmGroupObjectPermission.objects.filter(permission=OuterRef("pk"), content_object_id=llm.pk))
        | Exists(user_perms.filter(permission=OuterRef("pk")))
        | Exists(Group.permissions.through.objects.filter(permission=OuterRef("pk")))
    ).exists()


def _run_permission() -> Permission:
    return Permission.objects.get(content_type__app_label="llms", codename="run_llm")


def grant_run(holder, llm: Llm | None) -> None:
    """Grant run on one Llm, or on every Llm (llm=None: the model-level permission) to a user or group."""

    if llm is not None:
        assign_perm("run_llm", holder, llm)
    elif isinstance(holder, Group):
        holder.permissions.add(_run_permission())
    else:
        holder.user_permissions.add(_run_permission())


def revoke_run(holder, llm: Llm | None) -> None:
    """Withdraw what grant_run gave (a per-object grant, or the model-level one)."""

    if llm is not None:
        remove_perm("run_llm", holder, llm)
    elif isinstance(holder, Group):
        holder.permissions.remove(_run_permission())
    else:
        holder.user_permissions.remove(_run_permission())


_runnable = TtlMemo(remember=(NotFound, PermissionDenied))


def llm_to_run(user, name: str) -> Llm:
    """The enabled Llm `name` if the user may run it. The contract's answers otherwise: 403 for a caller
    without run (whether or not the name exists), 404 only for one who may run every Llm (or that Llm).

    Remembered for MCPD_AUTH_CACHE_SECONDS (mcpd/memo.py), answers and refusals alike; a lookup is one
    query: the Llm, its secret and the caller's grant together.
    """
    return _runnable.get((user.pk, user.is_active, user.is_superuser, name), lambda: _look_up(user, name))


def _look_up(user, name: str) -> Llm:
    allowed_user = user.is_active and user.is_authenticated
    # Whether it has further deployments or fallbacks, and whether any limit exists, in the same query: a
    # call that needs none of them asks nothing more (llms/routing.py, llms/proxy.py, limits/admission.py).
    from limits.models import Limit

    queryset = Llm.objects.select_related("api_key_secret").annotate(
        has_deployments=Exists(Deployment.objects.filter(llm=OuterRef("pk"), enabled=True)),
        has_fallbacks=Exists(Fallback.objects.filter(llm=OuterRef("pk"))),
        any_limit=Exists(Limit.objects.all()))
    if allowed_user and not user.is_superuser:
        queryset = _annotate_may_run(queryset, user)
    try:
        # A name that no Llm can have (names are slugs) is not looked up: a NUL byte in it would
        # make PostgreSQL refuse the query.
        llm = queryset.get(name=name) if LLM_NAME.fullmatch(name) else None
    except Llm.DoesNotExist:
        llm = None
    if llm is not None and allowed_user and (user.is_superuser or llm.may_run):
        if llm.enabled:
            return llm
        raise NotFound(f"The Llm '{name}' is disabled.")
    if may_run_every(user):
        raise NotFound(f"There is no Llm named '{name}'.")
    raise PermissionDenied(f"You may not run '{name}'.")

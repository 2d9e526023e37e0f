"""Change audit: saves and deletes of Llms, Secrets, tokens and run grants become AuditEvent rows.

Signals catch changes made through the admin, the API, commands and the shell alike.
"""

from __future__ import annotations

from contextlib import suppress

from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from audit.recorder import record_change
from limits.models import Limit
from llms.models import (
    Deployment,
    Fallback,
    Llm,
    LlmGroupObjectPermission,
    LlmUserObjectPermission,
    redact_userinfo,
)
from mcpd.models import ApiToken
from secrets_app.models import Secret

AUDITED_PERMISSIONS = {"run_llm", "grant_run_llm"}


@receiver(post_save, sender=Llm)
def _llm_saved(sender, instance: Llm, created: bool, **kwargs) -> None:
    record_change("llm.created" if created else "llm.updated", instance, {
        "provider": instance.provider, "model": instance.model, "base_url": redact_userinfo(instance.base_url),
        "secret": instance.api_key_secret.name if instance.api_key_secret_id else None,
        "enabled": instance.enabled,
    })


@receiver(post_delete, sender=Llm)
def _llm_deleted(sender, instance: Llm, **kwargs) -> None:
    record_change("llm.deleted", instance)


@receiver(post_save, sender=Deployment)
def _deployment_saved(sender, instance: Deployment, created: bool, **kwargs) -> None:
    record_change("llm.deployed" if created else "llm.deployment_updated", instance, {
        "llm": instance.llm.name, "deployment": instance.pk, "model": instance.model,
        "base_url": redact_userinfo(instance.base_url),
        "secret": instance.api_key_secret.name if instance.api_key_secret_id else None,
        "weight": instance.weight, "enabled": instance.enabled,
    })


@receiver(post_delete, sender=Deployment)
def _deployment_deleted(sender, instance: Deployment, **kwargs) -> None:
    record_change("llm.undeployed", instance, {"deployment": instance.pk})


@receiver(post_save, sender=Fallback)
def _fallback_saved(sender, instance: Fallback, **kwargs) -> None:
    record_change("llm.fallback_set", instance, {"llm": instance.llm.name, "to": instance.to.name,
                                                 "position": instance.position})


@receiver(post_delete, sender=Fallback)
def _fallback_deleted(sender, instance: Fallback, **kwargs) -> None:
    record_change("llm.fallback_removed", instance)


@receiver(post_save, sender=Secret)
def _secret_saved(sender, instance: Secret, created: bool, **kwargs) -> None:
    # The value never appears here: only that the secret changed and where it points.
    record_change("secret.created" if created else "secret.updated", instance, {
        "backend": instance.backend, "ref": instance.ref,
    })


@receiver(post_delete, sender=Secret)
def _secret_deleted(sender, instance: Secret, **kwargs) -> None:
    record_change("secret.deleted", instance)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


@receiver(post_save, sender=ApiToken)
def _token_saved(sender, instance: ApiToken, created: bool, **kwargs) -> None:
    """token.issued, token.revoked (False -> True only), token.expiry_changed, else token.updated:
    what changed is known from the values the instance was loaded with, not from another query."""
    detail = {"user": instance.user.username, "prefix": instance.prefix}
    changes = {} if created else instance.changes()
    if "expires_at" in changes:
        old, new = changes["expires_at"]
        detail.update(old_expires_at=_iso(old), new_expires_at=_iso(new))
    if changes:
        detail["changed"] = sorted(changes)
    if created:
        kind = "token.issued"
    elif "revoked" in changes or (instance.revoked and instance.loaded("revoked") is None):
        kind = "token.revoked"  # one-way, so a change is a revocation; unknown before: say so
    elif "expires_at" in changes:
        kind = "token.expiry_changed"
    else:
        kind = "token.updated"
    record_change(kind, instance, detail)


@receiver(post_delete, sender=ApiToken)
def _token_deleted(sender, instance: ApiToken, **kwargs) -> None:
    record_change("token.deleted", instance, {"prefix": instance.prefix})


def _grant_detail(row) -> dict:
    holder = getattr(row, "user", None) or getattr(row, "group", None)
    return {"permission": row.permission.codename, "llm": row.content_object.name,
            "holder": f"{'user' if hasattr(row, 'user_id') else 'group'}:{holder}"}


@receiver(post_save, sender=LlmUserObjectPermission)
@receiver(post_save, sender=LlmGroupObjectPermission)
def _object_grant_saved(sender, instance, created: bool, **kwargs) -> None:
    if created:
        record_change("permission.granted", instance.content_object, _grant_detail(instance))


@receiver(post_delete, sender=LlmUserObjectPermission)
@receiver(post_delete, sender=LlmGroupObjectPermission)
def _object_grant_deleted(sender, instance, **kwargs) -> None:
    with suppress(Llm.DoesNotExist):  # the Llm itself is being deleted: its own row says so
        record_change("permission.revoked", instance.content_object, _grant_detail(instance))


def _model_grant_changed(holder, action: str, pk_set, **kwargs) -> None:
    if action not in {"post_add", "post_remove"} or not pk_set:
        return
    codenames = set(
        Permission.objects.filter(pk__in=pk_set, content_type__app_label="llms").values_list("codename", flat=True)
    )
    kind = "permission.granted" if action == "post_add" else "permission.revoked"
    for codename in sorted(codenames & AUDITED_PERMISSIONS):
        who = f"{'group' if isinstance(holder, Group) else 'user'}:{holder}"
        record_change(kind, holder, {"permission": codename, "llm": "*", "holder": who})


@receiver(m2m_changed, sender=Group.permissions.through)
def _group_perms_changed(sender, instance, action, pk_set, reverse, **kwargs) -> None:
    if not reverse:
        _model_grant_changed(instance, action, pk_set)


def _connect_user_permissions() -> None:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()

    @receiver(m2m_changed, sender=user_model.user_permissions.through, weak=False)
    def _user_perms_changed(sender, instance, action, pk_set, reverse, **kwargs) -> None:
        if not reverse:
            _model_grant_changed(instance, action, pk_set)


_connect_user_permissions()


@receiver(post_save, sender=Limit)
def _limit_saved(sender, instance: Limit, created: bool, **kwargs) -> None:
    record_change("limit.set" if created else "limit.updated", instance, {"caps": instance.caps})


@receiver(post_delete, sender=Limit)
def _limit_deleted(sender, instance: Limit, **kwargs) -> None:
    record_change("limit.cleared", instance, {"caps": instance.caps})

"""manage.py llm add|list|deploy|undeploy|fallback|grant|revoke|test — the catalogue from the command line."""

from __future__ import annotations

import json
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from audit.recorder import Caller
from llms import proxy
from llms.inbound.chat import DONE
from llms.models import Deployment, Fallback, Llm, Provider
from llms.permissions import grant_run, revoke_run
from llms.streaming import ProxyStream
from mcpd.commands import SubcommandCommand, non_negative_decimal
from mcpd.errors import ApiError
from secrets_app.models import Secret

PRICES = ("input", "output", "cache_read", "cache_write")


price = non_negative_decimal("a price")  # per million tokens


class Command(SubcommandCommand):
    help = "Manage the LLM catalogue and who may run each entry."
    subcommands = {
        "add": "Add an Llm, or update it when the name exists.",
        "list": "List the catalogue.",
        "deploy": "Add a deployment to an Llm (another base URL, secret or model that serves it).",
        "undeploy": "Remove a deployment from an Llm (by the ID that deploy printed).",
        "fallback": "Set the Llms tried, in order, when every deployment of an Llm fails a call.",
        "grant": "Grant run on an Llm (NAME '*' = every Llm) to a user or a group.",
        "revoke": "Revoke run on an Llm (NAME '*' = the every-Llm grant) from a user or a group.",
        "test": "Send one prompt to an Llm through mcpd and print the reply.",
    }

    def add_add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--provider", required=True, choices=[p.value for p in Provider])
        parser.add_argument("--model", required=True, help="the model name sent upstream")
        parser.add_argument("--base-url", default=None, help="including the version path; default: the provider's")
        parser.add_argument("--secret", default=None, help="the Secret holding the API key ('' for none)")
        parser.add_argument("--description", default=None)
        parser.add_argument("--default-max-tokens", type=int, default=None)
        parser.add_argument("--context-window", type=int, default=None, help="the model's context window in tokens")
        for what in PRICES:
            parser.add_argument(f"--price-{what.replace('_', '-')}", type=price, default=None, metavar="PRICE",
                                dest=f"price_{what}", help=f"price of a million {what.replace('_', ' ')} tokens")
        parser.add_argument("--disable", action="store_true", help="add or keep it disabled")

    def handle_add(self, *, name, provider, model, base_url, secret, description, default_max_tokens,
                   context_window, disable, **prices) -> None:
        llm = Llm.objects.filter(name=name).first() or Llm(name=name)
        created = llm.pk is None
        llm.provider, llm.model = provider, model
        if base_url is not None:
            llm.base_url = base_url
        if secret is not None:
            llm.api_key_secret = self._secret(secret) if secret else None
        if description is not None:
            llm.description = description
        if default_max_tokens is not None:
            llm.default_max_tokens = default_max_tokens
        if context_window is not None:
            llm.context_window = context_window
        for what in PRICES:
            if prices.get(f"price_{what}") is not None:
                setattr(llm, f"price_{what}", prices[f"price_{what}"])
        llm.enabled = not disable
        try:
            llm.full_clean()
        except ValidationError as exc:
            self.fail("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        llm.save()
        self.stdout.write(f"{'Added' if created else 'Updated'} Llm '{name}' ({provider} {model}).")

    def _secret(self, name: str) -> Secret:
        secret = Secret.objects.filter(name=name).first()
        if secret is None:
            self.fail(f"No secret named '{name}'. Create it with: manage.py secret set {name} …")
        return secret

    def handle_list(self, **_) -> None:
        llms = list(Llm.objects.select_related("api_key_secret"))
        for llm in llms:
            key = llm.api_key_secret.name if llm.api_key_secret else "-"
            state = "enabled" if llm.enabled else "disabled"
            self.stdout.write(f"{llm.name}\t{llm.provider}\t{llm.model}\t{llm.shown_base_url or '-'}\t{key}\t{state}")
        self.stdout.write(f"{len(llms)} Llm(s).")

    def add_deploy_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--base-url", required=True, help="including the version path")
        parser.add_argument("--secret", default=None, help="the Secret holding its API key (default: none)")
        parser.add_argument("--model", default="", help="the model name sent upstream (default: the Llm's)")
        parser.add_argument("--weight", type=int, default=1, help="its share of calls (0: a standby)")

    def handle_deploy(self, *, name, base_url, secret, model, weight, **_) -> None:
        llm = self._llm(name)
        if weight < 0:
            self.fail("--weight: 0 or more")
        deployment = Deployment(llm=llm, base_url=base_url, model=model, weight=weight,
                                api_key_secret=self._secret(secret) if secret else None)
        try:
            deployment.full_clean()
        except ValidationError as exc:
            self.fail("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        deployment.save()
        self.stdout.write(f"Deployed Llm '{name}' to {deployment.effective_base_url} "
                          f"({deployment.model or llm.model}, weight {weight}) as deployment {deployment.pk}.")

    def add_undeploy_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("id", type=int, help="the deployment's ID")

    def handle_undeploy(self, *, name, id, **_) -> None:
        deleted, _ = Deployment.objects.filter(llm=self._llm(name), pk=id).delete()
        if not deleted:
            self.fail(f"Llm '{name}' has no deployment {id} (its own base URL is changed with llm add).")
        self.stdout.write(f"Removed deployment {id} of Llm '{name}'.")

    def add_fallback_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--to", required=True, metavar="OTHER[,OTHER…]",
                            help="the fallback Llms in order; '' for none")

    def handle_fallback(self, *, name, to, **_) -> None:
        llm = self._llm(name)
        names = [other.strip() for other in to.split(",") if other.strip()]
        if name in names:
            self.fail("An Llm cannot fall back to itself.")
        if len(set(names)) != len(names):
            self.fail("Name each fallback once.")
        others = [self._llm(other) for other in names]
        with transaction.atomic():
            llm.fallbacks.all().delete()
            for position, other in enumerate(others):
                Fallback.objects.create(llm=llm, to=other, position=position)
        self.stdout.write(f"Llm '{name}' falls back to {', '.join(names)}." if names
                          else f"Llm '{name}' has no fallback.")

    def _llm(self, name: str) -> Llm:
        llm = Llm.objects.filter(name=name).first()
        if llm is None:
            self.fail(f"No Llm named '{name}'.")
        return llm

    def _add_grant_arguments(self, parser) -> None:
        parser.add_argument("name", help="the Llm's name, or '*' for every Llm")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user")
        who.add_argument("--group")

    add_grant_arguments = add_revoke_arguments = _add_grant_arguments

    def _target(self, name: str, user: str | None, group: str | None):
        if user:
            holder = get_user_model().objects.filter(username=user).first()
            if holder is None:
                self.fail(f"No user named '{user}'.")
        else:
            holder = Group.objects.filter(name=group).first()
            if holder is None:
                self.fail(f"No group named '{group}'.")
        if name == "*":
            return holder, None
        llm = Llm.objects.filter(name=name).first()
        if llm is None:
            self.fail(f"No Llm named '{name}'.")
        return holder, llm

    def handle_grant(self, *, name, user, group, **_) -> None:
        holder, llm = self._target(name, user, group)
        grant_run(holder, llm)
        self.stdout.write(f"Granted run on {'every Llm' if llm is None else repr(llm.name)} to {user or 'group ' + group}.")

    def handle_revoke(self, *, name, user, group, **_) -> None:
        holder, llm = self._target(name, user, group)
        revoke_run(holder, llm)
        self.stdout.write(f"Revoked run on {'every Llm' if llm is None else repr(llm.name)} from {user or 'group ' + group}.")

    def add_test_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("prompt")
        parser.add_argument("--stream", action="store_true", help="print the reply as it arrives")

    def handle_test(self, *, name: str, prompt: str, stream: bool, **_) -> None:
        llm = Llm.objects.select_related("api_key_secret").filter(name=name).first()
        if llm is None:
            self.fail(f"No Llm named '{name}'.")
        body = {"messages": [{"role": "user", "content": prompt}], "stream": stream}
        caller = Caller(request_id=f"cli-{uuid.uuid4().hex}", actor="manage.py llm test")
        try:
            result = proxy.chat_completion(caller, llm, body)
        except ApiError as exc:
            self.fail(f"{exc.status} {exc.type}: {exc.message}")
        if isinstance(result, ProxyStream):
            self._print_stream(result)
            return
        try:
            message = result.json()["choices"][0]["message"]
        finally:
            result.close()
        self.stdout.write(message.get("content") or json.dumps(message.get("tool_calls")))

    def _print_stream(self, stream: ProxyStream) -> None:
        error = None
        try:
            for event in stream:  # chat.completion.chunk events, then [DONE]
                if event.kind != "event" or event.data == DONE.data:
                    continue
                chunk = json.loads(event.data)
                if "error" in chunk:
                    error = chunk["error"]
                    break
                for choice in chunk.get("choices", []):
                    self.stdout.write(choice.get("delta", {}).get("content") or "", ending="")
                    self.stdout.flush()
        finally:
            stream.close()
        self.stdout.write("")
        if error:
            self.fail(f"{error['type']}: {error['message']}")

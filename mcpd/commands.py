"""A base for operator commands with subcommands (`manage.py llm add …`): help, dispatch, audit actor."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import acting_as, command_actor


class SubcommandCommand(BaseCommand):
    """Subclasses define `subcommands = {name: help}`, `add_<name>_arguments(parser)` and `handle_<name>(**opts)`."""

    subcommands: dict[str, str] = {}

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        for name, help_text in self.subcommands.items():
            child = sub.add_parser(name, help=help_text, description=help_text)
            getattr(self, f"add_{name}_arguments", lambda p: None)(child)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"]
        label = f"manage.py {self._command_name()} {name}"
        with acting_as(command_actor(label)):
            getattr(self, f"handle_{name}")(**options)

    def _command_name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]

    def fail(self, message: str) -> None:
        """Stop with a clear message and a non-zero exit code."""
        raise CommandError(message)


def non_negative_decimal(what: str) -> Callable[[str], Decimal]:
    """An argparse type: a finite decimal number of 0 or more (a price, a budget), `what` naming it."""

    def parse(text: str) -> Decimal:
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
        if not value.is_finite() or value < 0:
            raise argparse.ArgumentTypeError(f"{what} is a number of 0 or more, not {text!r}")
        return value

    return parse

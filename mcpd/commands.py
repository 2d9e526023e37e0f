"""A base for operator commands with subcommands (`manage.py llm add …`): help, dispatch, audit actor."""

from __future__ import annotations

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

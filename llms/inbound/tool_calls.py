"""What the translations of a chat stream (to Messages, to Responses) share about a streamed tool call."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcpd import wirejson


@dataclass(eq=False)
class StreamedCall:
    """A tool call's arguments as chat chunks bring them, fragment by fragment."""

    arguments: list[str] = field(default_factory=list)  # every fragment so far
    _checked: int = -1  # how many fragments complete() last looked at
    _complete: bool = False

    def complete(self) -> bool:
        """The arguments so far are a whole JSON object: nothing more can come for this call. Parsed again
        only when a fragment has come since."""
        if self._checked != len(self.arguments):
            self._checked = len(self.arguments)
            try:
                self._complete = isinstance(wirejson.loads("".join(self.arguments)), dict)
            except ValueError:
                self._complete = False
        return self._complete

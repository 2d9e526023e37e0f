"""Memory and CPU of a server's whole process tree (e.g. gunicorn's arbiter and workers), from /proc."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): [state, ppid, …]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def descendants(root: int) -> list[int]:
    """root and every process below it, now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


class Tree:
    """A process tree, found once (a server's workers do not change during a phase); peak RSS tracked."""

    def __init__(self, root: int):
        self.root = root
        self.pids = descendants(root)
        self.peak = 0

    def refresh(self) -> Tree:
        self.pids = descendants(self.root)
        return self

    def rss(self) -> int:
        """Resident bytes, summed over the tree (pages shared by forked workers count once per process)."""
        total = 0
        for pid in self.pids:
            with contextlib.suppress(OSError, IndexError):  # a process that just ended
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        return total

    def sample(self) -> None:
        self.peak = max(self.peak, self.rss())

    def cpu(self) -> float:
        """User + system CPU seconds used so far by the tree's live processes."""
        total = 0
        for pid in self.pids:
            if fields := _stat(pid):
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return total / TICK

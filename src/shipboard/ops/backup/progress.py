"""Progress reporting for long backup steps: the CLI draws bars, the scheduler stays silent."""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None) -> Task: ...


class _SilentTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class SilentProgress:
    def task(self, description: str, total: float | None = None) -> Task:
        return _SilentTask()


SILENT = SilentProgress()

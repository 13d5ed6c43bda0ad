"""A progress reporter for tests that keeps what it is told."""

from __future__ import annotations

from taskgraph_images.progress import Reporter

__all__ = ["Told"]


class Told(Reporter):
    """Keeps every note and every piece of a program's output, in order."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.output_text: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def output(self, text: str) -> None:
        self.output_text.append(text)

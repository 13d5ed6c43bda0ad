"""Say in a few words why a network request failed.

``requests`` wraps the operating system's error in urllib3's, whose text
is a long repr (``HTTPConnectionPool(host=..., port=...): Max retries
exceeded with url: ... (Caused by NewConnectionError(...))``). A person
needs the cause at the bottom: ``connection refused``, ``name or service
not known``, ``timed out``.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["describe"]

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and everything it wraps, outermost first (each once)."""
    seen: list[BaseException] = []
    todo: list[Optional[BaseException]] = [error]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo.append(getattr(e, "reason", None) if isinstance(
            getattr(e, "reason", None), BaseException) else None)
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        todo.extend((e.__cause__, e.__context__))
    return seen


def describe(error: BaseException) -> str:
    """Return the innermost cause of a failed request, in lower case, in one line.

    >>> describe(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    >>> describe(TimeoutError("the read timed out"))
    'timed out'
    """
    causes = _causes(error)
    for e in reversed(causes):
        strerror = getattr(e, "strerror", None)
        if isinstance(e, OSError) and isinstance(strerror, str) and strerror:
            return strerror.lower()
    for e in causes:
        match = _ERRNO.search(str(e))
        if match:
            return match.group(1).strip().lower()
    if any(isinstance(e, TimeoutError) or "Timeout" in type(e).__name__ for e in causes):
        return "timed out"
    text = " ".join(str(causes[-1]).split()) or type(causes[-1]).__name__
    return text if len(text) <= 120 else text[:117] + "..."

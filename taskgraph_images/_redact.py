"""Make hostile text safe to print: escape it, bound it, and strip credentials.

Names and paths come from repositories and artifacts a lower level controls;
URLs come from the environment and may carry ``user:password@``. Every
message, explanation and output file goes through these functions (see
``docs/security.rst``):

* :func:`escape` makes control characters visible (``\\r``, ``\\x1b``, ...),
  so a name cannot rewrite a terminal line or forge a second one;
* :func:`quote_value` shows a bounded, escaped prefix of a value read from a
  file, never the whole of it;
* :func:`strip_userinfo` removes the ``user:password@`` of every URL in a text.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["QUOTE_LIMIT", "escape", "has_userinfo", "quote_value", "strip_userinfo"]

#: How many characters of a value :func:`quote_value` shows.
QUOTE_LIMIT = 40

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and
# bidirectional overrides that reorder or break what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# scheme://userinfo@ : the userinfo is everything up to the last '@' before
# the host (no '/', '?', '#', quote or white space in between). Matched from
# the "://" (a scheme character before it), so a scan is linear in the text:
# each match ends at the next '/' at the latest.
_USERINFO = re.compile(r"(?<=[A-Za-z0-9+.-])://[^/?#\s\"'<>]*@")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    r"""Return ``text`` with every control character written visibly.

    >>> escape("a\rb\x1b[2Jc")
    'a\\rb\\x1b[2Jc'
    """
    return _CONTROL.sub(_visible, text)


def quote_value(value: str, limit: int = QUOTE_LIMIT) -> str:
    """Return ``value`` quoted for a message: escaped, at most ``limit`` characters of it.

    >>> quote_value("1.0 beta")
    "'1.0 beta'"
    >>> quote_value("x" * 100, limit=4)
    "'xxxx'... (100 characters)"
    """
    # Credentials go first, from the whole value: a prefix could cut a URL
    # before its '@' and show part of a password.
    value = strip_userinfo(value)
    text = "'" + escape(value[:limit]).replace("'", "\\'") + "'"
    return f"{text}... ({len(value)} characters)" if len(value) > limit else text


def strip_userinfo(text: str) -> str:
    """Return ``text`` with the ``user:password@`` of every URL in it removed.

    >>> strip_userinfo("cannot reach https://me:s3cret@tc.example.com/api")
    'cannot reach https://tc.example.com/api'
    """
    return _USERINFO.sub("://", text) if "@" in text and "://" in text else text


def has_userinfo(url: str) -> bool:
    """True when the URL ``url`` carries a user name or password.

    >>> has_userinfo("https://x-access-token:T@github.com/o/r")
    True
    >>> has_userinfo("git@github.com:o/r")
    False
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return bool(parts.netloc) and "@" in parts.netloc

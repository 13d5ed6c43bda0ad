"""The one rule for output: names escaped, values quoted short, URLs without credentials."""

from __future__ import annotations

import doctest

import pytest

from taskgraph_images import _redact
from taskgraph_images._redact import escape, has_userinfo, quote_value, strip_userinfo
from taskgraph_images.errors import CatalogError


def test_the_module_doctest_holds() -> None:
    assert doctest.testmod(_redact).failed == 0


@pytest.mark.parametrize(("text", "shown"), [
    ("plain/path.txt", "plain/path.txt"),
    ("a\rb", "a\\rb"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("tab\there", "tab\\there"),
    ("del\x7f", "del\\x7f"),
    ("c1\x9b", "c1\\x9b"),
    ("rtl\u202eevil", "rtl\\u202eevil"),
    ("üñí", "üñí"),
])
def test_escape_shows_every_control_character(text: str, shown: str) -> None:
    assert escape(text) == shown


@pytest.mark.parametrize(("text", "stripped"), [
    ("https://u:p@host/x", "https://host/x"),
    ("see http://tok@127.0.0.1:1 and ftp://a:b@c", "see http://127.0.0.1:1 and ftp://c"),
    ("https://u:p@ss@host/x", "https://host/x"),
    ('{"u": "https://h", "owner": "me@example.com"}', '{"u": "https://h", "owner": "me@example.com"}'),
    ("git@github.com:o/r", "git@github.com:o/r"),
    ("https://host/path?q=a@b", "https://host/path?q=a@b"),
])
def test_strip_userinfo(text: str, stripped: str) -> None:
    assert strip_userinfo(text) == stripped


def test_a_quoted_value_never_shows_part_of_a_password() -> None:
    value = "https://user:" + "p" * 100 + "@host/x"
    assert quote_value(value) == "'https://host/x'"
    glued = quote_value("x" * 30 + value, limit=80)
    assert "user" not in glued and "ppppp" not in glued


def test_has_userinfo() -> None:
    assert has_userinfo("https://t@h/x") and has_userinfo("ssh://hg@h/x")
    assert not has_userinfo("https://h/x") and not has_userinfo("git@h:o/r")


def test_every_error_message_is_one_escaped_line_without_credentials() -> None:
    error = CatalogError("cannot reach http://a:b@h:1\nfile \x1b[2Jx")
    assert str(error) == "cannot reach http://h:1 file \\x1b[2Jx"

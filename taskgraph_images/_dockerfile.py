"""A small, pure parser for the parts of a Dockerfile this library needs.

Grammar understood (everything else is carried through untouched)::

    dockerfile  := line*
    line        := directive | instruction | comment | blank
    directive   := "# %include" SP path          ; repository file or folder
                 | "# %include-run-task"          ; taskgraph's run-task files
                 | "# %ARG" SP NAME               ; value from the kind config
    instruction := KEYWORD args ("\\" NEWLINE args)*   ; continuation lines join
    FROM        := "FROM" ("--platform=" X)? REF ("AS" STAGE)?
    ARG         := "ARG" NAME ("=" DEFAULT)?     ; before the first FROM: usable in FROM

Keywords are case-insensitive. ``# %ARG NAME`` makes ``$NAME`` and ``${NAME}``
in the lines below it stand for the configured value (the directive line
itself is dropped from the processed text). ``# %include-run-task`` is
followed in the processed text by :data:`RUN_TASK_SNIPPET`, and with a
``parent`` reference, ``$DOCKER_IMAGE_PARENT`` in ``FROM`` lines becomes that
reference. Any other line starting ``# %`` is an unknown directive, an error,
and so is a directive that does not start its line (taskgraph would take it
for a comment).
Parsing returns plain values and
raises :class:`~taskgraph_images.errors.DockerfileError` naming the file and
line; it never touches the file system.
"""

from __future__ import annotations

import re
from typing import Mapping, NamedTuple, Optional

from taskgraph_images.errors import DockerfileError

__all__ = [
    "PARENT_ARG",
    "RUN_TASK_FILES",
    "RUN_TASK_SNIPPET",
    "FromLine",
    "ParsedDockerfile",
    "parse",
    "split_reference",
    "substitute_args",
    "taskgraph_text",
]

#: The build arg that ``FROM $DOCKER_IMAGE_PARENT`` names: the kind config's parent.
PARENT_ARG = "DOCKER_IMAGE_PARENT"
#: The files ``# %include-run-task`` adds, as named in taskgraph's ``run-task`` folder;
#: each goes into the context as ``run-task/NAME``.
RUN_TASK_FILES = ("run-task", "fetch-content", "hgrc", "robustcheckout.py")
#: The lines ``# %include-run-task`` adds below itself, as taskgraph 24.x adds them.
RUN_TASK_SNIPPET = (
    "COPY run-task/run-task /usr/local/bin/run-task\n"
    "COPY run-task/fetch-content /usr/local/bin/fetch-content\n"
    "COPY run-task/robustcheckout.py /usr/local/mercurial/robustcheckout.py\n"
    "COPY run-task/hgrc /etc/mercurial/hgrc.d/mozilla.rc\n"
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_INCLUDE = "# %include"
_ARG_DIRECTIVE = "# %ARG"
_RUN_TASK = "# %include-run-task"
_DIRECTIVE = "# %"


class FromLine(NamedTuple):
    """One ``FROM`` instruction: its reference as written and as resolved."""

    lineno: int
    raw: str  # the reference as written, e.g. "$DOCKER_IMAGE_PARENT"
    ref: str  # after substituting ARGs declared before the first FROM
    stage: Optional[str]  # the "AS name", lower-cased, or None
    platform: Optional[str]


class ParsedDockerfile(NamedTuple):
    """What :func:`parse` found in one Dockerfile."""

    froms: tuple[FromLine, ...]
    includes: tuple[tuple[int, str], ...]  # (line number, path) of "# %include"
    arg_directives: tuple[tuple[int, str], ...]  # (line number, NAME) of "# %ARG"
    text: str  # the processed text: "# %ARG" lines dropped, $NAME substituted
    run_task: Optional[int] = None  # line number of "# %include-run-task"


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, m.group(0))

    return _VAR.sub(repl, text)


def substitute_args(text: str, values: Mapping[str, str]) -> str:
    """Replace ``$NAME`` and ``${NAME}`` for each NAME in ``values``; leave others."""
    return _substitute(text, values) if values else text


def parse(
    text: str,
    *,
    source: str = "Dockerfile",
    args: Optional[Mapping[str, str]] = None,
    image: Optional[str] = None,
    parent: Optional[str] = None,
) -> ParsedDockerfile:
    """Parse Dockerfile ``text``; ``source`` names it in error messages.

    ``args`` are the kind config's values for ``# %ARG`` directives. A
    directive whose value is missing raises :class:`DockerfileError` naming
    the arg and ``image`` (the image's name, which may differ from its folder's).
    ``parent`` is the reference ``$DOCKER_IMAGE_PARENT`` stands for in the
    processed text's ``FROM`` lines (left as written when ``None``).

    :raises DockerfileError: for a bad or unknown ``# %`` directive, a
        missing ``# %ARG`` value, a bad ``FROM``, or no ``FROM`` at all.
    """
    whose = f"image {image!r}" if image is not None else "this image"
    args = dict(args or {})
    active: dict[str, str] = {}  # "# %ARG" values in force from here on
    pre_from_args: dict[str, str] = {}
    froms: list[FromLine] = []
    includes: list[tuple[int, str]] = []
    directives: list[tuple[int, str]] = []
    run_task: Optional[int] = None
    out: list[str] = []
    from_values = {PARENT_ARG: parent} if parent is not None else {}

    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i]
        i += 1
        stripped = line.strip()
        if stripped.startswith(_DIRECTIVE) and not line.startswith(_DIRECTIVE):
            raise DockerfileError(
                f"{source}:{lineno}: a '# %' directive must start its line: an indented one "
                "is a comment to taskgraph, so the two tools would build different contexts"
            )
        if stripped.startswith(_ARG_DIRECTIVE) and (
            len(stripped) == len(_ARG_DIRECTIVE) or stripped[len(_ARG_DIRECTIVE)].isspace()
        ):
            name = stripped[len(_ARG_DIRECTIVE) :].strip()
            if not _NAME.match(name):
                raise DockerfileError(f"{source}:{lineno}: '# %ARG' needs one NAME, got {name!r}")
            if name not in args:
                raise DockerfileError(
                    f"{source}:{lineno}: no value for '# %ARG {name}': "
                    f"set args: {{{name}: ...}} for {whose} in the kind config"
                )
            directives.append((lineno, name))
            active[name] = args[name]
            continue
        line = substitute_args(line, active)
        stripped = line.strip()
        if stripped.startswith(_INCLUDE) and (
            len(stripped) == len(_INCLUDE) or stripped[len(_INCLUDE)].isspace()
        ):
            path = stripped[len(_INCLUDE) :].strip()
            if not path:
                raise DockerfileError(f"{source}:{lineno}: '# %include' needs a path")
            includes.append((lineno, path))
            out.append(line)
            continue
        if stripped == _RUN_TASK:
            if run_task is not None:
                raise DockerfileError(
                    f"{source}:{lineno}: a second '{_RUN_TASK}' (the first is on line {run_task})"
                )
            run_task = lineno
            out.append(line if line.endswith("\n") else line + "\n")
            out.append(RUN_TASK_SNIPPET)
            continue
        if stripped.startswith(_DIRECTIVE):
            word = stripped.split()[1] if len(stripped.split()) > 1 else stripped
            raise DockerfileError(
                f"{source}:{lineno}: unknown directive {word!r}: the directives are "
                f"'# %include PATH', '{_RUN_TASK}' and '# %ARG NAME'"
            )
        if not stripped or stripped.startswith("#"):
            out.append(line)
            continue
        # An instruction, possibly continued over several lines.
        logical = [line]
        while logical[-1].rstrip("\r\n").rstrip().endswith("\\") and i < len(lines):
            nxt = substitute_args(lines[i], active)
            i += 1
            logical.append(nxt)
        words = logical[0].split(None, 1)
        if from_values and words and words[0].upper() == "FROM":
            logical = [substitute_args(part, from_values) for part in logical]
        out.extend(logical)
        joined = " ".join(
            part.rstrip("\r\n").rstrip().removesuffix("\\").strip()
            for part in logical
            if not part.strip().startswith("#")
        )
        words = joined.split()
        if not words:
            continue
        keyword = words[0].upper()
        if keyword == "ARG" and not froms:
            for word in words[1:]:
                key, sep, default = word.partition("=")
                if _NAME.match(key):
                    if sep:
                        pre_from_args[key] = default.strip("\"'")
                    else:
                        pre_from_args.setdefault(key, "")
        elif keyword == "FROM":
            froms.append(_parse_from(words[1:], lineno, source, pre_from_args))

    if not froms:
        raise DockerfileError(f"{source}: no FROM instruction")
    return ParsedDockerfile(
        froms=tuple(froms),
        includes=tuple(includes),
        arg_directives=tuple(directives),
        text="".join(out),
        run_task=run_task,
    )


def _parse_from(
    words: list[str], lineno: int, source: str, pre_from_args: Mapping[str, str]
) -> FromLine:
    platform: Optional[str] = None
    rest = list(words)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if flag.startswith("--platform="):
            platform = flag.split("=", 1)[1]
        else:
            raise DockerfileError(f"{source}:{lineno}: FROM has an unknown flag {flag!r}")
    stage: Optional[str] = None
    if len(rest) == 3 and rest[1].upper() == "AS":
        stage = rest[2].lower()
        rest = rest[:1]
    if len(rest) != 1:
        raise DockerfileError(
            f"{source}:{lineno}: FROM takes one image reference "
            f"(optionally '--platform=P' and 'AS name'), got {' '.join(words)!r}"
        )
    raw = rest[0]
    known = {k: v for k, v in pre_from_args.items() if v}
    return FromLine(
        lineno=lineno,
        raw=raw,
        ref=substitute_args(raw, known),
        stage=stage,
        platform=platform,
    )


def split_reference(reference: str) -> tuple[str, str]:
    """Split ``repo[:tag]`` into repository and tag (default ``latest``).

    >>> split_reference("localhost:5000/a/b")
    ('localhost:5000/a/b', 'latest')
    >>> split_reference("a/b:1.0")
    ('a/b', '1.0')
    """
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def taskgraph_text(text: str, args: Mapping[str, str], *, source: str = "Dockerfile") -> str:
    """Return the Dockerfile taskgraph 24.x puts into its context tar for ``text``.

    Its rules, which differ from :func:`parse`'s in small ways: a line
    *starting* ``# %ARG NAME`` is dropped and makes ``$NAME`` (followed by a
    word boundary; not ``${NAME}``) stand for the value in the lines below,
    the value being a :func:`re.sub` template; a line that is exactly
    ``# %include-run-task`` once stripped is followed by
    :data:`RUN_TASK_SNIPPET`; ``FROM $DOCKER_IMAGE_PARENT`` stays as written.
    Lines end at ``\\n`` only. A missing value is a :class:`DockerfileError`.
    """
    replace: list[tuple[re.Pattern[str], str]] = []
    out: list[str] = []
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    for lineno, line in enumerate(lines, 1):
        if line.startswith(_ARG_DIRECTIVE):
            name = line[len(_ARG_DIRECTIVE) + 1 :].strip()
            if name not in args:
                raise DockerfileError(
                    f"{source}:{lineno}: no value for '# %ARG {name}' in the kind config"
                )
            replace.append((re.compile(rf"\${name}\b"), args[name]))
            continue
        for pattern, value in replace:
            line = pattern.sub(value, line)
        out.append(line)
        if line.startswith("# %include") and line.strip() == _RUN_TASK:
            out.append(RUN_TASK_SNIPPET)
    return "".join(out)

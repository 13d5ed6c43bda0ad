"""Talk to the Docker engine through its HTTP API (the Engine API).

Why the Engine API and not the ``docker`` CLI: the API streams both ways
(a build context or an image tarball goes up as a chunked request body, a
``docker save`` comes down as a response body) with nothing but the standard
library (:mod:`http.client` over the engine's unix socket), the answers are
structured JSON (build progress, errors, image ids) rather than text to
scrape, errors inside a streamed answer (a failing ``RUN``, a broken
``load``) are reported in-band and can be checked, and the only dependency is
a running engine, not a client binary of a matching version.

``DOCKER_HOST`` selects the engine as the CLI does: ``unix:///path/to.sock``
(the default is ``unix:///var/run/docker.sock``) or ``tcp://host:port``
(plain HTTP; TLS and ``ssh://`` are not supported).
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import os
import shutil
import socket
import urllib.parse
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import attrs

from taskgraph_images._dockerfile import split_reference
from taskgraph_images.errors import DockerError, DockerUnavailableError, ImageBuildError

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = [
    "DEFAULT_HOST",
    "Engine",
    "LoadUpload",
    "OutputCallback",
    "iter_messages",
    "parse_json_stream",
    "split_reference",
]

DEFAULT_HOST = "unix:///var/run/docker.sock"

#: Receives the engine's build output, a piece of text at a time.
OutputCallback = Callable[[str], None]

_CHUNK = 1 << 20
_START_HINT = (
    "start it (for example `sudo systemctl start docker`, or `dockerd` as root) "
    "or point DOCKER_HOST at a running engine"
)


class _UnixConnection(http.client.HTTPConnection):
    """An HTTP connection over a unix socket."""

    def __init__(self, path: str, timeout: Optional[float] = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def parse_json_stream(buffer: str) -> tuple[list[dict[str, Any]], str]:
    """Split the engine's concatenated JSON messages; return them and the incomplete rest.

    >>> parse_json_stream('{"stream": "a"}\\r\\n{"stream": "b"}\\n{"str')
    ([{'stream': 'a'}, {'stream': 'b'}], '{"str')
    """
    decoder = json.JSONDecoder()
    messages: list[dict[str, Any]] = []
    pos = 0
    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buffer):
            return messages, ""
        try:
            value, end = decoder.raw_decode(buffer, pos)
        except json.JSONDecodeError:
            return messages, buffer[pos:]
        if isinstance(value, dict):
            messages.append(value)
        pos = end


def iter_messages(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """Yield the engine's JSON progress messages as they arrive on ``response``.

    Bytes are decoded incrementally, so a character split between two reads
    arrives whole.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    rest = ""
    while True:
        chunk = response.read1(65536)
        messages, rest = parse_json_stream(rest + decoder.decode(chunk, final=not chunk))
        yield from messages
        if not chunk:
            return


def _message_error(message: Mapping[str, Any]) -> Optional[str]:
    error = message.get("error")
    if error:
        return str(error).strip()
    detail = message.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"]).strip()
    return None


@attrs.frozen
class _Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def message(self) -> str:
        try:
            value = self.json()
        except ValueError:
            value = None
        if isinstance(value, dict) and value.get("message"):
            return str(value["message"]).strip()
        return self.body.decode("utf-8", "replace").strip() or f"HTTP {self.status}"


class LoadUpload:
    """An image tarball being sent to ``POST /images/load``, a piece at a time.

    Call :meth:`write` for each piece, then :meth:`finish` (which checks the
    engine's answer), or :meth:`abort` to drop the connection before the end
    of the body so that the engine discards what it received.
    """

    #: What :meth:`finish` waits for, and the call, in progress messages.
    finish_waits_for = ("the Docker engine", "load")

    def __init__(self, engine: Engine, conn: http.client.HTTPConnection) -> None:
        self._engine = engine
        self._conn = conn
        self._done = False
        self._broken: Optional[OSError] = None

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Send ``data`` as one chunk of the request body."""
        if not data or self._broken is not None:
            return
        try:
            self._conn.send(b"%x\r\n" % len(data))
            self._conn.send(data)
            self._conn.send(b"\r\n")
        except OSError as e:
            # The engine stopped reading (usually: it found an error). Its
            # answer, read in finish(), says why.
            self._broken = e

    def finish(self) -> list[str]:
        """End the body and return the engine's messages; raise :class:`DockerError` on error."""
        try:
            if self._broken is None:
                try:
                    self._conn.send(b"0\r\n\r\n")
                except OSError as e:
                    self._broken = e
            try:
                response = self._conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                why = self._broken or e
                raise DockerError(
                    f"docker load failed: the engine closed the connection ({why})"
                ) from e
            lines: list[str] = []
            with response:
                if response.status >= 400:
                    body = _Response(response.status, response.read())
                    raise DockerError(f"docker load failed: {body.message()}")
                for message in iter_messages(response):
                    error = _message_error(message)
                    if error:
                        raise DockerError(f"docker load failed: {error}")
                    if message.get("stream"):
                        lines.append(str(message["stream"]).strip())
            return lines
        finally:
            self._done = True
            self._conn.close()

    def abort(self) -> None:
        """Drop the connection without ending the body: the engine loads nothing."""
        if self._done:
            return
        self._done = True
        sock = self._conn.sock
        if sock is not None:
            # RST rather than FIN, so the engine sees a broken body at once.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        self._conn.close()


class Engine:
    """A Docker engine reached over ``DOCKER_HOST`` (see the module docstring)."""

    def __init__(self, host: Optional[str] = None, *, timeout: Optional[float] = None) -> None:
        self.host = host or DEFAULT_HOST
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(self.host)
        if parsed.scheme == "unix":
            self._unix: Optional[str] = parsed.path or "/var/run/docker.sock"
            self._tcp: Optional[tuple[str, int]] = None
        elif parsed.scheme in ("tcp", "http") and parsed.hostname:
            self._unix = None
            self._tcp = (parsed.hostname, parsed.port or 2375)
        else:
            raise DockerUnavailableError(
                f"DOCKER_HOST={self.host!r} is not supported: use unix:///path/to/docker.sock "
                "or tcp://host:port"
            )

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Engine:
        """Return the engine ``DOCKER_HOST`` in ``env`` (default: ``os.environ``) names."""
        env = os.environ if env is None else env
        return cls(env.get("DOCKER_HOST") or None)

    def __repr__(self) -> str:
        return f"<Engine {self.host}>"

    # -- plumbing ---------------------------------------------------------------

    def _connection(self, timeout: Optional[float] = None) -> http.client.HTTPConnection:
        t = timeout if timeout is not None else self.timeout
        if self._unix is not None:
            return _UnixConnection(self._unix, timeout=t)
        assert self._tcp is not None
        return http.client.HTTPConnection(self._tcp[0], self._tcp[1], timeout=t)

    def _unavailable(self, error: OSError) -> DockerUnavailableError:
        why = error.strerror or str(error)
        if self._unix is not None and not os.path.exists(self._unix):
            if shutil.which("dockerd") is None and shutil.which("docker") is None:
                return DockerUnavailableError(
                    f"Docker is not installed (no engine socket at {self._unix}): install it "
                    "(for example `apt-get install docker.io`), then " + _START_HINT
                )
            return DockerUnavailableError(
                f"the Docker engine is not running (no socket at {self._unix}): " + _START_HINT
            )
        return DockerUnavailableError(
            f"cannot reach the Docker engine at {self.host} ({why}): " + _START_HINT
        )

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Sequence[tuple[str, str]]] = None,
        headers: Optional[Mapping[str, str]] = None,
        chunked: bool = False,
        timeout: Optional[float] = None,
        body: Optional[bytes] = None,
    ) -> http.client.HTTPConnection:
        """Connect and send the request line, the headers and ``body`` if given
        (a chunked body is up to the caller)."""
        url = path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
        conn = self._connection(timeout)
        try:
            conn.putrequest(method, url, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            elif body is not None or method in ("POST", "PUT"):
                conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
        except OSError as e:
            conn.close()
            raise self._unavailable(e) from e
        return conn

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Sequence[tuple[str, str]]] = None,
        json_body: Any = None,
    ) -> _Response:
        """Send a request (with ``json_body`` as its JSON body, if given) and read the answer."""
        if json_body is None:
            conn = self._open(method, path, query=query)
        else:
            conn = self._open(method, path, query=query, body=json.dumps(json_body).encode(),
                              headers={"Content-Type": "application/json"})
        try:
            response = conn.getresponse()
            with response:
                return _Response(response.status, response.read())
        except OSError as e:
            raise self._unavailable(e) from e
        finally:
            conn.close()

    @staticmethod
    def _send_body(conn: http.client.HTTPConnection, body: Iterable[bytes]) -> Optional[OSError]:
        try:
            for chunk in body:
                if chunk:
                    conn.send(b"%x\r\n" % len(chunk))
                    conn.send(chunk)
                    conn.send(b"\r\n")
            conn.send(b"0\r\n\r\n")
        except OSError as e:  # the engine answered early; read why below
            return e
        return None

    # -- queries ----------------------------------------------------------------

    def ping(self) -> None:
        """Check that the engine answers.

        :raises DockerUnavailableError: with how to start it.
        """
        response = self._request("GET", "/_ping")
        if response.status != 200:
            raise DockerUnavailableError(
                f"the Docker engine at {self.host} answered HTTP {response.status} to a ping: "
                + _START_HINT
            )

    def inspect(self, name: str) -> Optional[dict[str, Any]]:
        """Return the engine's description of image ``name``, or None when it has none."""
        response = self._request("GET", f"/images/{_quote(name)}/json")
        if response.status == 404:
            return None
        if response.status != 200:
            raise DockerError(f"cannot inspect image {name}: {response.message()}")
        value = response.json()
        if not isinstance(value, dict):
            raise DockerError(f"cannot inspect image {name}: unexpected answer from the engine")
        return value

    def exists(self, name: str) -> bool:
        """Return True when the engine has an image called ``name``."""
        return self.inspect(name) is not None

    def has_network(self, name: str) -> bool:
        """Return True when the engine has a network called ``name`` (``bridge``, say)."""
        response = self._request("GET", f"/networks/{_quote(name)}")
        if response.status == 404:
            return False
        if response.status != 200:
            raise DockerError(f"cannot inspect network {name}: {response.message()}")
        return True

    def tag(self, name: str, new: str) -> None:
        """Give image ``name`` the extra tag ``new`` (``repo:tag``)."""
        repo, tag = split_reference(new)
        response = self._request(
            "POST", f"/images/{_quote(name)}/tag", query=[("repo", repo), ("tag", tag)]
        )
        if response.status >= 300:
            raise DockerError(f"cannot tag image {name} as {new}: {response.message()}")

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove image (or tag) ``name``."""
        query = [("force", "1")] if force else []
        response = self._request("DELETE", f"/images/{_quote(name)}", query=query)
        if response.status >= 300:
            raise DockerError(f"cannot remove image {name}: {response.message()}")

    # -- build ------------------------------------------------------------------

    def build(
        self,
        context: IO[bytes],
        tags: Sequence[str],
        *,
        buildargs: Optional[Mapping[str, str]] = None,
        nocache: bool = False,
        on_output: Optional[OutputCallback] = None,
    ) -> str:
        """Build an image from the tar ``context`` (read in chunks) and return its id.

        The engine's progress text goes to ``on_output`` as it arrives.

        :raises ImageBuildError: with the engine's error (a failing ``RUN``, a
            bad Dockerfile, an unknown base image).
        :raises DockerUnavailableError: when the engine cannot be reached.
        """
        query: list[tuple[str, str]] = [("t", t) for t in tags]
        query += [("rm", "1"), ("forcerm", "1")]
        if nocache:
            query.append(("nocache", "1"))
        if buildargs:
            query.append(("buildargs", json.dumps(dict(buildargs), sort_keys=True)))
        conn = self._open(
            "POST", "/build", query=query, headers={"Content-Type": "application/x-tar"},
            chunked=True,
        )
        what = ", ".join(tags) or "image"
        try:
            broken = self._send_body(conn, iter(lambda: context.read(_CHUNK), b""))
            try:
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                raise ImageBuildError(
                    f"building {what}: the engine closed the connection ({broken or e})"
                ) from e
            with response:
                if response.status >= 400:
                    raise ImageBuildError(
                        f"building {what} failed: {_Response(response.status, response.read()).message()}"
                    )
                return self._follow_build(response, what, on_output)
        finally:
            conn.close()

    @staticmethod
    def _follow_build(
        response: http.client.HTTPResponse, what: str, on_output: Optional[OutputCallback]
    ) -> str:
        image_id: Optional[str] = None
        for message in iter_messages(response):
            error = _message_error(message)
            if error:
                raise ImageBuildError(f"building {what} failed: {error}")
            text = message.get("stream")
            if text and on_output is not None:
                on_output(str(text))
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
        if image_id is None:
            raise ImageBuildError(f"building {what}: the engine did not report an image id")
        return image_id

    # -- save and load ----------------------------------------------------------

    def save(self, name: str) -> Iterator[bytes]:
        """Yield the ``docker save`` tarball of image ``name`` in chunks (streamed).

        :raises DockerError: for an unknown image (before the first chunk).
        """
        def refused(status: int, message: str) -> DockerError:
            if status == 404:
                return DockerError(f"no image {name} in the Docker engine ({message})")
            return DockerError(f"cannot save image {name}: {message}")

        yield from self._stream_body(
            self._open("GET", f"/images/{_quote(name)}/get"), refused,
            lambda e: DockerError(f"saving image {name}: the engine broke the stream ({e})"),
            unavailable=True,
        )

    def _stream_body(
        self,
        conn: http.client.HTTPConnection,
        refused: Callable[[int, str], DockerError],
        broken: Callable[[Exception], DockerError],
        *,
        unavailable: bool = False,
    ) -> Iterator[bytes]:
        """Yield the body of ``conn``'s response in chunks, then close ``conn``.

        A status other than 200 raises ``refused(status, engine's message)``;
        a stream the engine breaks raises ``broken(error)``, and so does a
        connection lost before the response unless ``unavailable`` (then
        :class:`DockerUnavailableError`).
        """
        try:
            try:
                response = conn.getresponse()
            except OSError as e:
                if unavailable:
                    raise self._unavailable(e) from e
                raise
            with response:
                if response.status != 200:
                    raise refused(
                        response.status, _Response(response.status, response.read()).message()
                    )
                while True:
                    chunk = response.read1(_CHUNK) if response.chunked else response.read(_CHUNK)
                    if not chunk:
                        break
                    yield chunk
        except (http.client.HTTPException, OSError) as e:
            raise broken(e) from e
        finally:
            conn.close()

    def start_load(self) -> LoadUpload:
        """Start ``POST /images/load``; send the tarball through the returned upload."""
        conn = self._open(
            "POST", "/images/load", query=[("quiet", "1")],
            headers={"Content-Type": "application/x-tar"}, chunked=True,
        )
        return LoadUpload(self, conn)

    def load(self, chunks: Iterable[bytes]) -> list[str]:
        """Load a ``docker save`` tarball given in chunks; return the engine's messages."""
        upload = self.start_load()
        try:
            for chunk in chunks:
                upload.write(chunk)
        except BaseException:
            upload.abort()
            raise
        return upload.finish()

    # -- containers -------------------------------------------------------------

    def create_container(self, config: Mapping[str, Any]) -> str:
        """Create a container from ``config`` (the Engine API's body); return its id."""
        response = self._request("POST", "/containers/create", json_body=dict(config))
        if response.status >= 300:
            raise DockerError(
                f"cannot create a container of {config.get('Image')}: {response.message()}"
            )
        return str(response.json()["Id"])

    def _container_call(self, method: str, cid: str, action: str, what: str,
                        query: Optional[Sequence[tuple[str, str]]] = None) -> _Response:
        response = self._request(method, f"/containers/{cid}{action}", query=query)
        if response.status >= 300 and response.status != 304:
            raise DockerError(f"cannot {what} container {cid[:12]}: {response.message()}")
        return response

    def start_container(self, cid: str) -> None:
        """Start container ``cid``."""
        self._container_call("POST", cid, "/start", "start")

    def kill_container(self, cid: str) -> None:
        """Kill container ``cid`` (``SIGKILL``); a container already stopped is left alone."""
        response = self._request("POST", f"/containers/{cid}/kill")
        if response.status >= 300 and response.status not in (404, 409):
            raise DockerError(f"cannot kill container {cid[:12]}: {response.message()}")

    def remove_container(self, cid: str) -> None:
        """Remove container ``cid`` and its anonymous volumes, even while it runs."""
        self._container_call("DELETE", cid, "", "remove", [("force", "1"), ("v", "1")])

    def wait_container(self, cid: str, timeout: Optional[float] = None) -> int:
        """Wait until container ``cid`` stops and return its exit code.

        :raises TimeoutError: when it still runs after ``timeout`` seconds.
        """
        conn = self._open("POST", f"/containers/{cid}/wait", timeout=timeout)
        try:
            try:
                response = conn.getresponse()
                with response:
                    result = _Response(response.status, response.read())
            except socket.timeout as e:
                raise TimeoutError(f"container {cid[:12]} still runs") from e
            except OSError as e:
                raise self._unavailable(e) from e
        finally:
            conn.close()
        if result.status >= 300:
            raise DockerError(f"cannot wait for container {cid[:12]}: {result.message()}")
        return int(result.json().get("StatusCode", -1))

    def logs(self, cid: str) -> Iterator[tuple[int, bytes]]:
        """Follow container ``cid``'s output: yield ``(stream, data)``, 1 stdout, 2 stderr.

        Ends when the container stops. For a container created without a TTY.
        """
        conn = self._open("GET", f"/containers/{cid}/logs",
                          query=[("follow", "1"), ("stdout", "1"), ("stderr", "1")])
        try:
            response = conn.getresponse()
            with response:
                if response.status != 200:
                    message = _Response(response.status, response.read()).message()
                    raise DockerError(f"cannot follow container {cid[:12]}: {message}")
                while True:
                    head = response.read(8)
                    if len(head) < 8:
                        return
                    size = int.from_bytes(head[4:8], "big")
                    yield head[0], response.read(size)
        except (http.client.HTTPException, OSError) as e:
            raise DockerError(f"following container {cid[:12]}: the engine broke the stream ({e})") from e
        finally:
            conn.close()

    def get_archive(self, cid: str, path: str) -> Iterator[bytes]:
        """Yield, in chunks, a tar of ``path`` in container ``cid`` (running or stopped).

        :raises DockerError: naming the path when the container has nothing there.
        """
        yield from self._stream_body(
            self._open("GET", f"/containers/{cid}/archive", query=[("path", path)]),
            lambda status, message: DockerError(f"no {path} in container {cid[:12]} ({message})"),
            lambda e: DockerError(f"copying {path} out of container {cid[:12]}: {e}"),
        )


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe=":@")

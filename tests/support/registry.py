"""A read-only loopback image registry for tests: the pull half of the Distribution API.

:class:`Registry` serves on 127.0.0.1 (ephemeral port, plain HTTP) the images
given to :meth:`Registry.add` as ``docker save`` tarballs: ``GET /v2/``,
``GET``/``HEAD`` ``/v2/<name>/manifests/<tag or digest>`` (an OCI manifest
with uncompressed layers) and ``/v2/<name>/blobs/<digest>``. It is what a
build task's buildah pulls a prebuilt ``FROM`` from; no registry is
reachable from the test machines.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional

from loopserver import LoopbackServer

__all__ = ["Registry"]

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Registry(LoopbackServer):
    """The registry; use as a context manager or call :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[str] = []

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return self.host_port

    def _blob(self, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def add(self, name: str, tag: str, archive: str) -> None:
        """Serve the one image of the ``docker save`` tarball ``archive`` as ``name:tag``."""
        with tarfile.open(archive) as tar:
            def read(member: str) -> bytes:
                f = tar.extractfile(member)
                assert f is not None, member
                return f.read()

            [entry] = json.loads(read("manifest.json"))
            config = {"mediaType": "application/vnd.oci.image.config.v1+json",
                      **self._blob(read(entry["Config"]))}
            layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       **self._blob(read(layer))} for layer in entry["Layers"]]
        manifest = json.dumps({"schemaVersion": 2, "mediaType": _MANIFEST, "config": config,
                               "layers": layers}).encode()
        self.manifests[(name, tag)] = manifest
        self.manifests[(name, "sha256:" + hashlib.sha256(manifest).hexdigest())] = manifest

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                registry.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                data: Optional[bytes] = None
                kind = "application/json"
                if path in ("/v2/", "/v2"):
                    data = b"{}"
                elif "/manifests/" in path:
                    name, ref = path[len("/v2/"):].split("/manifests/", 1)
                    data, kind = registry.manifests.get((name, ref)), _MANIFEST
                elif "/blobs/" in path:
                    data = registry.blobs.get(path.rsplit("/", 1)[1])
                    kind = "application/octet-stream"
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    if body:
                        self.wfile.write(b"{}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Docker-Content-Digest",
                                 "sha256:" + hashlib.sha256(data).hexdigest())
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler

"""The ``image-graph`` directive: a plan's image graph, drawn at build time.

It makes a plan of a catalog with fixed inputs (parameters, an in-memory
index holding the images named in ``:indexed:``, seeded task ids, a fixed
time), turns it into DOT with :mod:`taskgraph_images.graph` (what
``taskgraph-images graph`` prints) and hands it to ``sphinx.ext.graphviz``,
so the picture is always the current code's output::

    .. image-graph:: ../examples/gecko
       :level: 1
       :indexed: builder@3
       :caption: ...
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any

from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.ext.graphviz import Graphviz

NOW = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=datetime.timezone.utc)


def _task_ids(seed: str) -> Any:
    import base64

    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        raw = bytearray(hashlib.sha256(f"{seed}/{count}".encode()).digest()[:16])
        raw[0] &= 0x7F  # a slugid.nice() id never starts with '-'
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        return base64.urlsafe_b64encode(bytes(raw)).decode("ascii").rstrip("=")

    return next_id


def example_dot(root: str, level: int, indexed: dict[str, int]) -> str:
    """Return the DOT of the plan of ``root`` at ``level`` with ``indexed`` images reusable."""
    from taskgraph_images import ImageCatalog
    from taskgraph_images.graph import image_graph, to_dot
    from taskgraph_images.index import MemoryIndex, hash_namespace
    from taskgraph_images.plan import plan_images

    catalog = ImageCatalog.load(root)
    index = MemoryIndex(clock=lambda: NOW)
    new_id = _task_ids("indexed")
    for name, at in indexed.items():
        task_id = new_id()
        index.insert_task(hash_namespace(at, name, catalog.digest(name)), task_id)
        index.set_task_state(task_id, "completed")
        index.add_artifact(task_id)
    params = {
        "level": level,
        "project": "gecko",
        "pushdate": int(NOW.timestamp()),
        "head_repository": "https://hg.example.org/gecko",
        "head_rev": "0" * 40,
        "base_repository": "https://hg.example.org/gecko",
        "owner": "someone@example.org",
        "source": "https://hg.example.org/gecko/file/tip/taskcluster",
    }
    plan = plan_images(catalog, params, index, task_ids=_task_ids("plan"), now=NOW)
    return to_dot(image_graph(plan, {n: catalog[n].parents for n in catalog.names()}))


def _indexed(text: str) -> dict[str, int]:
    out = {}
    for item in text.split():
        name, _, level = item.partition("@")
        out[name] = int(level or 3)
    return out


class ImageGraphDirective(Graphviz):
    """``graphviz`` with the DOT made from a catalog's plan instead of written out."""

    required_arguments = 1
    has_content = False
    option_spec = {
        **Graphviz.option_spec,
        "level": directives.positive_int,
        "indexed": directives.unchanged,
    }

    def run(self) -> list[Any]:
        src_dir = os.path.dirname(self.state.document.current_source)
        root = os.path.normpath(os.path.join(src_dir, self.arguments.pop()))
        dot = example_dot(root, self.options.pop("level", 1), _indexed(self.options.pop("indexed", "")))
        self.content = StringList(dot.splitlines(), source=root)
        return super().run()


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("image-graph", ImageGraphDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

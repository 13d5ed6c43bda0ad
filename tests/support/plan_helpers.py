"""Shared values for the plan, tasks, templates and CLI plan tests."""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path
from typing import Any, Callable

from taskgraph_images.params import Params

__all__ = ["GECKO", "NOW", "PARAMS", "params", "seeded_task_ids", "synthetic_plan"]

GECKO = Path(__file__).resolve().parents[2] / "examples" / "gecko"
NOW = datetime.datetime(2016, 11, 7, 19, 30, tzinfo=datetime.timezone.utc)
PARAMS: dict[str, Any] = {
    "level": 3,
    "project": "mozilla-central",
    "pushdate": 1478546787,
    "head_repository": "https://hg.mozilla.org/mozilla-central",
    "head_rev": "0123456789abcdef0123456789abcdef01234567",
    "base_repository": "https://hg.mozilla.org/mozilla-central",
    "owner": "ffxbld@mozilla.com",
    "source": "https://hg.mozilla.org/mozilla-central/file/tip/taskcluster/docker",
}


def params(**changes: Any) -> Params:
    """The test parameters with ``changes``."""
    return Params.from_mapping({**PARAMS, **changes})


def seeded_task_ids(seed: int = 0) -> Callable[[], str]:
    """A deterministic source of valid slugids."""
    import base64
    import random

    rng = random.Random(seed)
    counter = itertools.count()

    def next_id() -> str:
        next(counter)
        raw = bytearray(rng.getrandbits(8) for _ in range(16))
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # variant
        raw[0] &= 0x7F
        return base64.urlsafe_b64encode(bytes(raw)).decode("ascii").rstrip("=")

    return next_id


def synthetic_plan(count: int, depth: int = 3, *, seed: int = 0) -> Any:
    """A plan of ``count`` valid build tasks in ``depth`` layers.

    Task ``i`` of a layer depends on task ``i % len(previous layer)`` of the
    layer before (a forest, as images and their parents are).
    """
    from taskgraph_images.config import BuildConfig
    from taskgraph_images.plan import Decision, Plan
    from taskgraph_images.tasks import BuildSpec, build_task

    config = BuildConfig(task_queue_id="proj-{level}/images")
    new_id = seeded_task_ids(seed)
    p = params()
    layers: list[list[str]] = [[] for _ in range(depth)]
    decisions = {}
    tasks = {}
    for i in range(count):
        layer = i * depth // count
        name = f"image-{i:04d}"
        task_id = new_id()
        below = layers[layer - 1] if layer else []
        parent = below[len(layers[layer]) % len(below)] if below else None
        layers[layer].append(task_id)
        digest = f"{i:064x}"
        decisions[name] = Decision(name, "build", digest, task_id=task_id)
        spec = BuildSpec(
            task_id=task_id,
            name=name,
            digest=digest,
            context_path=f"taskcluster/docker/{name}",
            builder="taskcluster/image_builder:0.2.0",
            parent_task_id=parent,
            dependencies=(parent,) if parent else (),
        )
        tasks[task_id] = build_task(spec, p, config, NOW)
    return Plan(decisions, tasks, p)

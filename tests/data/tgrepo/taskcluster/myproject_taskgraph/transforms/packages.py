"""Package tasks: a Debian package built once per source digest, cached like an image."""

import hashlib

from taskgraph.transforms.base import TransformSequence

transforms = TransformSequence()


@transforms.add
def package_task(config, tasks):
    for task in tasks:
        name = task.pop("name")
        source = task.pop("source")
        yield {
            "label": f"packages-{name}",
            "description": f"Build the package {name}",
            "attributes": {"package_name": name},
            "treeherder": {"symbol": f"P({name})", "platform": "packages/opt",
                           "kind": "build", "tier": 1},
            "worker-type": "b-linux",
            "worker": {
                "implementation": "docker-worker",
                "os": "linux",
                "docker-image": "debian:12",
                "max-run-time": 1800,
                "command": ["build-package", source],
            },
            "cache": {
                "type": "packages.v1",
                "name": name,
                "digest-data": [hashlib.sha256(source.encode()).hexdigest()],
            },
        }

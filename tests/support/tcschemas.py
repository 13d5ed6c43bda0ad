"""Validate JSON against the Taskcluster schemas in ``tests/data/taskcluster``.

Usable from any test::

    from tcschemas import validate
    validate(task_definition, "queue/v1/create-task-request.json")
    validate(task_definition["payload"], "docker-worker/v1/payload.json")

``validate`` raises :class:`jsonschema.ValidationError` on the first error;
``errors`` returns them all as one-line strings.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from referencing import Resource

__all__ = ["TASKCLUSTER_DATA", "Schemas", "default_schemas", "errors", "validate"]

#: The Taskcluster schemas and API references carried in the repository
#: (see ``tests/data/taskcluster/README.md`` for their origin).
TASKCLUSTER_DATA = Path(__file__).resolve().parents[1] / "data" / "taskcluster"


class Schemas:
    """The schemas under ``<root>/schemas``, resolved by ``$id``."""

    def __init__(self, root: Path = TASKCLUSTER_DATA) -> None:
        self.root = Path(root)
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._registry: referencing.Registry[Any] = referencing.Registry(
            retrieve=self._retrieve  # type: ignore[call-arg]
        )

    def _load(self, uri: str) -> Any:
        path = uri.split("#", 1)[0]
        if not path.startswith("/schemas/"):
            raise referencing.exceptions.NoSuchResource(ref=uri)
        with open(self.root / path.lstrip("/"), encoding="utf-8") as f:
            return json.load(f)

    def _retrieve(self, uri: str) -> Resource[Any]:
        return referencing.jsonschema.DRAFT6.create_resource(self._load(uri))

    def validator(self, schema_path: str) -> jsonschema.protocols.Validator:
        """Return a validator for ``schema_path`` (e.g. ``queue/v1/task.json``)."""
        key = schema_path.lstrip("/").removeprefix("schemas/").split("#", 1)[0]
        found = self._validators.get(key)
        if found is None:
            schema = self._load(f"/schemas/{key}")
            found = jsonschema.Draft6Validator(schema, registry=self._registry)
            self._validators[key] = found
        return found

    def errors(self, instance: Any, schema_path: str) -> list[str]:
        """Return every validation error as ``path: message``."""
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in self.validator(schema_path).iter_errors(instance)
        ]

    def validate(self, instance: Any, schema_path: str) -> None:
        """Raise :class:`jsonschema.ValidationError` if ``instance`` does not validate."""
        self.validator(schema_path).validate(instance)


@functools.cache
def default_schemas() -> Schemas:
    """The schemas of :data:`TASKCLUSTER_DATA` (loaded once per test session)."""
    return Schemas()


def validate(instance: Any, schema_path: str) -> None:
    """Validate ``instance`` against ``schema_path``, e.g. ``queue/v1/create-task-request.json``."""
    default_schemas().validate(instance, schema_path)


def errors(instance: Any, schema_path: str) -> list[str]:
    """Return the validation errors of ``instance`` against ``schema_path``."""
    return default_schemas().errors(instance, schema_path)

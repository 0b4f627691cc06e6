"""`SchemaCheck`: the result must be JSON valid against a JSON Schema (Draft 2020-12)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import Unresolvable

from paywire._json import loads as load_json
from paywire.ledger.model import JsonValue
from paywire.tasks._checks_base import (
    MAX_DETAIL_TEXT_CHARS,
    CheckInput,
    Verdict,
    check_json_text,
    clip,
    expect_fields,
)
from paywire.tasks.model import InvalidTask

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
"""The only ``$schema`` a schema check may name: it is validated as 2020-12, whatever it
says, so saying another draft would mislead."""

MAX_PATH_CHARS = 200
"""A failing location as shown in a verdict (``$.items[3].name``)."""

_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")


def _make_validator(schema: dict[str, JsonValue]) -> Any:
    """A validator whose references resolve inside `schema` only: an empty registry, whose
    default retriever fetches nothing (jsonschema's own default would fetch http(s) URLs)."""
    return Draft202012Validator(schema, registry=Registry())


def _outside_references(schema: object) -> Iterable[str]:
    """``$ref``/``$dynamicRef`` values that do not point inside the schema (``#...``)."""
    stack = [schema]
    while stack:  # depth already bounded by json_text
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _REFERENCE_KEYWORDS and isinstance(value, str):
                    if not value.startswith("#"):
                        yield value
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def json_path(parts: Iterable[object]) -> str:
    """A location in a JSON document, as ``$.items[3].name``."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(part)}]"
    return clip(path, MAX_PATH_CHARS)


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """Accepts a result that is JSON valid against `schema` (JSON Schema, Draft 2020-12).

    The schema is checked when the check is built (`InvalidTask`: not a valid schema, a
    check larger than `MAX_CHECK_JSON_BYTES` or deeper than `MAX_CHECK_JSON_DEPTH`, or
    referring outside itself). References resolve inside the schema only: nothing is ever fetched.
    ``format`` is an annotation, as 2020-12 says by default, not an assertion."""

    kind: ClassVar[str] = "schema"

    schema: dict[str, JsonValue] = field(hash=False)
    _validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.schema, dict):
            raise InvalidTask(
                f"a schema check's schema is a JSON object, got {type(self.schema).__name__}"
            )
        text = check_json_text({"kind": self.kind, "schema": self.schema}, "the schema check")
        schema = json.loads(text)["schema"]  # a copy nobody else holds
        object.__setattr__(self, "schema", schema)
        declared = schema.get("$schema", DRAFT_2020_12)
        if declared not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
            raise InvalidTask(
                f"the schema says $schema {clip(str(declared), 100)!r}; a schema check validates "
                f"with Draft 2020-12: remove $schema or set it to {DRAFT_2020_12!r}"
            )
        for reference in _outside_references(schema):
            raise InvalidTask(
                f"the schema refers to {clip(reference, 100)!r}, outside itself; nothing is "
                "fetched: put what it refers to under $defs and refer to it as '#/$defs/...'"
            )
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise InvalidTask(
                f"the schema is not a valid JSON Schema (Draft 2020-12): at "
                f"{json_path(error.absolute_path)}: {clip(error.message, 200)}"
            ) from None
        object.__setattr__(self, "_validator", _make_validator(schema))

    def to_json(self) -> dict[str, JsonValue]:
        """``{"kind": "schema", "schema": {...}}``."""
        schema: JsonValue = json.loads(json.dumps(self.schema))
        return {"kind": self.kind, "schema": schema}

    @classmethod
    def from_json(cls, data: object) -> SchemaCheck:
        """Read `to_json`'s form strictly (`InvalidTask`)."""
        fields = expect_fields(data, "a schema check", required=("kind", "schema"))
        schema = fields["schema"]
        if not isinstance(schema, dict):
            raise InvalidTask("a schema check's schema is a JSON object")
        return cls(schema)

    async def decide(self, given: CheckInput) -> Verdict:
        """Parse the result (depth-bounded) and validate it; the first failure is the
        reason. Runs in a thread: a large result takes a while to validate."""
        return await asyncio.to_thread(self._judge, given.result)

    def _judge(self, text: str) -> Verdict:
        try:
            instance = load_json(text, parse_constant=_refuse_constant)
        except ValueError as error:
            reason = f"the result is not JSON: {clip(str(error), 200)}"
            return Verdict(False, self.kind, reason, detail={"error": "not_json"})
        try:
            failure = next(iter(self._validator.iter_errors(instance)), None)
        except Unresolvable as problem:
            raise InvalidTask(
                f"the schema's reference {clip(str(problem), 100)} resolves to nothing "
                "in the schema: fix the check"
            ) from None
        if failure is None:
            return Verdict(True, self.kind, "the result is valid against the schema")
        path = json_path(failure.absolute_path)
        message = clip(str(failure.message), MAX_DETAIL_TEXT_CHARS)
        return Verdict(
            False,
            self.kind,
            f"the result fails the schema at {path}: {message}",
            detail={
                "path": path,
                "keyword": str(failure.validator),
                "schema_path": json_path(failure.absolute_schema_path),
                "message": message,
            },
        )

"""The API contracts in ``contracts/`` as Python values, and Hypothesis strategies read from them.

Everything here is derived from the contract documents themselves, never from the models under
test: payload strategies walk the OpenAPI schemas, :func:`problems` validates a value against a
schema (the JSON Schema subset the contracts use), and :func:`broken_payloads` breaks a valid
payload in exactly one place and says where. hypothesis-jsonschema is not used: it crashes with
current Hypothesis.

Generation bounds (documented, deliberate): integers stay within int64 (msgspec's range; no
server id or minute count comes near it), date-times stay within the years 1900-2200 (a real
server timestamp; an offset near year 1 or 9999 cannot be converted to UTC, which is tested
separately as a robustness case), and date-times are generated both with an offset and naive,
because the live server sends ``timeout_end`` naive, meaning UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from hypothesis import strategies as st

__all__ = [
    "CONTRACTS_DIR",
    "CONTRACT_NAMES",
    "Breakage",
    "Contract",
    "Difference",
    "Json",
    "Operation",
    "Parameter",
    "Schema",
    "allowed_types",
    "broken_payloads",
    "differences",
    "differs",
    "fake_differences",
    "json_type",
    "json_values",
    "known_field_names",
    "load_contract",
    "operation_differences",
    "problems",
    "same_instant",
    "schemathesis_differences",
    "values",
    "with_unknown_enum_values",
    "with_unknown_fields",
]

CONTRACTS_DIR: Final = Path(__file__).resolve().parents[2] / "contracts"
CONTRACT_NAMES: Final = ("seed", "live")

#: A JSON value as ``json.loads`` returns it.
Json: TypeAlias = Any
Schema: TypeAlias = Mapping[str, Any]

_REF_PREFIX: Final = "#/components/schemas/"
_INT64: Final = 2**63 - 1


# -- the documents -------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    location: Literal["path", "query"]
    required: bool
    schema: Schema


@dataclass(frozen=True)
class Operation:
    """One operation of a contract. ``name`` is the SDK's name (``get``, ``cancel``, ``list``,
    ``create``, ``extend``), taken from ``x-speakeasy-name-override``."""

    name: str
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body: Schema | None
    ok: Schema
    #: The 422 body; None for an operation without parameters or body (FastAPI declares none).
    invalid: Schema | None

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def path_pattern(self) -> re.Pattern[str]:
        """The path template as a regex: each ``{param}`` is one non-empty path segment."""
        parts = re.split(r"\{(\w+)\}", self.path)
        pattern = "".join(
            f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class Contract:
    name: str
    document: Mapping[str, Any]

    @property
    def schemas(self) -> Mapping[str, Schema]:
        schemas: Mapping[str, Schema] = self.document["components"]["schemas"]
        return schemas

    def schema(self, name: str) -> Schema:
        return self.schemas[name]

    def resolve(self, schema: Schema) -> tuple[str | None, Schema]:
        """Follow a ``$ref``: the component's name (None for an inline schema) and its schema."""
        ref = schema.get("$ref")
        if ref is None:
            return None, schema
        name = str(ref).removeprefix(_REF_PREFIX)
        return name, self.schemas[name]

    @property
    def operations(self) -> tuple[Operation, ...]:
        found = []
        for path, item in self.document["paths"].items():
            for method, spec in item.items():
                content = spec["responses"]
                invalid = content.get("422")
                body = spec.get("requestBody", {}).get("content", {}).get("application/json")
                found.append(
                    Operation(
                        name=spec["x-speakeasy-name-override"],
                        method=method.upper(),
                        path=path,
                        parameters=tuple(
                            Parameter(p["name"], p["in"], p.get("required", False), p["schema"])
                            for p in spec.get("parameters", ())
                        ),
                        body=None if body is None else body["schema"],
                        ok=content["200"]["content"]["application/json"]["schema"],
                        invalid=None
                        if invalid is None
                        else invalid["content"]["application/json"]["schema"],
                    )
                )
        return tuple(found)

    def operation(self, name: str) -> Operation | None:
        return next((op for op in self.operations if op.name == name), None)


@cache
def load_contract(name: str) -> Contract:
    path = CONTRACTS_DIR / f"{name}.openapi.json"
    return Contract(name, json.loads(path.read_text(encoding="utf-8")))


# -- the one list of deliberate differences -------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One deliberate way a model differs from a contract (``contracts/differences.json``)."""

    contract: str
    schema: str
    field: str | None
    aspect: str
    contract_says: Json
    model_says: Json
    reason: str

    @property
    def key(self) -> tuple[str, str, str | None, str]:
        return (self.contract, self.schema, self.field, self.aspect)


@cache
def _differences_document() -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads(
        (CONTRACTS_DIR / "differences.json").read_text(encoding="utf-8")
    )
    return loaded


@cache
def differences() -> Mapping[tuple[str, str, str | None, str], Difference]:
    listed = [
        Difference(
            contract=item["contract"],
            schema=item["schema"],
            field=item.get("field"),
            aspect=item["aspect"],
            contract_says=item.get("contract_says"),
            model_says=item.get("model_says"),
            reason=item["reason"],
        )
        for item in _differences_document()["schemas"]
    ]
    return {difference.key: difference for difference in listed}


def operation_differences() -> tuple[Mapping[str, Any], ...]:
    """Request-side differences: parameters the client adds or omits, inputs it rejects."""
    return tuple(_differences_document()["operations"])


def fake_differences() -> tuple[Mapping[str, Any], ...]:
    """Where the fake still answers differently from the live server, each with its reason."""
    return tuple(_differences_document().get("fake", ()))


def schemathesis_differences() -> tuple[Mapping[str, Any], ...]:
    """The schemathesis checks whose findings are the live server's own behaviour."""
    return tuple(_differences_document().get("schemathesis", ()))


def differs(contract: str, schema: str | None, field: str | None, aspect: str) -> bool:
    return schema is not None and (contract, schema, field, aspect) in differences()


# -- generating valid values ----------------------------------------------------------------


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Json]:
    """Any JSON value, kept small."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-_INT64, _INT64)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


_OFFSETS: Final[st.SearchStrategy[tzinfo]] = st.just(UTC) | st.integers(-14 * 60, 14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@st.composite
def date_times(draw: st.DrawFn) -> str:
    """RFC 3339 date-times as servers write them: ``Z``, ``±hh:mm`` or (live quirk) naive."""
    moment = draw(st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=_OFFSETS))
    style = draw(st.sampled_from(["offset", "Z", "naive"]))
    if style == "naive":
        return moment.replace(tzinfo=None).isoformat()
    text = moment.isoformat()
    return text.replace("+00:00", "Z") if style == "Z" else text


def _strings(schema: Schema) -> st.SearchStrategy[str]:
    fmt = schema.get("format")
    if fmt == "date-time":
        return date_times()
    if fmt == "uuid":
        return st.uuids().map(str)
    return st.text(max_size=40)


def values(contract: Contract, schema: Schema) -> st.SearchStrategy[Json]:
    """Values valid for ``schema`` in ``contract``; optional object fields come and go."""
    _, schema = contract.resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([values(contract, option) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        return _strings(schema)
    if kind == "integer":
        return st.integers(-_INT64, _INT64)
    if kind == "number":
        # Amounts of USD (prices, costs): within the client's money range, since a price
        # beyond it (1e70, 5e-324) is refused on purpose (tests/costs/test_absurd_prices.py).
        money = st.floats(min_value=-1e29, max_value=1e29).filter(
            lambda x: x == 0 or abs(x) >= 1e-12
        )
        return money | st.integers(-_INT64, _INT64)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(values(contract, schema.get("items", {})), max_size=4)
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        properties = schema["properties"]
        return st.fixed_dictionaries(
            {key: values(contract, sub) for key, sub in properties.items() if key in required},
            optional={
                key: values(contract, sub) for key, sub in properties.items() if key not in required
            },
        )
    if kind == "object" and "additionalProperties" in schema:  # a map, e.g. GPU -> price
        items = values(contract, schema["additionalProperties"])
        return st.dictionaries(st.text(max_size=8), items, max_size=6)
    if kind == "object":
        return st.dictionaries(st.text(max_size=8), json_values(), max_size=3)
    return json_values()  # no constraint: anything


# -- validating -----------------------------------------------------------------------------

_JSON_TYPES: Final = ("string", "integer", "number", "boolean", "null", "array", "object")


def json_type(value: Json) -> str:
    """The JSON Schema type name of a decoded JSON value (an integral float is a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_date_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text


def problems(contract: Contract, schema: Schema, value: Json, where: str = "$") -> list[str]:
    """Why ``value`` does not conform to ``schema`` (empty when it does). Unknown object
    fields are allowed, as in the contracts (no ``additionalProperties: false`` anywhere)."""
    _, schema = contract.resolve(schema)
    if "anyOf" in schema:
        per_option = [problems(contract, option, value, where) for option in schema["anyOf"]]
        return [] if any(not p for p in per_option) else [f"{where}: matches no anyOf option"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    actual = json_type(value)
    if kind is not None and actual != kind and not (kind == "number" and actual == "integer"):
        return [f"{where}: expected {kind}, got {actual}"]
    if kind == "string" and schema.get("format") == "date-time" and not _is_date_time(value):
        return [f"{where}: {value!r} is not a date-time"]
    if kind == "array":
        items = schema.get("items", {})
        return [
            p
            for i, item in enumerate(value)
            for p in problems(contract, items, item, f"{where}[{i}]")
        ]
    if kind == "object":
        found = [
            f"{where}: missing {key!r}" for key in schema.get("required", ()) if key not in value
        ]
        properties = schema.get("properties", {})
        for key, sub in properties.items():
            if key in value:
                found += problems(contract, sub, value[key], f"{where}.{key}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value.keys() - properties.keys():
                found += problems(contract, extra, value[key], f"{where}[{key!r}]")
        return found
    return []


# -- breaking a valid value in one place ----------------------------------------------------

BreakKind: TypeAlias = Literal["missing", "wrong_type", "null"]


@dataclass(frozen=True)
class Breakage:
    """One place a payload was broken. ``where`` is the JSON path msgspec reports: the object's
    path for a missing field, the value's own path otherwise. ``schema`` is the component schema
    that holds ``field`` (None for the whole body)."""

    kind: BreakKind
    where: str
    field: str | None
    schema: str | None

    @property
    def aspect(self) -> str:
        return {"missing": "required", "null": "nullable", "wrong_type": "type"}[self.kind]


def allowed_types(contract: Contract, schema: Schema) -> frozenset[str]:
    """The JSON types ``schema`` admits (all of them when it says nothing)."""
    _, schema = contract.resolve(schema)
    if "anyOf" in schema:
        return frozenset().union(*(allowed_types(contract, o) for o in schema["anyOf"]))
    kind = schema.get("type")
    if kind is None and "enum" in schema:
        return frozenset(json_type(v) for v in schema["enum"])
    if kind is None:
        return frozenset(_JSON_TYPES)
    return frozenset({kind, "integer"}) if kind == "number" else frozenset({kind})


_SAMPLES: Final[Mapping[str, Json]] = {
    "string": "not-the-right-type",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


def _sites(
    contract: Contract, schema: Schema, value: Json, where: str, holder: str | None
) -> Iterator[tuple[Breakage, Json]]:
    """Every single-place breakage of ``value`` with the replacement it needs."""
    name, resolved = contract.resolve(schema)
    if "anyOf" in resolved:  # descend through the option the value actually matches
        option = next((o for o in resolved["anyOf"] if not problems(contract, o, value)), None)
        if option is not None and json_type(value) != "null":
            yield from _sites(contract, option, value, where, holder)
        return
    if isinstance(value, list):
        items = resolved.get("items", {})
        for i, item in enumerate(value):
            yield from _field_sites(contract, items, item, f"{where}[{i}]", holder, None)
    elif isinstance(value, dict) and "properties" in resolved:
        for key in resolved.get("required", ()):
            if key in value:
                yield Breakage("missing", where, key, name), key
        for key, sub in resolved["properties"].items():
            if key in value:
                yield from _field_sites(contract, sub, value[key], f"{where}.{key}", name, key)


def _field_sites(
    contract: Contract,
    schema: Schema,
    value: Json,
    where: str,
    holder: str | None,
    field: str | None,
) -> Iterator[tuple[Breakage, Json]]:
    allowed = allowed_types(contract, schema)
    for kind in _JSON_TYPES:
        if kind != "null" and kind not in allowed:
            yield Breakage("wrong_type", where, field, holder), _SAMPLES[kind]
            break
    if "null" not in allowed and value is not None:
        yield Breakage("null", where, field, holder), None
    yield from _sites(contract, schema, value, where, holder)


def _apply(value: Json, breakage: Breakage, replacement: Json) -> Json:
    """A copy of ``value`` with the breakage applied (paths use msgspec's ``$.a[0].b`` form)."""
    steps = re.findall(r"\.([^.\[]+)|\[(\d+)\]", breakage.where)
    copy = json.loads(json.dumps(value))
    if breakage.kind == "missing":
        target = copy
        for key, index in steps:
            target = target[key] if key else target[int(index)]
        del target[breakage.field]
        return copy
    if not steps:
        return replacement
    target = copy
    for key, index in steps[:-1]:
        target = target[key] if key else target[int(index)]
    last_key, last_index = steps[-1]
    target[last_key if last_key else int(last_index)] = replacement
    return copy


@st.composite
def broken_payloads(draw: st.DrawFn, contract: Contract, schema: Schema) -> tuple[Json, Breakage]:
    """A payload valid for ``schema`` except in exactly one place, and that place."""
    valid = draw(values(contract, schema))
    sites = list(_field_sites(contract, schema, valid, "$", None, None))
    breakage, replacement = draw(st.sampled_from(sites))
    return _apply(valid, breakage, replacement), breakage


# -- forward compatibility ------------------------------------------------------------------


def _objects(contract: Contract, schema: Schema, value: Json) -> Iterator[tuple[Json, Schema]]:
    """Every object inside ``value`` together with its (resolved) schema."""
    _, resolved = contract.resolve(schema)
    if "anyOf" in resolved:
        option = next((o for o in resolved["anyOf"] if not problems(contract, o, value)), None)
        if option is not None:
            yield from _objects(contract, option, value)
    elif isinstance(value, list):
        for item in value:
            yield from _objects(contract, resolved.get("items", {}), item)
    elif isinstance(value, dict) and "properties" in resolved:
        yield value, resolved
        for key, sub in resolved["properties"].items():
            if key in value:
                yield from _objects(contract, sub, value[key])


def _not_in(known: frozenset[Json]) -> Callable[[Json], bool]:
    return lambda value: value not in known


@cache
def known_field_names() -> frozenset[str]:
    """Every property name of every schema in every contract.

    An "unknown" field must be unknown to all of them, not only to the schema the payload was
    drawn from: a body valid for one schema may decode into a model that also has the fields of
    another (the seed ``get`` body decodes into ``Session``, which knows ``machine_id``,
    ``created_at`` and ``status``), and such a field is then read, not ignored."""
    found: set[str] = set()

    def walk(node: Json) -> None:
        if isinstance(node, dict):
            found.update(node.get("properties", ()))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for name in CONTRACT_NAMES:
        walk(load_contract(name).document)
    return frozenset(found)


@st.composite
def with_unknown_fields(
    draw: st.DrawFn, contract: Contract, schema: Schema, also_known: frozenset[str] = frozenset()
) -> tuple[Json, Json]:
    """A valid payload, and a copy with fields added to every object in it whose names no
    contract knows (:func:`known_field_names`), nor any name in ``also_known`` (the models')."""
    plain = draw(values(contract, schema))
    payload = json.loads(json.dumps(plain))
    known = known_field_names() | also_known
    for obj, _ in _objects(contract, schema, payload):
        extra = draw(
            st.dictionaries(
                st.text(min_size=1, max_size=10).filter(_not_in(known)),
                json_values(),
                min_size=1,
                max_size=3,
            )
        )
        obj.update(extra)
    return plain, payload


def _enum_sites(contract: Contract, schema: Schema, value: Json) -> Iterator[tuple[Json, Json]]:
    """(container, key) pairs whose value is an enum member."""
    for obj, resolved in _objects(contract, schema, value):
        for key, sub in resolved["properties"].items():
            if key in obj and obj[key] is not None and _is_enum(contract, sub):
                yield obj, key


def _is_enum(contract: Contract, schema: Schema) -> bool:
    _, resolved = contract.resolve(schema)
    if "anyOf" in resolved:
        return any(_is_enum(contract, option) for option in resolved["anyOf"])
    return "enum" in resolved


def _known_enum_values(contract: Contract) -> frozenset[Json]:
    """Every enum value the contract lists anywhere (named or inline enums)."""
    found: set[Json] = set()

    def walk(node: Json) -> None:
        if isinstance(node, dict):
            found.update(node.get("enum", ()))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(contract.document["components"])
    return frozenset(found)


_NEW_ENUM_VALUES: Final = st.from_regex(r"\A[A-Z][A-Z0-9-]{1,11}\Z")


@st.composite
def with_unknown_enum_values(
    draw: st.DrawFn, contract: Contract, schema: Schema
) -> tuple[Json, list[str]]:
    """A valid payload whose enum fields hold values the contract does not list (yet), and
    those values. Payloads without an enum field come back unchanged with an empty list."""
    payload = draw(values(contract, schema))
    known = _known_enum_values(contract)
    new: list[str] = []
    for obj, key in list(_enum_sites(contract, schema, payload)):
        value = draw(_NEW_ENUM_VALUES.filter(_not_in(known)))
        obj[key] = value
        new.append(value)
    return payload, new


def same_instant(left: Json, right: Json) -> bool:
    """True when two date-time strings mean the same instant (naive means UTC)."""

    def parse(text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    return isinstance(left, str) and isinstance(right, str) and parse(left) == parse(right)

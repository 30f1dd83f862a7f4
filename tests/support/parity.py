"""Schema parity: what each model's JSON Schema (msgspec) says versus the contract it claims.

:func:`schema_differences` lists every way a model differs from a contract schema, in the same
shape as ``contracts/differences.json``, so a test can demand that the two lists are equal: an
unlisted difference is a bug in the model (or an undocumented decision), a listed one that no
longer exists is a stale list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from cdsessions._core.pricing import PriceTable
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    GPUEventModel,
    GPUProviderType,
    HTTPValidationError,
    Machine,
    MachineGPU,
    Session,
    ValidationError,
)
from tests.support.strategies import Contract, Json, Schema

__all__ = ["CLAIMS", "Found", "model_schemas", "schema_differences"]

#: Which model claims which schema of which contract.
CLAIMS: Final[Mapping[str, Mapping[str, type]]] = {
    "seed": {
        "Session": Session,
        "GPUEventModel": GPUEventModel,
        "CreateSessionBody": CreateSessionBody,
        "CreateSessionResponse": CreateSessionResponse,
        "DeleteSessionResponse": DeleteSessionResponse,
        "HTTPValidationError": HTTPValidationError,
        "ValidationError": ValidationError,
        "MachineGPU": MachineGPU,
        "GPUProviderType": GPUProviderType,
    },
    "live": {
        "SessionResponse": Session,
        "CreateSessionBody": CreateSessionBody,
        "CreateSessionResponse": CreateSessionResponse,
        "DeleteSessionResponse": DeleteSessionResponse,
        "IncreaseTimeoutResponse": ExtendSessionResponse,
        "GpuPricing": PriceTable,
        "Machine": Machine,  # a map, not a Struct: compared as a whole (see below)
        "HTTPValidationError": HTTPValidationError,
        "ValidationError": ValidationError,
        "MachineGPU": MachineGPU,
    },
}

_REF: Final = "#/components/schemas/"


@dataclass(frozen=True)
class Found:
    """One difference found: ``(contract, schema, field, aspect)`` and both sides' values."""

    contract: str
    schema: str
    field: str | None
    aspect: str
    contract_says: Json
    model_says: Json

    @property
    def key(self) -> tuple[str, str, str | None, str]:
        return (self.contract, self.schema, self.field, self.aspect)


def model_schemas(models: tuple[type, ...]) -> Mapping[str, Schema]:
    """msgspec's JSON Schema components for ``models``, keyed by model name."""
    _, components = msgspec.json.schema_components(models, ref_template=_REF + "{name}")
    return components


def _options(schema: Schema) -> list[Schema]:
    return list(schema["anyOf"]) if "anyOf" in schema else [schema]


def _type_of(option: Schema, names: Mapping[str, str]) -> str:
    """One option as a comparable word: ``string``, ``ref:MachineGPU``, ``array<integer>``."""
    if "$ref" in option:
        name = str(option["$ref"]).removeprefix(_REF)
        return "ref:" + names.get(name, name)
    if "anyOf" in option:
        return "|".join(sorted(_type_of(o, names) for o in option["anyOf"]))
    kind = option.get("type")
    if kind == "array":
        return f"array<{_type_of(option.get('items', {}), names)}>"
    if kind is None:
        return "any"
    return str(kind)


@dataclass(frozen=True)
class _Shape:
    types: tuple[str, ...]
    nullable: bool
    formats: tuple[str, ...]
    enum: tuple[str, ...] | None
    default: Json


def _shape(schema: Schema, names: Mapping[str, str]) -> _Shape:
    options = _options(schema)
    real = [o for o in options if o.get("type") != "null"]
    enums = [v for o in real for v in o.get("enum", ())]
    return _Shape(
        types=tuple(sorted({_type_of(o, names) for o in real})),
        nullable=len(real) < len(options) or not real,
        formats=tuple(sorted({o["format"] for o in real if "format" in o})),
        enum=tuple(sorted(enums)) if enums else None,
        default=schema.get("default"),
    )


def _field_differences(
    contract: str, schema: str, field: str, theirs: _Shape, ours: _Shape
) -> Iterator[Found]:
    for aspect in ("types", "nullable", "formats", "enum"):
        said, have = getattr(theirs, aspect), getattr(ours, aspect)
        if said != have:
            yield Found(
                contract,
                schema,
                field,
                aspect.rstrip("s") if aspect != "nullable" else aspect,
                list(said) if isinstance(said, tuple) else said,
                list(have) if isinstance(have, tuple) else have,
            )


def _map_differences(contract: str, name: str, theirs: Schema, model: Any) -> Iterator[Found]:
    """A schema for a JSON object used as a map (``additionalProperties``), claimed by a
    ``dict[str, T]``: its values compared as one field named ``*``."""
    ours = msgspec.json.schema(model)
    if theirs.get("type") != ours.get("type"):
        yield Found(contract, name, None, "type", theirs.get("type"), ours.get("type"))
    their_values = _shape(theirs.get("additionalProperties", {}), {})
    our_values = _shape(ours.get("additionalProperties", {}), {})
    yield from _field_differences(contract, name, "*", their_values, our_values)


def schema_differences(contract: Contract, claims: Mapping[str, type] | None = None) -> list[Found]:
    """Every difference between ``contract``'s schemas and the models claiming them."""
    claims = CLAIMS[contract.name] if claims is None else claims
    maps = {name: model for name, model in claims.items() if not isinstance(model, type)}
    claims = {name: model for name, model in claims.items() if name not in maps}
    models = model_schemas(tuple(dict.fromkeys(claims.values())))
    # A model refers to other models by its own names; map them to the contract's names.
    names = {model.__name__: name for name, model in claims.items()}
    found: list[Found] = []
    for name, model in maps.items():
        found += _map_differences(contract.name, name, contract.schema(name), model)
    for name, model in claims.items():
        theirs = contract.schema(name)
        ours = models[model.__name__]
        if "enum" in theirs or "enum" in ours:
            said, have = sorted(theirs.get("enum", ())), sorted(ours.get("enum", ()))
            if said != have:
                found.append(Found(contract.name, name, None, "enum", said, have))
            continue
        their_fields: Mapping[str, Any] = theirs.get("properties", {})
        our_fields: Mapping[str, Any] = ours.get("properties", {})
        their_required = set(theirs.get("required", ()))
        our_required = set(ours.get("required", ()))
        for field in sorted(set(their_fields) | set(our_fields)):
            if field not in our_fields:
                found.append(Found(contract.name, name, field, "field", "present", "absent"))
                continue
            if field not in their_fields:
                presence = "required" if field in our_required else "optional"
                found.append(Found(contract.name, name, field, "field", "absent", presence))
                continue
            required = (field in their_required, field in our_required)
            if required[0] != required[1]:
                found.append(Found(contract.name, name, field, "required", *required))
            theirs_shape = _shape(their_fields[field], {})
            ours_shape = _shape(our_fields[field], names)
            found += _field_differences(contract.name, name, field, theirs_shape, ours_shape)
            if not any(required) and theirs_shape.default != ours_shape.default:
                found.append(
                    Found(
                        contract.name,
                        name,
                        field,
                        "default",
                        theirs_shape.default,
                        ours_shape.default,
                    )
                )
    return found

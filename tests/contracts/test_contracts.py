"""Contract tests: the client against the API contracts in ``contracts/``, for generated inputs.

Payloads come from the contract documents (``tests/support/strategies.py``), never from the
models under test, and every deliberate model-vs-contract difference is read from the one list,
``contracts/differences.json``. Hypothesis settings are stated on each test; the whole module
runs in about a minute on 2 shared cores (``nox -s contracts``).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, event, find, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import models
from cdsessions._core import builders, decoding, pricing
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import ApiError, DecodeFailed, HttpError, InvalidRequest, ValidationFailed
from cdsessions.fake import FakeService, ManualClock
from cdsessions.models import CreateSessionBody, MachineGPU
from tests.support.parity import CLAIMS, schema_differences
from tests.support.strategies import (
    CONTRACT_NAMES,
    Breakage,
    Contract,
    Json,
    Operation,
    Schema,
    broken_payloads,
    differences,
    differs,
    json_values,
    known_field_names,
    load_contract,
    operation_differences,
    problems,
    same_instant,
    values,
    with_unknown_enum_values,
    with_unknown_fields,
)

pytestmark = pytest.mark.contract

JSON_HEADERS: Final = (("Content-Type", "application/json"),)
#: Enough examples to reach every optional field, anyOf branch and breakage site of these
#: schemas many times over, small enough for the whole module to finish in about a minute.
EXAMPLES: Final = 150
CONTRACT_SETTINGS: Final = settings(
    max_examples=EXAMPLES,
    deadline=None,  # shared 2-core CI machines: timing noise must not fail a correctness test
    suppress_health_check=[HealthCheck.too_slow],
)

OPERATIONS: Final = [
    pytest.param(name, op.name, id=f"{name}-{op.name}")
    for name in CONTRACT_NAMES
    for op in load_contract(name).operations
]


def _response(body: Json, status: int = 200) -> HttpResponse:
    return HttpResponse(status, JSON_HEADERS, json.dumps(body).encode())


def _operation(contract: Contract, name: str) -> Operation:
    op = contract.operation(name)
    assert op is not None, f"{contract.name} has no operation {name}"
    return op


# -- which decoder and which model the client uses for what ---------------------------------

_CLIENT_DECODERS: Final[Mapping[str, Callable[[HttpResponse, str], Result[Any, ApiError]]]] = {
    "get": lambda r, op: decoding.decode(r, decoding.SESSION, op),
    "cancel": lambda r, op: decoding.decode(r, decoding.DELETED, op),
    "create": lambda r, op: decoding.decode(r, decoding.CREATED, op),
    "extend": lambda r, op: decoding.decode(r, decoding.EXTENDED, op),
    "list": decoding.decode_session_list,
    "gpu_pricing": pricing.decode_gpu_pricing,
    "machine": lambda r, op: decoding.decode(r, decoding.MACHINE, op),
    "machines": lambda r, op: decoding.decode(r, decoding.MACHINES, op),
}
#: Re-encodes what a model decoded; Decimals (prices) as the JSON numbers they came from.
_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")


def model_type(contract: Contract, schema: Schema, claims: Mapping[str, type] | None = None) -> Any:
    """The model type that claims ``schema`` (``list[...]`` for an array of a claimed schema)."""
    claims = CLAIMS[contract.name] if claims is None else claims
    name, resolved = contract.resolve(schema)
    if name is not None:
        return claims[name]
    assert resolved.get("type") == "array", resolved
    return list[model_type(contract, resolved["items"], claims)]  # type: ignore[misc]


def decode_with_model(
    contract: Contract, schema: Schema, payload: Json, claims: Mapping[str, type] | None = None
) -> Result[Any, ApiError]:
    """Decode through the client's decoding pipeline, with the model that claims ``schema``."""
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(model_type(contract, schema, claims))
    return decoding.decode(_response(payload), decoder, "contract check")


# -- "re-encodes to equal JSON" -------------------------------------------------------------


def _absent_value(contract: Contract, holder: str | None, key: str, schema: Schema) -> Json:
    """What a field the payload left out must re-encode as: the contract's default (null when
    it has none), or the model's default where the difference list says they differ."""
    listed = differences().get((contract.name, holder or "", key, "default"))
    return listed.model_says if listed is not None else schema.get("default")


def assert_same_json(
    contract: Contract, schema: Schema, sent: Json, back: Json, where: str = "$"
) -> None:
    """``back`` (the model's re-encoding) says what ``sent`` said, field for field.

    Date-times compare as instants (the model hands out UTC); fields ``sent`` left out may only
    come back as their default; fields no contract has may only come back as null."""
    name, resolved = contract.resolve(schema)
    if "anyOf" in resolved:
        if sent is None:
            assert back is None, where
            return
        option = next(o for o in resolved["anyOf"] if not problems(contract, o, sent))
        assert_same_json(contract, option, sent, back, where)
        return
    if resolved.get("format") == "date-time":
        assert same_instant(sent, back), f"{where}: {sent!r} came back as {back!r}"
    elif isinstance(sent, list):
        assert isinstance(back, list), where
        assert len(back) == len(sent), where
        for i, (a, b) in enumerate(zip(sent, back, strict=True)):
            assert_same_json(contract, resolved.get("items", {}), a, b, f"{where}[{i}]")
    elif isinstance(sent, dict) and "properties" in resolved:
        assert isinstance(back, dict), where
        properties = resolved["properties"]
        for key, value in sent.items():
            dropped = differences().get((contract.name, name or "", key, "field"))
            if dropped is not None and dropped.model_says == "absent":  # a secret: never kept
                assert key not in back, f"{where}.{key} was kept"
                continue
            assert key in back, f"{where}.{key} was dropped"
            assert_same_json(contract, properties.get(key, {}), value, back[key], f"{where}.{key}")
        for key in back.keys() - sent.keys():
            if key in properties:
                expected = _absent_value(contract, name, key, properties[key])
            else:
                listed = differences().get((contract.name, name or "", key, "field"))
                assert listed is not None, f"{where}.{key}: a field the contract does not have"
                assert listed.model_says == "optional", f"{where}.{key} is required"
                expected = None
            assert back[key] == expected, f"{where}.{key}: absent, came back as {back[key]!r}"
    else:
        assert (sent == back and type(sent) is type(back)) or (
            isinstance(sent, int | float) and isinstance(back, float) and float(sent) == back
        ), f"{where}: {sent!r} came back as {back!r}"


def _round_trips(
    contract: Contract, schema: Schema, payload: Json, claims: Mapping[str, type] | None = None
) -> None:
    decoded = decode_with_model(contract, schema, payload, claims)
    assert isinstance(decoded, Success), decoded
    back = json.loads(_ENCODER.encode(decoded.unwrap()))
    assert_same_json(contract, schema, payload, back)


def _decodes_like_the_client(contract: Contract, op: Operation, payload: Json) -> None:
    result = _CLIENT_DECODERS[op.name](_response(payload), op.name)
    assert isinstance(result, Success), result
    if op.name == "list":  # the client hands out Session whichever shape the server used
        sessions = result.unwrap()
        assert len(sessions) == len(payload)
        id_field = "id" if contract.name == "seed" else "gpu_event_id"
        assert [s.gpu_event_id for s in sessions] == [item[id_field] for item in payload]
    if op.name == "gpu_pricing":  # every price exactly as written, never through a float
        table = result.unwrap()
        written = {gpu: Decimal(json.dumps(price)) for gpu, price in payload.items()}
        assert {p.gpu: p.usd_per_second for p in table.prices} == written
        assert all(type(p.usd_per_second) is Decimal for p in table.prices)


# -- parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_models_agree_with_the_contract_except_for_the_listed_differences(name: str) -> None:
    contract = load_contract(name)
    found = {f.key: (f.contract_says, f.model_says) for f in schema_differences(contract)}
    listed = {
        key: (d.contract_says, d.model_says) for key, d in differences().items() if key[0] == name
    }
    unlisted = {k: v for k, v in found.items() if listed.get(k) != v}
    stale = {k: v for k, v in listed.items() if found.get(k) != v}
    assert not unlisted, f"model differs from the {name} contract (fix it or list it): {unlisted}"
    assert not stale, f"listed differences that no longer exist: {stale}"


def test_every_listed_difference_says_why() -> None:
    assert differences()
    for difference in differences().values():
        assert len(difference.reason) > 20, difference.key
    for item in operation_differences():
        assert len(item["reason"]) > 20, item


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_contract_documents_are_whole(name: str) -> None:
    """Every reference resolves and every schema the operations use is claimed by a model."""
    contract = load_contract(name)
    text = json.dumps(contract.document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.removeprefix("#/components/schemas/") in contract.schemas, ref
    names = {op.name for op in contract.operations}
    assert {"get", "cancel", "list", "create"} <= names
    for op in contract.operations:
        model_type(contract, op.ok)
        if op.invalid is not None:  # an operation without parameters or body has no 422
            model_type(contract, op.invalid)
        else:
            assert not op.parameters, op.name
            assert op.body is None, op.name


# -- valid payloads -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "operation"), OPERATIONS)
@CONTRACT_SETTINGS
@given(data=st.data())
def test_every_valid_response_decodes_and_reencodes_to_equal_json(
    name: str, operation: str, data: st.DataObject
) -> None:
    contract = load_contract(name)
    op = _operation(contract, operation)
    payload = data.draw(values(contract, op.ok), label="payload")
    assert problems(contract, op.ok, payload) == []  # the generator honours the contract
    _decodes_like_the_client(contract, op, payload)
    _round_trips(contract, op.ok, payload)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
@CONTRACT_SETTINGS
@given(data=st.data())
def test_every_valid_422_body_becomes_validation_failed_with_its_items(
    name: str, data: st.DataObject
) -> None:
    contract = load_contract(name)
    schema = _operation(contract, "create").invalid
    assert schema is not None
    payload = data.draw(values(contract, schema), label="payload")
    _round_trips(contract, schema, payload)
    error = decoding.error_from(_response(payload, 422), "create")
    assert isinstance(error, ValidationFailed)
    sent = payload.get("detail", [])
    assert [(list(i.loc), i.msg, i.type) for i in error.items] == [
        (item["loc"], item["msg"], item["type"]) for item in sent
    ]


# -- payloads broken in one place -----------------------------------------------------------


def _expect_breakage_caught(
    contract: Contract, breakage: Breakage, result: Result[Any, ApiError]
) -> None:
    if differs(contract.name, breakage.schema, breakage.field, breakage.aspect):
        assert isinstance(result, Success), f"listed as deliberate, yet: {result}"
        return
    dropped = differences().get((contract.name, breakage.schema or "", breakage.field, "field"))
    if dropped is not None and dropped.model_says == "absent":  # never read, so never wrong
        assert isinstance(result, Success), f"a field the model lacks failed it: {result}"
        return
    assert isinstance(result, Failure), f"{breakage} was accepted"
    error = result.failure()
    assert isinstance(error, DecodeFailed), error
    assert error.where == breakage.where, (error, breakage)
    if breakage.kind == "missing":
        assert f"`{breakage.field}`" in error.problem, (error, breakage)


@pytest.mark.parametrize(("name", "operation"), OPERATIONS)
@CONTRACT_SETTINGS
@given(data=st.data())
def test_a_payload_broken_in_one_place_fails_naming_that_place(
    name: str, operation: str, data: st.DataObject
) -> None:
    contract = load_contract(name)
    op = _operation(contract, operation)
    payload, breakage = data.draw(broken_payloads(contract, op.ok), label="broken")
    assert problems(contract, op.ok, payload), "the breakage must break the contract"
    _expect_breakage_caught(contract, breakage, decode_with_model(contract, op.ok, payload))
    client = _CLIENT_DECODERS[op.name](_response(payload), op.name)
    if isinstance(client, Failure):  # the client's own decoder may only fail the same way
        assert isinstance(client.failure(), DecodeFailed)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
@CONTRACT_SETTINGS
@given(data=st.data())
def test_a_broken_422_body_still_becomes_an_http_error(name: str, data: st.DataObject) -> None:
    contract = load_contract(name)
    invalid = _operation(contract, "create").invalid
    assert invalid is not None
    payload, _ = data.draw(broken_payloads(contract, invalid))
    error = decoding.error_from(_response(payload, 422), "create")
    assert isinstance(error, HttpError)
    assert error.status == 422


# -- anything at all ------------------------------------------------------------------------

_BODIES: Final = (
    st.binary(max_size=200)
    | json_values(20).map(lambda v: json.dumps(v).encode())
    | st.integers(1, 20_000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(1, 20_000).map(lambda depth: b'{"session_id":' + b"[" * depth)
)


@settings(max_examples=400, deadline=None)
@given(
    body=_BODIES,
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 404, 422, 500, 503]),
    content_type=st.sampled_from([None, "application/json", "text/plain", "application/x+json"]),
    operation=st.sampled_from(sorted(_CLIENT_DECODERS)),
)
def test_arbitrary_bytes_never_raise(
    body: bytes, status: int, content_type: str | None, operation: str
) -> None:
    headers = () if content_type is None else (("Content-Type", content_type),)
    result = _CLIENT_DECODERS[operation](HttpResponse(status, headers, body), operation)
    # What the status alone decides, whatever the bytes: a non-2xx is an HttpError with that
    # status (never a decoding problem); a 2xx is a value or a DecodeFailed for that status.
    if isinstance(result, Failure):
        error = result.failure()
        if 200 <= status < 300:
            assert type(error) is DecodeFailed, error
        else:
            assert isinstance(error, HttpError), error
        assert error.status == status
        str(error)  # the message renders too
    else:
        assert 200 <= status < 300, result


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2025-13-01T00:00:00Z"]
)
def test_date_times_outside_what_utc_can_hold_fail_as_values(moment: str) -> None:
    body = {"session_id": "s", "gpu_event_id": "e", "created_at": moment}
    result = _CLIENT_DECODERS["get"](_response(body), "get")
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), DecodeFailed)
    assert result.failure().where in ("$", "$.created_at")


# -- forward compatibility ------------------------------------------------------------------


#: Every wire name any model reads (renames included): an "unknown" field must not be one.
MODEL_FIELD_NAMES: Final = frozenset(
    name
    for value in vars(models).values()
    if isinstance(value, type) and issubclass(value, msgspec.Struct)
    for name in value.__struct_encode_fields__
)


def test_unknown_field_names_exclude_every_name_a_model_or_contract_knows() -> None:
    # The flake this replaces: the seed get body decodes into Session, and an "unknown" field
    # named machine_id, created_at or status was read (and refused), not ignored.
    assert {"machine_id", "created_at", "status", "timeout_end"} <= known_field_names()
    assert {"ctx", "input", "machine_id", "gpu_provider"} <= MODEL_FIELD_NAMES
    # A deterministic example of what the property checks: a near miss is still unknown.
    plain = {"session_id": "s", "gpu_event_id": "e", "machine_id": "m"}
    extra = plain | {"Machine_ID": [1], "machine-id": None, "zz": {"a": 1}}
    get = _CLIENT_DECODERS["get"]
    assert get(_response(extra), "get") == get(_response(plain), "get")
    assert get(_response(plain), "get").unwrap().machine_id == "m"


@pytest.mark.parametrize(("name", "operation"), OPERATIONS)
@CONTRACT_SETTINGS
@given(data=st.data())
def test_unknown_fields_are_ignored(name: str, operation: str, data: st.DataObject) -> None:
    contract = load_contract(name)
    op = _operation(contract, operation)
    plain, payload = data.draw(
        with_unknown_fields(contract, op.ok, MODEL_FIELD_NAMES), label="payload"
    )
    _decodes_like_the_client(contract, op, payload)
    # Ignored means exactly that: the same value as without the extra fields.
    client = _CLIENT_DECODERS[op.name]
    assert client(_response(payload), op.name) == client(_response(plain), op.name)
    decoded = decode_with_model(contract, op.ok, payload)
    assert isinstance(decoded, Success), decoded
    assert decoded == decode_with_model(contract, op.ok, plain)


@pytest.mark.parametrize(("name", "operation"), OPERATIONS)
@CONTRACT_SETTINGS
@given(data=st.data())
def test_unknown_enum_values_decode_and_are_kept(
    name: str, operation: str, data: st.DataObject
) -> None:
    contract = load_contract(name)
    op = _operation(contract, operation)
    payload, new_values = data.draw(with_unknown_enum_values(contract, op.ok), label="payload")
    _decodes_like_the_client(contract, op, payload)
    decoded = decode_with_model(contract, op.ok, payload)
    assert isinstance(decoded, Success), decoded
    back = msgspec.json.encode(decoded.unwrap()).decode()
    for value in new_values:
        assert json.dumps(value) in back  # kept as sent, not dropped or replaced


def test_an_unknown_gpu_is_an_unknown_member_not_an_error() -> None:
    gpu = MachineGPU("X9")
    assert (gpu.value, gpu.is_known, MachineGPU("H100").is_known) == ("X9", False, True)


# -- request builders -----------------------------------------------------------------------


def _unsafe_id(value: str) -> bool:
    """The client's documented id rule (differences.json, 'unsafe id'), written independently."""
    return (
        not value.strip()
        or value in (".", "..")
        or len(value) > builders.MAX_ID_LENGTH
        or any(unicodedata.category(c) in ("Cc", "Cs") for c in value)
    )


def _client_may_reject(op: str, inputs: Mapping[str, Json]) -> bool:
    """True when ``differences.json`` says the client rejects these (contract-valid) inputs."""
    rules = {
        "unsafe id": lambda v: isinstance(v, str) and _unsafe_id(v),
        "negative": lambda v: isinstance(v, int) and v < 0,
        "below 1": lambda v: isinstance(v, int) and v < 1,
    }
    for item in operation_differences():
        if item["aspect"] != "rejects" or item["operation"] not in ("*", op):
            continue
        value = inputs.get(item["parameter"])
        if value is not None and rules[item["rule"]](value):
            return True
    return False


def _inputs(contract: Contract, op: Operation) -> st.SearchStrategy[dict[str, Json]]:
    """The operation's inputs as the contract allows them: parameters and body fields."""
    fields: dict[str, st.SearchStrategy[Json]] = {}
    optional: dict[str, st.SearchStrategy[Json]] = {}
    for p in op.parameters:
        (fields if p.required else optional)[p.name] = values(contract, p.schema)
    if op.body is not None:
        fields["body"] = values(contract, op.body)
    return st.fixed_dictionaries(fields, optional=optional)


def _build(op: str, inputs: Mapping[str, Json]) -> Result[HttpRequest, InvalidRequest]:
    body = inputs.get("body", {})
    if op == "get":
        return builders.build_get(inputs["session_id"])
    if op == "cancel":
        return builders.build_cancel(inputs["session_id"], inputs.get("wait_for_shutdown", False))
    if op == "list":
        return builders.build_list(inputs.get("machine_id"))
    if op == "create":
        gpu = body.get("gpu")
        return builders.build_create(
            CreateSessionBody(
                machine_id=body["machine_id"],
                gpu=None if gpu is None else MachineGPU(gpu),
                timeout=body.get("timeout"),
                wait_for_server=body.get("wait_for_server", False),
            )
        )
    if op == "gpu_pricing":
        return Success(builders.build_gpu_pricing())
    if op == "machine":
        return builders.build_machine(inputs["machine_id"])
    if op == "machines":
        return builders.build_machines(inputs.get("search"))
    assert op == "extend"
    return builders.build_extend(inputs["session_id"], body["minutes"])


def _check_query(
    contract: Contract, op: Operation, request: HttpRequest, inputs: Mapping[str, Json]
) -> None:
    sent = dict(parse_qsl(urlsplit(request.target).query, keep_blank_values=True))
    assert len(sent) == len(request.query), "a query parameter was repeated"
    for p in op.parameters:
        if p.location != "query":
            continue
        if p.name not in sent:
            assert not p.required, f"required query parameter {p.name} missing"
            continue
        raw = sent[p.name]
        value: Json = (
            {"true": True, "false": False}.get(raw, raw)
            if "boolean" in json.dumps(p.schema)
            else raw
        )
        assert problems(contract, p.schema, value) == [], (p.name, raw)
        assert value == inputs.get(p.name), (p.name, raw)
    extra = sent.keys() - {p.name for p in op.parameters}
    allowed = {
        item["parameter"]
        for item in operation_differences()
        if item["contract"] == contract.name
        and item["operation"] == op.name
        and item["aspect"] == "extra_parameter"
    }
    assert extra <= allowed, f"query parameters the contract does not have: {extra - allowed}"


def _check_body(
    contract: Contract, op: Operation, request: HttpRequest, inputs: Mapping[str, Json]
) -> None:
    if op.body is None:
        assert request.body is None
        return
    assert request.body is not None
    assert dict(request.headers).get("Content-Type") == "application/json"
    sent = json.loads(request.body)
    assert problems(contract, op.body, sent) == [], sent
    _, schema = contract.resolve(op.body)
    given_body = inputs["body"]
    for key, field in schema["properties"].items():
        # Left out and null mean the same for an optional field: the contract's default.
        default = field.get("default")
        assert sent.get(key, default) == (
            given_body.get(key, default) if given_body.get(key) is not None else default
        ), key


@pytest.mark.parametrize(("name", "operation"), OPERATIONS)
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_builders_send_what_the_contract_describes(
    name: str, operation: str, data: st.DataObject
) -> None:
    contract = load_contract(name)
    op = _operation(contract, operation)
    inputs = data.draw(_inputs(contract, op), label="inputs")
    built = _build(op.name, inputs)
    if isinstance(built, Failure):
        assert isinstance(built.failure(), InvalidRequest)
        assert _client_may_reject(op.name, {**inputs, **inputs.get("body", {})}), built
        return
    assert not _client_may_reject(op.name, {**inputs, **inputs.get("body", {})})
    request = built.unwrap()
    assert request.method == op.method
    match = op.path_pattern.match(request.path)
    assert match is not None, (request.path, op.path)
    for key, segment in match.groupdict().items():
        assert unquote(segment) == inputs[key]  # the id round-trips through the path
    _check_query(contract, op, request, inputs)
    _check_body(contract, op, request, inputs)


def test_every_builder_operation_is_in_a_contract_or_listed() -> None:
    extra = {
        (item["contract"], item["operation"])
        for item in operation_differences()
        if item["aspect"] == "extra_operation"
    }
    for name in CONTRACT_NAMES:
        ops = {op.name for op in load_contract(name).operations}
        for op in _CLIENT_DECODERS:
            assert op in ops or (name, op) in extra, (name, op)
    for contract, op in extra:  # and a listed extra operation really is missing there
        assert load_contract(contract).operation(op) is None


#: For each rule in differences.json: an input the contract allows and the client rejects.
_REJECTION_WITNESSES: Final[Mapping[str, Callable[[], Result[HttpRequest, InvalidRequest]]]] = {
    "session_id": lambda: builders.build_get(".."),
    "machine_id": lambda: builders.build_list(" "),
    "timeout": lambda: builders.build_create(CreateSessionBody(machine_id="m", timeout=-1)),
    "minutes": lambda: builders.build_extend("s", 0),
}


def _query_names(request: HttpRequest) -> set[str]:
    return {name for name, _ in request.query}


def test_every_listed_request_difference_is_real() -> None:
    """The request-side list is checked like the schema list: each entry must still hold."""
    for item in operation_differences():
        aspect, contract = item["aspect"], item["contract"]
        if aspect == "rejects":
            witness = _REJECTION_WITNESSES[item["parameter"]]()
            assert isinstance(witness, Failure), item
            assert witness.failure().field == item["parameter"], item
        elif aspect == "extra_parameter":
            op = _operation(load_contract(contract), item["operation"])
            assert op.parameter(item["parameter"]) is None, item
            sent = _build(op.name, {"session_id": "s", item["parameter"]: True}).unwrap()
            assert item["parameter"] in _query_names(sent), item
        elif aspect == "optional_parameter":
            op = _operation(load_contract(contract), item["operation"])
            parameter = op.parameter(item["parameter"])
            assert parameter is not None, item
            assert parameter.required, item
            sent = _build(op.name, {}).unwrap()
            assert item["parameter"] not in _query_names(sent), item
        elif aspect == "open_enum":
            gpu = MachineGPU("X9")
            made = builders.build_create(CreateSessionBody(machine_id="m", gpu=gpu)).unwrap()
            body = json.loads(made.body or b"{}")
            for name in CONTRACT_NAMES:
                enum = load_contract(name).schema("MachineGPU")["enum"]
                assert body[item["parameter"]] not in enum, item
        else:
            assert aspect == "extra_operation", item


# -- the fake speaks the contract ----------------------------------------------------------

_FAKE_KEY: Final = "contract-test-key"
_ERROR_STATUSES: Final = frozenset({400, 401, 403, 404, 405, 500})


@st.composite
def _fake_inputs(
    draw: st.DrawFn, contract: Contract, op: Operation, known: list[str], machines: tuple[str, ...]
) -> dict[str, Json]:
    """Contract-valid inputs, steered towards ids and machines the fake knows."""
    inputs = draw(_inputs(contract, op))
    if "session_id" in inputs and known and draw(st.integers(0, 3)):
        inputs["session_id"] = draw(st.sampled_from(known))
    if inputs.get("machine_id") is not None and draw(st.integers(0, 3)):
        inputs["machine_id"] = draw(st.sampled_from(machines))
    body = inputs.get("body")
    if isinstance(body, dict) and "machine_id" in body and draw(st.integers(0, 3)):
        body["machine_id"] = draw(st.sampled_from(machines))
    if isinstance(body, dict) and body.get("timeout") is not None and draw(st.integers(0, 3)):
        body["timeout"] = draw(st.integers(0, 90))  # minutes a real caller would ask for
    if op.body is not None and not draw(st.integers(0, 5)):  # now and then, a body it rejects
        inputs["body"], _ = draw(broken_payloads(contract, op.body))
    return inputs


def _raw_request(op: Operation, inputs: Mapping[str, Json], key: str) -> HttpRequest:
    """The request exactly as the contract describes it (no client-side checks in between)."""
    path = op.path
    query: list[tuple[str, str]] = []
    for p in op.parameters:
        value = inputs.get(p.name)
        if p.location == "path":
            path = path.replace("{" + p.name + "}", quote(str(value), safe=""))
        elif value is not None:
            query.append((p.name, json.dumps(value) if isinstance(value, bool) else str(value)))
    body = json.dumps(inputs["body"]).encode() if op.body is not None else None
    headers = (("Authorization", f"Bearer {key}"),) + (JSON_HEADERS if body is not None else ())
    return HttpRequest(op.method, path, tuple(query), headers, body)


def _assert_conforms(contract: Contract, op: Operation, response: HttpResponse) -> None:
    where = f"{op.name} -> {response.status}"
    media = (response.header("content-type") or "").split(";")[0]
    if response.status == 500 and media == "text/plain":  # Starlette's unhandled-error page
        return
    assert media == "application/json", where
    body = json.loads(response.body)
    if response.status == 200:
        assert problems(contract, op.ok, body) == [], (where, body)
    elif response.status == 422:
        assert op.invalid is not None, where  # the contract declares no 422 here
        assert problems(contract, op.invalid, body) == [], (where, body)
    else:  # not in the contracts; contracts/live-server-facts.md: always {"detail": "<text>"}
        assert response.status in _ERROR_STATUSES, where
        assert isinstance(body, dict), where
        assert isinstance(body.get("detail"), str), where


@pytest.mark.parametrize("name", CONTRACT_NAMES)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no slow "explain"
)
@given(data=st.data())
def test_every_response_of_the_fake_conforms_to_the_contract(
    name: str, data: st.DataObject
) -> None:
    """The fake in live mode against the live contract, in seed mode against the seed one."""
    contract = load_contract(name)
    clock = ManualClock()
    fake = FakeService(clock=clock, seed_shapes=name == "seed", ready_after_polls=1)
    known: list[str] = []
    for _ in range(data.draw(st.integers(3, 15), label="steps")):
        if not known and data.draw(st.booleans()):  # most calls need a session to matter
            op = _operation(contract, "create")
        else:
            op = data.draw(st.sampled_from(contract.operations), label="operation")
        inputs = data.draw(_fake_inputs(contract, op, known, fake.machine_ids), label="inputs")
        key = data.draw(st.sampled_from([_FAKE_KEY] * 6 + ["other-key", ""]), label="key")
        response = fake.handle(_raw_request(op, inputs, key))
        _assert_conforms(contract, op, response)
        if op.name == "create" and response.status == 200:
            known.append(json.loads(response.body)["session_id"])
        event(f"{op.name} {response.status}")  # shown by --hypothesis-show-statistics
        clock.advance(minutes=data.draw(st.sampled_from([0, 0, 1, 5, 20]), label="minutes"))


# -- a deliberately wrong model makes these tests fail --------------------------------------


class _UrlRequired(msgspec.Struct, frozen=True, kw_only=True):
    """CreateSessionResponse with ``url`` made required: the contract says it is optional."""

    session_id: str
    url: str | None


def test_a_wrong_model_is_caught_by_parity() -> None:
    contract = load_contract("live")
    wrong = {**CLAIMS["live"], "CreateSessionResponse": _UrlRequired}
    found = {f.key for f in schema_differences(contract, wrong)}
    assert ("live", "CreateSessionResponse", "url", "required") in found - differences().keys()


def test_a_wrong_model_is_caught_by_the_round_trip_property() -> None:
    contract = load_contract("live")
    schema = {"$ref": "#/components/schemas/CreateSessionResponse"}
    wrong = {**CLAIMS["live"], "CreateSessionResponse": _UrlRequired}

    def breaks_the_property(payload: Json) -> bool:
        try:
            _round_trips(contract, schema, payload, wrong)
        except AssertionError:
            return True
        return False

    counterexample = find(
        values(contract, schema),
        breaks_the_property,
        settings=settings(max_examples=EXAMPLES, database=None),
    )
    assert "url" not in counterexample  # Hypothesis shrinks it to a body without url
    _round_trips(contract, schema, counterexample)  # which the real model accepts

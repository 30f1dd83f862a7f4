"""Replay recorded HTTP traffic: VCR v1 YAML cassettes, as pytest-recording and vcrpy write them.

``CassetteTransport`` is an ordinary :class:`~cdsessions.transports.Transport`: pass it to
``SessionsClient(transport=...)`` and every request is answered from the cassette, with no
network and no monkeypatching, so the same cassette replays in any test runner or in CI.

Matching rules (chosen so a cassette recorded against one server replays against any base URL):

- method, path and query must match; the request body too when ``match_body=True``;
- the request's base URL is ignored entirely (scheme, host, port and path): a request is matched
  by its path relative to the base URL (``/session/x``);
- a recorded URI is read relative to the base path it was recorded under, ``base_path``
  (``/api`` by default, the base path of every named server): a recording of
  ``https://api.comfydeploy.com/api/session/x`` is ``/session/x`` and answers ``GET /session/x``
  on any base URL, and only that: the relative paths must be equal, segment for segment, so
  ``GET /x`` never takes the recording of ``/api/session/x``. A recorded URI outside
  ``base_path`` is a :class:`CassetteError` at load time, not a recording that never matches;
- paths compare segment by segment after percent-decoding (``%2F`` stays distinct from ``/``);
  queries compare as sorted pairs; JSON bodies compare as parsed values;
- each recorded interaction plays once, in recorded order among equals, unless
  ``allow_repeats=True`` (then the last match replays again once all are used).

A request with no match is a ``TransportFailed(kind="unmatched")`` listing the closest recorded
requests. Response bodies are handed out the way :class:`Urllib3Transport` hands them out:
content-decoded, headers as received. vcrpy with urllib3 2.x stores gzip bodies already decoded
while keeping ``Content-Encoding: gzip`` (vcrpy issue 719), so a body is gunzipped only when it
really starts with the gzip magic bytes (see :func:`~cdsessions.transports._cap.decode_content`).

Loading never raises for a bad file: :meth:`CassetteTransport.load` returns a
:class:`CassetteError` naming the file and the place (a YAML line and column, or a path such as
``interactions[2].response.status.code``). Its memory is bounded too: the bodies, once decoded,
may add up to ``max_decoded_bytes`` at most, and a compressed body is measured as a stream
before it is decoded, so one meant to inflate to gigabytes is refused without being held; a
YAML alias shares its anchor's body (one copy, counted once) rather than copying it; a cassette
holds at most :data:`MAX_INTERACTIONS`; YAML merge keys (``<<``), which can grow a document
exponentially and which no recorder writes, are refused, and so is a pickled ``BytesIO`` body
holding anything but bytes or text. PyYAML is needed
only here (``pip install 'cdsessions[cassette]'``) and is imported on first load.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.logs import Piece
from cdsessions._core.servers import API_PREFIX
from cdsessions._core.wire import Headers, HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.transports._cap import (
    DEFAULT_MAX_DECODED_BYTES,
    capped,
    content_codings,
    decode_content,
    decoded_size,
    pieces_of,
)
from cdsessions.transports._fork import register as register_for_fork

__all__ = [
    "DEFAULT_BASE_PATH",
    "DEFAULT_MAX_DECODED_BYTES",
    "MAX_INTERACTIONS",
    "CassetteError",
    "CassetteTransport",
    "Interaction",
    "RecordedRequest",
]

#: The path of every named server's base URL, which recorded URIs are read relative to.
DEFAULT_BASE_PATH: Final = API_PREFIX
_CLOSEST_SHOWN: Final = 3
#: The most interactions a cassette may hold: far more than any recording, far fewer than a
#: few lines of YAML aliases can list.
MAX_INTERACTIONS: Final = 10_000
_INSTALL_HINT: Final = "reading cassettes needs PyYAML: pip install 'cdsessions[cassette]'"


class CassetteError(msgspec.Struct, frozen=True):
    """Why a cassette could not be loaded. ``where`` is ``line L, column C`` for YAML syntax,
    a path like ``interactions[0].request.uri`` for a structural problem, or ``file``.
    ``kind`` is ``"missing"`` when there is no such file (not recorded yet, or a wrong path),
    else ``"invalid"``."""

    path: str
    where: str
    problem: str
    kind: Literal["missing", "invalid"] = "invalid"

    def __str__(self) -> str:
        return f"cassette {self.path}: {self.where}: {self.problem}"


class RecordedRequest(msgspec.Struct, frozen=True):
    """The parts of a recorded request that matching looks at. ``segments`` is the recorded
    path relative to the cassette's base path, percent-decoded."""

    method: str
    uri: str
    segments: tuple[str, ...]
    query: tuple[tuple[str, str], ...]
    body: bytes | None

    def describe(self) -> str:
        """``GET /api/session/x?y=1``, without scheme, host or port, at most ~100 characters."""
        parts = urlsplit(self.uri)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{self.method} {target if len(target) <= 90 else target[:89] + '…'}"


class Interaction(msgspec.Struct, frozen=True):
    request: RecordedRequest
    response: HttpResponse


# -- matching (pure) -------------------------------------------------------------------------


def _segments(path: str) -> tuple[str, ...]:
    return tuple(unquote(part) for part in path.strip("/").split("/") if part != "")


def _json_or_bytes(body: bytes | None) -> object:
    if not body:
        return None
    try:
        return ("json", json.loads(body))
    except ValueError:
        return ("bytes", body)


class _Wanted(msgspec.Struct, frozen=True):
    method: str
    segments: tuple[str, ...]
    query: tuple[tuple[str, str], ...]
    body: bytes | None

    @classmethod
    def of(cls, request: HttpRequest) -> _Wanted:
        return cls(
            request.method.upper(),
            _segments(request.path),
            tuple(sorted(request.query)),
            request.body,
        )

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.method} /{'/'.join(self.segments)}" + (f"?{query}" if query else "")


def _matches(recorded: RecordedRequest, wanted: _Wanted, match_body: bool) -> bool:
    # Both paths are relative to their base (the base path was stripped at load): equal or not,
    # no suffix or prefix guessing, so one recording can answer only one path.
    return (
        recorded.method == wanted.method
        and recorded.segments == wanted.segments
        and recorded.query == wanted.query
        and (not match_body or _json_or_bytes(recorded.body) == _json_or_bytes(wanted.body))
    )


def _closeness(recorded: RecordedRequest, wanted: _Wanted) -> tuple[int, float]:
    score = (
        (recorded.method == wanted.method)
        + 2 * (recorded.segments == wanted.segments)
        + (recorded.query == wanted.query)
    )
    text = difflib.SequenceMatcher(None, recorded.describe(), wanted.describe()).ratio()
    return score, text


# -- the transport ---------------------------------------------------------------------------


class CassetteTransport:
    """Answers requests from recorded interactions. Thread-safe; does no I/O after loading.

    Build one with :meth:`load` (a file) or :meth:`from_yaml` (text); both return a ``Result``.
    """

    def __init__(
        self,
        interactions: Sequence[Interaction],
        *,
        match_body: bool = False,
        allow_repeats: bool = False,
        name: str = "<cassette>",
    ) -> None:
        """``interactions`` as :func:`parse_cassette` returns them (paths already relative to
        the base path they were recorded under)."""
        self._interactions = tuple(interactions)
        self._plays = [0] * len(self._interactions)
        self._match_body = match_body
        self._allow_repeats = allow_repeats
        self._name = name
        self._lock = threading.Lock()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # it may have been held by a thread the child lacks

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        match_body: bool = False,
        allow_repeats: bool = False,
        base_path: str = DEFAULT_BASE_PATH,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    ) -> Result[CassetteTransport, CassetteError]:
        """Read a cassette file. Every problem (missing file, bad YAML, wrong shape, a URI
        outside ``base_path``, bodies that decode to more than ``max_decoded_bytes`` in all,
        PyYAML not installed) is a :class:`CassetteError`, never an exception. ``base_path`` is
        the path of the base URL the cassette was recorded against (``/api`` for every named
        server; ``/proxy/api`` if it was recorded through ``https://host/proxy/api``)."""
        name = str(path)
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            return Failure(
                CassetteError(
                    name, "file", "No such file: not recorded yet, or a wrong path", "missing"
                )
            )
        except OSError as error:
            return Failure(CassetteError(name, "file", error.strerror or type(error).__name__))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return Failure(CassetteError(name, f"byte {error.start}", "the file is not UTF-8"))
        return cls.from_yaml(
            text,
            name=name,
            match_body=match_body,
            allow_repeats=allow_repeats,
            base_path=base_path,
            max_decoded_bytes=max_decoded_bytes,
        )

    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        name: str = "<string>",
        match_body: bool = False,
        allow_repeats: bool = False,
        base_path: str = DEFAULT_BASE_PATH,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    ) -> Result[CassetteTransport, CassetteError]:
        """A transport from cassette text; ``name`` labels errors (see :meth:`load`)."""
        return (
            _load_yaml(text, name)
            .bind(
                lambda data: parse_cassette(
                    data, name, base_path=base_path, max_decoded_bytes=max_decoded_bytes
                )
            )
            .map(
                lambda interactions: cls(
                    interactions, match_body=match_body, allow_repeats=allow_repeats, name=name
                )
            )
        )

    @property
    def interactions(self) -> tuple[Interaction, ...]:
        return self._interactions

    @property
    def all_played(self) -> bool:
        """True once every recorded interaction has been played at least once."""
        with self._lock:
            return all(self._plays)

    @property
    def unplayed(self) -> tuple[str, ...]:
        """The recorded requests not played yet, described (``GET /api/session/x``)."""
        with self._lock:
            return tuple(
                i.request.describe()
                for i, plays in zip(self._interactions, self._plays, strict=True)
                if not plays
            )

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        wanted = _Wanted.of(request)
        with self._lock:
            index = self._pick(wanted)
            if index is not None:
                self._plays[index] += 1
        if index is None:
            missed = TransportFailed(request.operation, "unmatched", self._miss(wanted), sent=False)
            return Failure(missed)
        return capped(request, self._interactions[index].response)

    def stream(self, request: HttpRequest) -> Generator[Piece, None, None]:
        """A recorded answer replayed as a stream (a recorded log stream is one body): the
        head, then the body in pieces, under the request's size cap; or the failure
        :meth:`send` gives."""
        answer = self.send(request)
        if not isinstance(answer, Success):
            yield Failure(answer.failure())
            return
        yield from pieces_of(request, answer.unwrap())

    def _pick(self, wanted: _Wanted) -> int | None:
        matching = [
            i
            for i, interaction in enumerate(self._interactions)
            if _matches(interaction.request, wanted, self._match_body)
        ]
        fresh = next((i for i in matching if not self._plays[i]), None)
        if fresh is not None:
            return fresh
        return matching[-1] if matching and self._allow_repeats else None

    def _miss(self, wanted: _Wanted) -> str:
        if not self._interactions:
            return f"{wanted.describe()}: the cassette {self._name} has no interactions"
        used = [
            i
            for i, interaction in enumerate(self._interactions)
            if _matches(interaction.request, wanted, self._match_body)
        ]
        if used:
            return (
                f"{wanted.describe()}: all {len(used)} matching recordings in {self._name} were "
                "already played (pass allow_repeats=True to replay them again)"
            )
        ranked = sorted(
            range(len(self._interactions)),
            key=lambda i: _closeness(self._interactions[i].request, wanted),
            reverse=True,
        )[:_CLOSEST_SHOWN]
        closest = "; ".join(self._interactions[i].request.describe() for i in ranked)
        return f"{wanted.describe()} is not in {self._name}; closest recorded: {closest}"

    def close(self) -> None:
        """Nothing to release; here to satisfy the Transport protocol."""

    def __repr__(self) -> str:
        return f"CassetteTransport({self._name!r}, {len(self._interactions)} interactions)"


# -- reading cassettes (pure, apart from importing PyYAML) -------------------------------------


@cache
def _loader() -> type[Any] | None:
    """A safe YAML loader that also reads the few benign Python tags vcrpy has written."""
    try:
        import yaml
    except ImportError:
        return None
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def construct_str(loader: Any, node: Any) -> str:
        return str(loader.construct_scalar(node))

    def construct_tuple(loader: Any, node: Any) -> tuple[Any, ...]:
        return tuple(loader.construct_sequence(node))

    def flatten_mapping(loader: Any, node: Any) -> None:
        # A merge key copies a mapping's entries into another; merges of merges grow a few
        # lines into millions of entries. No recorder writes them: refuse them outright.
        for key, _ in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not accepted in a cassette", key.start_mark
                )
        base.flatten_mapping(loader, node)

    def construct_bytesio(loader: Any, node: Any) -> bytes:
        # Old cassettes pickled file-like request bodies; keep only the bytes they held. Any
        # other state (a number would make bytes(n) allocate n bytes) is not a recording.
        state = loader.construct_mapping(node, deep=True).get("state") or (b"",)
        data = state[0] if isinstance(state, list | tuple) and state else None
        if isinstance(data, str):
            return data.encode("utf-8", errors="surrogatepass")
        if isinstance(data, bytes):
            return data
        raise yaml.constructor.ConstructorError(
            None, None, "a BytesIO body must hold bytes or text", node.start_mark
        )

    loader: Any = type("CassetteLoader", (base,), {"flatten_mapping": flatten_mapping})
    tags = {
        "tag:yaml.org,2002:python/str": construct_str,
        "tag:yaml.org,2002:python/unicode": construct_str,
        "tag:yaml.org,2002:python/tuple": construct_tuple,
        "tag:yaml.org,2002:python/object/new:_io.BytesIO": construct_bytesio,
    }
    for tag, constructor in tags.items():
        loader.add_constructor(tag, constructor)
    return loader  # type: ignore[no-any-return]


def _load_yaml(text: str, name: str) -> Result[object, CassetteError]:
    loader = _loader()
    if loader is None:
        return Failure(CassetteError(name, "file", _INSTALL_HINT))
    import yaml

    try:
        return Success(yaml.load(text, Loader=loader))  # noqa: S506 - a safe loader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        problem = " ".join(str(part) for part in (error.context, error.problem) if part)
        return Failure(CassetteError(name, where, problem or "invalid YAML"))
    except Exception as error:  # YAMLError, RecursionError, ValueError, ...: never raised
        return Failure(CassetteError(name, "file", f"invalid YAML ({type(error).__name__})"))


class _Bad(Exception):
    """Internal: a structural problem at a place; turned into a CassetteError at the boundary."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def parse_cassette(
    data: object,
    name: str,
    *,
    base_path: str = DEFAULT_BASE_PATH,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> Result[tuple[Interaction, ...], CassetteError]:
    """The interactions of loaded cassette data (VCR format version 1), or where it is wrong.
    Recorded paths are made relative to ``base_path``; one outside it is an error, and so are
    response bodies adding up to more than ``max_decoded_bytes`` once decoded."""
    try:
        return Success(_interactions(data, _segments(base_path), max_decoded_bytes))
    except _Bad as bad:
        return Failure(CassetteError(name, bad.where, bad.problem))
    except Exception as error:  # a shape no check foresaw: still a value, never an exception
        return Failure(CassetteError(name, "document", f"unreadable ({type(error).__name__})"))


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(where, f"expected a mapping, found {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _interactions(data: object, base: tuple[str, ...], budget: int) -> tuple[Interaction, ...]:
    top = _mapping(data, "document")
    if "version" not in top:
        raise _Bad("version", "missing: not a VCR cassette (vcrpy writes version: 1)")
    if top["version"] != 1:
        raise _Bad("version", f"format version {top['version']!r} is not supported (only 1)")
    listed = top.get("interactions")
    if not isinstance(listed, list):
        raise _Bad("interactions", f"expected a list, found {_kind(listed)}")
    if len(listed) > MAX_INTERACTIONS:
        # A line "- *a" per interaction: a small file could otherwise make millions of them.
        raise _Bad("interactions", f"more than {MAX_INTERACTIONS} interactions ({len(listed)})")
    bodies = _Bodies(budget)
    found = []
    for i, item in enumerate(listed):
        where = f"interactions[{i}]"
        entry = _mapping(item, where)
        request = _request(entry.get("request"), f"{where}.request", base, bodies)
        response = _response(entry.get("response"), f"{where}.response", bodies)
        found.append(Interaction(request, response))
    return tuple(found)


class _Bodies:
    """The bodies loading makes, each made once per YAML value. An alias shares its anchor's
    value, so a body aliased thousands of times is one copy in memory, counted once against
    ``max_decoded_bytes``, where converting it at each alias would make a copy each time."""

    def __init__(self, budget: int) -> None:
        self.left = budget
        # By (id of the source value, how it was converted); the source is kept alive with the
        # body so that its id is not reused for another value.
        self._made: dict[tuple[int, str], tuple[object, bytes]] = {}
        self._counted: set[int] = set()

    def made(self, source: object, how: str, make: Callable[[int], bytes]) -> bytes:
        """``make(bytes left)`` the first time ``source`` is converted ``how``, else the same
        body again. ``make`` raises :class:`_Bad` for a body past what is left."""
        key = (id(source), how)
        if key not in self._made:
            body = make(self.left)
            if id(body) not in self._counted:
                self._counted.add(id(body))
                self.left -= len(body)
            self._made[key] = (source, body)
        return self._made[key][1]


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(where, f"expected text, found {_kind(value)}")
    return value


def _body(value: object, where: str, limit: int) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        encoded = value.encode("utf-8", errors="surrogatepass")
        if len(encoded) > limit:
            raise _Bad(where, _past_budget(limit))
        return encoded
    if isinstance(value, bytes):
        if len(value) > limit:
            raise _Bad(where, _past_budget(limit))
        return value
    if isinstance(value, list) and all(isinstance(part, bytes) for part in value):
        # An iterator body, as vcrpy records it. Its parts may be YAML aliases of one large
        # part: measured before they are joined.
        if sum(len(part) for part in value) > limit:
            raise _Bad(where, _past_budget(limit))
        return b"".join(value)
    raise _Bad(where, f"expected text or !!binary, found {_kind(value)}")


def _request(value: object, where: str, base: tuple[str, ...], bodies: _Bodies) -> RecordedRequest:
    request = _mapping(value, where)
    method = _text(request.get("method"), f"{where}.method").upper()
    uri = _text(request.get("uri"), f"{where}.uri")
    try:
        parts = urlsplit(uri)
    except ValueError as error:
        raise _Bad(f"{where}.uri", f"not a URL ({error})") from None
    segments = _segments(parts.path)
    if segments[: len(base)] != base:
        shown = "/" + "/".join(base)
        problem = (
            f"the path {parts.path or '/'} is not under the base path {shown} (pass the "
            "base_path the cassette was recorded under)"
        )
        raise _Bad(f"{where}.uri", problem)
    return RecordedRequest(
        method=method,
        uri=uri,
        segments=segments[len(base) :],
        query=tuple(sorted(parse_qsl(parts.query, keep_blank_values=True))),
        body=_stored(request.get("body"), f"{where}.body", bodies),
    )


def _stored(value: object, where: str, bodies: _Bodies) -> bytes | None:
    """A stored body as bytes (see :func:`_body`), made once per YAML value."""
    if value is None:
        return None
    return bodies.made(value, "stored", lambda left: _body(value, where, left) or b"")


def _headers(value: object, where: str) -> Headers:
    if value is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for key, values in _mapping(value, where).items():
        listed = values if isinstance(values, list) else [values]
        for item in listed:
            if not isinstance(item, str | int):
                raise _Bad(f"{where}.{key}", f"expected text, found {_kind(item)}")
            pairs.append((str(key), str(item)))
    return tuple(pairs)


def _status(response: Mapping[str, Any], where: str) -> tuple[int, str]:
    if "status" in response:
        status = _mapping(response["status"], f"{where}.status")
        code, message = status.get("code"), status.get("message") or ""
        place = f"{where}.status.code"
    else:  # httpx cassettes of vcrpy < 4.2 stored status_code and content
        code, message, place = response.get("status_code"), "", f"{where}.status"
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        raise _Bad(place, f"expected an HTTP status code, found {code!r}")
    return code, str(message)


def _past_budget(limit: int) -> str:
    return f"the bodies decode to more than max_decoded_bytes ({limit} bytes left)"


def _content_decoded(body: bytes, headers: Headers, where: str, limit: int) -> bytes:
    """The body as a client sees it after Content-Encoding (see the module docstring), at most
    ``limit`` bytes of it. Measured first, holding nothing: a body that would inflate past the
    limit is refused in a few pieces' worth of memory, however far past it would go."""
    codings = content_codings(headers)
    if not codings:
        return body  # already measured as it was stored
    size = decoded_size(body, codings, limit)
    decoded = size.bind(lambda _: decode_content(body, codings, limit))
    if not isinstance(decoded, Success):
        problem = decoded.failure()
        if problem.too_large:
            raise _Bad(f"{where}.body", _past_budget(limit))
        raise _Bad(f"{where}.body", f"the gzip/deflate body is corrupt: {problem.problem}")
    plain: bytes = decoded.unwrap()
    return plain


def _response(value: object, where: str, bodies: _Bodies) -> HttpResponse:
    response = _mapping(value, where)
    status, message = _status(response, where)
    headers = _headers(response.get("headers"), f"{where}.headers")
    if "body" in response:
        stored = _mapping(response["body"], f"{where}.body").get("string")
        raw = _stored(stored, f"{where}.body", bodies)
    else:
        raw = _stored(response.get("content"), f"{where}.content", bodies)
    raw = raw or b""
    codings = ", ".join(content_codings(headers))
    body = bodies.made(
        raw, f"decoded {codings}", lambda left: _content_decoded(raw, headers, where, left)
    )
    return HttpResponse(status=status, headers=headers, body=body, reason=message)

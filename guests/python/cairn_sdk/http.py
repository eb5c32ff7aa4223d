"""Outgoing HTTP for activities, over ``wasi:http``, with a small
``requests``-like surface::

    from cairn_sdk import http

    @app.activity("GetWeather")
    def get_weather(city):
        r = http.get("http://weather.internal:8080/now", params={"city": city}, timeout=5)
        r.raise_for_status()
        return r.json()

Available in the activities of a project built with WASI activities and
HTTP (``cairn.json``: ``{"activities": {"wasi": true, "http": true}}``).
The host sends a request only to hosts granted at deploy
(``cairn deploy --allow-http HOST``); any other host raises
:class:`CapabilityDeniedError` here, and the host fails the activity
attempt with ``CapabilityDenied`` naming the host even if the exception is
caught. Orchestrators send HTTP with durable HTTP (``context.call_http``).

``request(method, url, params=None, data=None, json=None, headers=None,
timeout=None)``, and ``get``, ``post``, ``put``, ``patch``, ``delete``,
``head``, return a :class:`Response`: ``status_code``, ``ok``, ``headers``
(case-insensitive), ``content`` (bytes), ``text``, ``json()``, ``url``,
``raise_for_status()``. Failures raise :class:`RequestException`
subclasses: :class:`ConnectionError`, :class:`Timeout`, :class:`HTTPError`
(from ``raise_for_status``); a denied host raises
:class:`CapabilityDeniedError`.
"""

import json as _json
from urllib.parse import urlencode, urlsplit

from .errors import CapabilityDeniedError, Failure

try:
    from componentize_py_types import Err
    from wit_world.imports import outgoing_handler as _handler
    from wit_world.imports import streams as _streams
    from wit_world.imports import wasi_http_types as _types

    AVAILABLE = True
except ImportError:  # a build without wasi:http (orchestrators, or "http" not asked for)
    AVAILABLE = False

__all__ = [
    "AVAILABLE",
    "CapabilityDeniedError",
    "ConnectionError",
    "HTTPError",
    "RequestException",
    "Response",
    "Timeout",
    "delete",
    "get",
    "head",
    "patch",
    "post",
    "put",
    "request",
]

_CHUNK = 4096


class RequestException(Failure):
    """A request that did not produce a response (or, for
    :class:`HTTPError`, produced an error status)."""

    def __init__(self, message, error_type=None, response=None):
        Failure.__init__(self, error_type or type(self).__name__, message)
        self.response = response


class ConnectionError(RequestException):  # noqa: A001 - the requests name
    """The host could not connect, or the connection broke."""


class Timeout(RequestException):
    """A timeout (``timeout=`` seconds) passed while connecting or waiting for bytes."""


class HTTPError(RequestException):
    """``raise_for_status()`` of a 4xx or 5xx response."""


class Headers(dict):
    """Response headers: a dict with case-insensitive lookups (repeated
    headers are joined with ``", "``)."""

    def __init__(self, pairs=()):
        super().__init__()
        self._lower = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._lower:
                original = self._lower[key]
                dict.__setitem__(self, original, f"{dict.__getitem__(self, original)}, {value}")
            else:
                self._lower[key] = name
                dict.__setitem__(self, name, value)

    def __getitem__(self, name):
        return dict.__getitem__(self, self._lower[name.lower()])

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._lower

    def get(self, name, default=None):
        return self[name] if name in self else default


class Response:
    """An HTTP response, read completely."""

    def __init__(self, url, status_code, headers, content):
        self.url = url
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def ok(self):
        return self.status_code < 400

    @property
    def encoding(self):
        ctype = self.headers.get("content-type", "")
        for part in ctype.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def text(self):
        return self.content.decode(self.encoding, errors="replace")

    def json(self, **kwargs):
        return _json.loads(self.content, **kwargs)

    def raise_for_status(self):
        if self.status_code >= 400:
            kind = "Client" if self.status_code < 500 else "Server"
            raise HTTPError(f"{self.status_code} {kind} Error for url: {self.url}", response=self)

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


def get(url, params=None, **kwargs):
    return request("GET", url, params=params, **kwargs)


def head(url, **kwargs):
    return request("HEAD", url, **kwargs)


def post(url, data=None, json=None, **kwargs):
    return request("POST", url, data=data, json=json, **kwargs)


def put(url, data=None, **kwargs):
    return request("PUT", url, data=data, **kwargs)


def patch(url, data=None, **kwargs):
    return request("PATCH", url, data=data, **kwargs)


def delete(url, **kwargs):
    return request("DELETE", url, **kwargs)


def request(method, url, params=None, data=None, json=None, headers=None, timeout=None):
    """Sends one request and reads the whole response."""
    if not AVAILABLE:
        raise RequestException(
            "outgoing HTTP is not available in this component: it works in activities of a project "
            'whose cairn.json asks for {"activities": {"wasi": true, "http": true}}; orchestrators '
            "use durable HTTP (context.call_http)",
            error_type="HttpUnavailable",
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise RequestException(f"not an http(s) URL: {url!r}", error_type="InvalidURL")
    query = parts.query
    if params:
        extra = urlencode(params, doseq=True)
        query = f"{query}&{extra}" if query else extra
    path = (parts.path or "/") + (f"?{query}" if query else "")

    body = b""
    header_pairs = []
    if json is not None:
        body = _json.dumps(json, separators=(",", ":")).encode()
        header_pairs.append(("content-type", "application/json"))
    elif isinstance(data, dict):
        body = urlencode(data, doseq=True).encode()
        header_pairs.append(("content-type", "application/x-www-form-urlencoded"))
    elif isinstance(data, str):
        body = data.encode()
    elif data is not None:
        body = bytes(data)
    given = {k.lower() for k in (headers or {})}
    header_pairs = [(k, v) for k, v in header_pairs if k not in given]
    for name, value in (headers or {}).items():
        header_pairs.append((str(name), str(value)))
    if body:
        header_pairs.append(("content-length", str(len(body))))

    try:
        fields = _types.Fields.from_list([(k, v.encode()) for k, v in header_pairs])
    except Err as e:
        raise RequestException(f"invalid header: {e.value}", error_type="InvalidHeader") from None
    req = _types.OutgoingRequest(fields)
    req.set_method(_method(method.upper()))
    req.set_scheme(_types.Scheme_Http() if scheme == "http" else _types.Scheme_Https())
    req.set_authority(parts.netloc)
    req.set_path_with_query(path)
    options = None
    if timeout is not None:
        ns = int(float(timeout) * 1_000_000_000)
        options = _types.RequestOptions()
        for setter in (options.set_connect_timeout, options.set_first_byte_timeout,
                       options.set_between_bytes_timeout):
            try:
                setter(ns)
            except Err:
                pass  # the host does not support this timeout
    outgoing_body = req.body()
    try:
        future = _handler.handle(req, options)
    except Err as e:
        _types.OutgoingBody.finish(outgoing_body, None)
        raise _error(e.value, url) from None
    if body:
        with outgoing_body.write() as stream:
            for i in range(0, len(body), _CHUNK):
                stream.blocking_write_and_flush(body[i:i + _CHUNK])
    _types.OutgoingBody.finish(outgoing_body, None)

    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise ConnectionError(f"{method} {url}: the response was lost")
    inner = outcome.value
    if isinstance(inner, Err):
        raise _error(inner.value, url)
    with inner.value as response:
        status = response.status()
        with response.headers() as h:
            pairs = [(k, v.decode("latin-1")) for k, v in h.entries()]
        incoming = response.consume()
        chunks = []
        with incoming.stream() as stream:
            while True:
                try:
                    chunk = stream.blocking_read(65536)
                except Err as e:
                    if isinstance(e.value, _streams.StreamError_Closed):
                        break
                    raise ConnectionError(f"{method} {url}: the response body broke off") from None
                chunks.append(chunk)
        _types.IncomingBody.finish(incoming).__exit__(None, None, None)
    return Response(url, status, Headers(pairs), b"".join(chunks))


def _method(name):
    known = {
        "GET": _types.Method_Get, "HEAD": _types.Method_Head, "POST": _types.Method_Post,
        "PUT": _types.Method_Put, "DELETE": _types.Method_Delete, "CONNECT": _types.Method_Connect,
        "OPTIONS": _types.Method_Options, "TRACE": _types.Method_Trace, "PATCH": _types.Method_Patch,
    }
    cls = known.get(name)
    return cls() if cls else _types.Method_Other(name)


def _error(code, url):
    name = type(code).__name__.removeprefix("ErrorCode_")
    if name == "HttpRequestDenied":
        host = urlsplit(url).netloc
        return CapabilityDeniedError(
            f"HTTP to {host} is not granted to this component; grant it at deploy with "
            f"`cairn deploy --allow-http {host}`",
            {"host": host},
        )
    if "Timeout" in name:
        return Timeout(f"{url}: {name}")
    detail = getattr(code, "value", None)
    text = f"{url}: {name}" + (f" ({detail})" if detail is not None else "")
    if name.startswith(("Connection", "Destination", "Dns", "Tls")):
        return ConnectionError(text)
    return RequestException(text)

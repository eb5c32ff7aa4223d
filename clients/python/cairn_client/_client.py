"""The client: one class over the Durable Functions HTTP API of `cairn serve`."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._errors import CairnError, NotFound, WaitTimeout, error_for

#: Where the Durable Functions routes live under the server's base URL.
DURABLE_PATH = "/runtime/webhooks/durabletask"

#: Statuses after which an instance never changes again (until it is
#: restarted, rewound or purged).
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})

#: Longest wait the server grants a start with `?timeout=` (seconds).
SERVER_MAX_WAIT_S = 600.0

_CONTINUATION = "x-ms-continuation-token"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class InstanceStatus:
    """An orchestration instance's status document (`GET /instances/{id}`).

    `input`, `output` and `custom_status` are decoded JSON values. A Failed
    instance's `output` is the failure message (`"ErrorType: Message"`) and
    `failure_details` the structured failure (`{"ErrorType", "Message",
    "Details"}`); a Terminated instance's `output` is the reason.
    """

    name: str
    instance_id: str
    runtime_status: str
    input: Any = None
    output: Any = None
    custom_status: Any = None
    created_time: datetime | None = None
    last_updated_time: datetime | None = None
    failure_details: dict[str, Any] | None = None
    #: Only with `show_history=True`.
    history_events: list[dict[str, Any]] | None = None
    #: The document as the server sent it.
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        """Completed, Failed, Terminated or Canceled."""
        return self.runtime_status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> InstanceStatus:
        return cls(
            name=doc.get("name", ""),
            instance_id=doc.get("instanceId", ""),
            runtime_status=doc.get("runtimeStatus", ""),
            input=doc.get("input"),
            output=doc.get("output"),
            custom_status=doc.get("customStatus"),
            created_time=_parse_time(doc.get("createdTime")),
            last_updated_time=_parse_time(doc.get("lastUpdatedTime")),
            failure_details=doc.get("failureDetails"),
            history_events=doc.get("historyEvents"),
            raw=doc,
        )


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The API never redirects: a 3xx is an error (and the API key is not
    sent on to wherever it points)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


def _time_arg(value: datetime | str) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class CairnClient:
    """A client for `cairn serve` (and other servers of the Durable Functions
    HTTP API).

    `base_url` is the server's root (`http://127.0.0.1:7071`), without the
    `/runtime/webhooks/durabletask` part. `api_key` is sent as the
    `x-functions-key` header. `timeout` bounds each request (seconds); waits
    that are longer extend it as needed. HTTPS certificates are verified
    (`ssl_context` replaces the default context, e.g. to trust a private CA).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:7071",
        api_key: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        # No proxies from the environment: the API key is not sent through
        # one unless the caller installs an opener itself.
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirects()]
        if parsed.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl))
        self._opener = urllib.request.build_opener(*handlers)

    # ---- transport ----------------------------------------------------

    def _url(self, path: str, query: dict[str, Any] | None = None) -> str:
        # Cairn's own routes start with /api; the rest are Durable Functions'.
        url = self.base_url + (path if path.startswith("/api/") else DURABLE_PATH + path)
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        return url

    def _request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        has_body: bool = False,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> _Reply:
        all_headers = {"Accept": "application/json"}
        if self.api_key is not None:
            all_headers["x-functions-key"] = self.api_key
        data = None
        if has_body:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        request = urllib.request.Request(self._url(path, query), data=data, headers=all_headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout or self.timeout) as response:
                return _Reply(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    response.read(),
                )
        except urllib.error.HTTPError as e:
            raise error_for(e.code, e.read(), e.headers.get("Content-Type")) from None
        except urllib.error.URLError as e:
            raise CairnError(f"{method} {path}: cannot reach {self.base_url}: {e.reason}") from e
        except TimeoutError as e:
            raise CairnError(f"{method} {path}: no answer from {self.base_url} within the timeout") from e

    @staticmethod
    def _id(instance_id: str) -> str:
        if not isinstance(instance_id, str) or not instance_id:
            raise ValueError("an instance id is a non-empty string")
        return urllib.parse.quote(instance_id, safe="")

    # ---- operations ---------------------------------------------------

    def start(
        self,
        name: str,
        input: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> str:
        """Starts orchestrator `name` with `input` (any JSON value); returns
        the instance id (generated by the server unless given). Raises
        `Conflict` when `instance_id` is taken by an unfinished instance,
        `BadRequest` for an unknown orchestrator or an invalid id."""
        path = f"/orchestrators/{urllib.parse.quote(name, safe='')}"
        if instance_id is not None:
            path += "/" + self._id(instance_id)
        reply = self._request("POST", path, {"version": version}, input, has_body=input is not None)
        return reply.json()["id"]

    def start_and_wait(
        self,
        name: str,
        input: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
        timeout_s: float = 60.0,
    ) -> InstanceStatus:
        """Starts `name` and waits (at most `timeout_s` seconds) until it
        finishes, with the server's wait-for-completion (`?timeout=` on the
        start). Returns the final status (with the output); raises
        `WaitTimeout` when the instance is still running at the deadline."""
        deadline = time.monotonic() + timeout_s
        # The id is chosen here so that the status can be read afterwards:
        # a completed wait answers with the bare output.
        instance_id = instance_id if instance_id is not None else uuid.uuid4().hex
        path = f"/orchestrators/{urllib.parse.quote(name, safe='')}/{self._id(instance_id)}"
        server_wait = min(timeout_s, SERVER_MAX_WAIT_S)
        self._request(
            "POST",
            path,
            {"version": version, "timeout": f"{server_wait:g}"},
            input,
            has_body=input is not None,
            timeout=self.timeout + server_wait,
        )
        return self.wait(instance_id, max(0.0, deadline - time.monotonic()))

    def status(
        self,
        instance_id: str,
        show_input: bool = False,
        show_history: bool = False,
    ) -> InstanceStatus | None:
        """The instance's status, or None when there is no such instance."""
        query = {"showInput": str(show_input).lower()}
        if show_history:
            query["showHistory"] = "true"
            query["showHistoryOutput"] = "true"
        try:
            reply = self._request("GET", f"/instances/{self._id(instance_id)}", query)
        except CairnError as e:
            if e.status == 404:
                return None
            raise
        return InstanceStatus.from_json(reply.json())

    def wait(self, instance_id: str, timeout_s: float = 60.0) -> InstanceStatus:
        """Waits until the instance is Completed, Failed, Terminated or
        Canceled and returns that status. The server holds the request until
        the instance finishes (`GET /api/instances/{id}/wait`, at most 300 s
        per request; only this instance's completion wakes it). Raises
        `NotFound` when there is no such instance, `WaitTimeout` after
        `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            slice_s = min(left, 300.0)
            reply = self._request(
                "GET",
                f"/api/instances/{self._id(instance_id)}/wait",
                {"timeout": f"{slice_s:.3f}"},
                timeout=slice_s + self.timeout,
            )
            current = InstanceStatus.from_json(reply.json())
            if current.is_terminal:
                return current
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"instance {instance_id!r} is still {current.runtime_status} after {timeout_s:g} s",
                    last_status=current,
                )

    def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Sends event `event_name` with `data` (any JSON value). Raises
        `NotFound`, or `Conflict` (410) when the instance has finished."""
        path = f"/instances/{self._id(instance_id)}/raiseEvent/{urllib.parse.quote(event_name, safe='')}"
        self._request("POST", path, body=data, has_body=True)

    def _action(self, instance_id: str, action: str, reason: str | None) -> None:
        self._request("POST", f"/instances/{self._id(instance_id)}/{action}", {"reason": reason})

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Terminates the instance (applied by the engine right after).
        Raises `NotFound`, or `Conflict` (410) when it has finished."""
        self._action(instance_id, "terminate", reason)

    def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Suspends the instance (applied by the engine right after)."""
        self._action(instance_id, "suspend", reason)

    def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resumes a suspended instance (applied by the engine right after)."""
        self._action(instance_id, "resume", reason)

    def query_page(
        self,
        runtime_status: str | list[str] | None = None,
        created_from: datetime | str | None = None,
        created_to: datetime | str | None = None,
        prefix: str | None = None,
        top: int | None = None,
        show_input: bool = False,
        continuation_token: str | None = None,
    ) -> tuple[list[InstanceStatus], str | None]:
        """One page of instances and the token of the next page (None on
        the last page)."""
        if isinstance(runtime_status, (list, tuple, set, frozenset)):
            runtime_status = ",".join(runtime_status)
        query = {
            "runtimeStatus": runtime_status,
            "createdTimeFrom": _time_arg(created_from) if created_from is not None else None,
            "createdTimeTo": _time_arg(created_to) if created_to is not None else None,
            "instanceIdPrefix": prefix,
            "top": top,
            "showInput": "true" if show_input else None,
        }
        headers = {_CONTINUATION: continuation_token} if continuation_token else None
        reply = self._request("GET", "/instances", query, headers=headers)
        items = [InstanceStatus.from_json(doc) for doc in reply.json() or []]
        return items, reply.headers.get(_CONTINUATION) or None

    def query(
        self,
        runtime_status: str | list[str] | None = None,
        created_from: datetime | str | None = None,
        created_to: datetime | str | None = None,
        prefix: str | None = None,
        top: int | None = None,
        show_input: bool = False,
    ) -> Iterator[InstanceStatus]:
        """Every matching instance, following the `x-ms-continuation-token`
        header page by page (`top` is the page size). A generator: each page
        is requested (and may raise) as the iteration reaches it."""
        token = None
        while True:
            items, token = self.query_page(
                runtime_status, created_from, created_to, prefix, top, show_input, token
            )
            yield from items
            if token is None:
                return

    def purge(self, instance_id: str) -> int:
        """Deletes a finished instance and its history; returns the number
        deleted (1). Raises `NotFound`, or `Conflict` (412) when the
        instance has not finished."""
        reply = self._request("DELETE", f"/instances/{self._id(instance_id)}")
        return int((reply.json() or {}).get("instancesDeleted", 0))

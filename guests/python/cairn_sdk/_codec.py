"""JSON in and out: inputs, outputs, event payloads and custom status are
JSON documents. Output is compact (``{"a":1}``), so what a status query
shows is what the orchestrator set."""

import dataclasses
import datetime
import json

from .errors import Failure


def _default(value):
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(value, what="value"):
    """``value`` as JSON text; a value that does not serialize is a
    ``SerializationError`` failure."""
    try:
        return json.dumps(value, separators=(",", ":"), default=_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Failure("SerializationError", f"{what} cannot be serialized to JSON: {e}") from None


def decode(text, what="input"):
    """JSON text as a Python value; text that is not JSON is an
    ``InvalidInput`` failure."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise Failure("InvalidInput", f"{what} is not valid JSON: {e}") from None

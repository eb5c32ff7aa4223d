"""A small typed client for Cairn's HTTP API (the Durable Functions routes
under `/runtime/webhooks/durabletask`). Standard library only.

    from cairn_client import CairnClient

    client = CairnClient("http://127.0.0.1:7071")
    done = client.start_and_wait("HelloCities", timeout_s=30)
    print(done.runtime_status, done.output)
"""

from ._client import TERMINAL_STATUSES, CairnClient, InstanceStatus
from ._errors import (
    BadRequest,
    CairnError,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    WaitTimeout,
)

__all__ = [
    "TERMINAL_STATUSES",
    "BadRequest",
    "CairnClient",
    "CairnError",
    "Conflict",
    "Forbidden",
    "InstanceStatus",
    "NotFound",
    "Unauthorized",
    "WaitTimeout",
]

__version__ = "0.1.0"

"""The host's side of the contract: the bindings componentize-py generates
from the Cairn WIT (world ``cairn:durable/app-entities``).

Everything else in the SDK reaches the host through this module, so that it
is the only place that names the generated ``wit_world`` package (and the
only thing the SDK's own unit tests replace with a fake).
"""

from componentize_py_types import Err, Ok  # noqa: F401  (re-exported)
from wit_world.imports import activity_context, entity_context, orchestration  # noqa: F401

try:
    # World app-entities (every build but the activity part of a two-part
    # project, whose world app-io does not export entities).
    from wit_world.exports.entity import OperationOutcome  # noqa: F401
except ImportError:
    OperationOutcome = None
try:
    from wit_world.imports.types import (  # noqa: F401
        Failure as WitFailure,
        FunctionInfo,
        FunctionKind,
        LogLevel as WitLogLevel,
        RetryPolicy as WitRetryPolicy,
    )
except ImportError:
    # World app-io (activities with wasi:http) has two `types` interfaces:
    # componentize-py names ours after its package.
    from wit_world.imports.cairn_durable_types import (  # noqa: F401
        Failure as WitFailure,
        FunctionInfo,
        FunctionKind,
        LogLevel as WitLogLevel,
        RetryPolicy as WitRetryPolicy,
    )

"""The component's exports (``Functions``, ``Entity``) and the sandbox around a run.

Python components are built with ``componentize-py --stub-wasi``: they
import no WASI at all, so the deploy-time check for orchestrators passes and
nothing can reach a clock, an entropy source, a file or a socket. Any WASI
call would trap (end the instance with an unhelpful backtrace), so while a
function runs the SDK:

- sends ``print()`` (``sys.stdout``, ``sys.stderr``) to the host's log —
  replay-safe in orchestrators, where it is suppressed while replaying;
- holds entities to the orchestrators' rules (an entity is sandboxed like
  an orchestrator);
- replaces the clock, ``time.sleep``, ``os.urandom``, ``uuid.uuid1/4`` and
  file functions with ones that raise: in an orchestrator a
  :class:`NonDeterministicCallError` naming the context's deterministic
  equivalent, in an activity a :class:`WasiUnavailableError`;
- seeds ``random`` per orchestration execution (per task in activities),
  so ``random.random()`` is replay-stable in orchestrators;
- refuses to import modules that were not imported when the component was
  built (the bundled standard library is only reachable at build time)
  with a ``ModuleNotFoundError`` that says so;
- makes ``socket`` connections and host-name lookups (and so
  ``http.client`` and ``urllib``) raise :class:`NetworkAccessError`, which
  says that the sandbox forbids network access and to use durable HTTP
  (``context.call_http``) instead. Unguarded, they fail with a puzzling
  ``LookupError: unknown encoding: idna``.

Calls that do not go through a module attribute the SDK can replace (for
example ``datetime.datetime.now()``, or ``from time import time`` bound at
import) still trap: the instance fails loudly with error type ``Trap``.
"""

import builtins
import errno
import io
import linecache
import os
import random
import socket
import sys
import time
import uuid

import _imp

from . import _host
from ._build import ROLE, ROLE_ACTIVITIES, ROLE_ORCHESTRATORS
from ._codec import decode, encode
from ._levels import to_wit
from .activity import ActivityContext
from . import app as _app
from .app import ACTIVITY, ENTITY, ORCHESTRATOR, lookup, lookup_entity, registered, registered_entities
from .entity import run_entity
from .errors import (
    CapabilityDeniedError,
    NetworkAccessError,
    NonDeterministicCallError,
    WasiUnavailableError,
    details_to_json,
    failure_from_exception,
)
from .orchestration import OrchestrationContext, begin_run, drive, unawaited_failure

__all__ = ["Entity", "Functions", "activity_context", "current_kind"]

_INFO = "info"
_WARN = "warn"

# What is running now: ORCHESTRATOR, ACTIVITY, ENTITY or None.
_kind = None
_activity_context = ActivityContext()


def current_kind():
    """``"orchestrator"``, ``"activity"`` or ``"entity"`` while a function
    or an entity operation runs, else ``None``."""
    return _kind


def activity_context():
    """The :class:`ActivityContext` of the activity that is running (for
    activities written as ``fn(input)``)."""
    if _kind != ACTIVITY:
        raise RuntimeError("activity_context() is only available while an activity runs")
    return _activity_context


# ---- print() to the host's log ------------------------------------------


class _LogStream(io.TextIOBase):
    """A text stream whose lines go to the host's log."""

    def __init__(self, level, name):
        super().__init__()
        self._level = level
        self._name = name
        self._pending = ""

    @property
    def encoding(self):
        return "utf-8"

    @property
    def name(self):
        return self._name

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            _emit(self._level, line)
        return len(text)

    def flush(self):
        if self._pending:
            line, self._pending = self._pending, ""
            _emit(self._level, line)


def _emit(level, line):
    if _kind == ORCHESTRATOR:
        _host.orchestration.log(to_wit(level), line)
    elif _kind == ACTIVITY:
        _host.activity_context.log(to_wit(level), line)
    elif _kind == ENTITY:
        _host.entity_context.log(to_wit(level), line)
    # Otherwise no function is running and there is nowhere to write.


_stdout = _LogStream(_INFO, "<stdout>")
_stderr = _LogStream(_WARN, "<stderr>")


# ---- calls that would trap ----------------------------------------------

_NO_WASI = (
    "Python components are built without WASI (componentize-py --stub-wasi): "
    "they have no clock, entropy source, files or sockets. Do such work in a "
    "component written in a language that has them, or pass values in as input"
)


def _blocked(what, hint):
    if _kind == ORCHESTRATOR:
        return NonDeterministicCallError(
            f"{what} is not replay-safe in an orchestrator: use {hint}"
        )
    if _kind == ENTITY:
        return NonDeterministicCallError(
            f"{what} is not available in an entity (entities are deterministic, sandboxed like "
            f"orchestrators): use {hint}"
        )
    return WasiUnavailableError(f"{what} is not available: {_NO_WASI}")


class _FileAccessError(WasiUnavailableError, PermissionError):
    """Raised by file functions: also a ``PermissionError``, so code that
    probes for files (``os.path.exists``) sees "no access" and goes on."""

    def __init__(self, message):
        WasiUnavailableError.__init__(self, message)


def _refuse(what, hint):
    def refused(*args, **kwargs):
        raise _blocked(what, hint)

    refused.__name__ = what.split("(")[0].rsplit(".", 1)[-1]
    refused.__qualname__ = refused.__name__
    return refused


def _refuse_without_args(original, what, hint, needed):
    """Refuses ``original`` when called with fewer than ``needed``
    positional arguments (without them it reads the clock)."""

    def guarded(*args, **kwargs):
        if len(args) < needed or (len(args) == needed and args[needed - 1] is None):
            raise _blocked(what, hint)
        return original(*args, **kwargs)

    guarded.__name__ = getattr(original, "__name__", "guarded")
    return guarded


def _refuse_files(what):
    def refused(*args, **kwargs):
        if _kind in (ORCHESTRATOR, ENTITY):
            raise _FileAccessError(f"{what} is not allowed in an {_kind}: do I/O in an activity")
        raise _FileAccessError(f"{what} is not available: {_NO_WASI}")

    refused.__name__ = what.split("(")[0].rsplit(".", 1)[-1]
    return refused


_DURABLE_HTTP = (
    "send HTTP requests from the orchestrator with durable HTTP, "
    "`context.call_http(method, uri, content, headers)` (the host sends the request and records the "
    "response; grant the hosts at deploy with `cairn deploy --allow-http HOST`)"
)


def _refuse_network(what):
    def refused(*args, **kwargs):
        if _kind == ORCHESTRATOR:
            where = "an orchestrator"
            instead = f"{_DURABLE_HTTP}, or do the I/O in an activity"
        elif _kind == ENTITY:
            where = "an entity"
            instead = "do the I/O in an activity of an orchestration the entity starts"
        elif ROLE == ROLE_ACTIVITIES:
            where = "a Python activity (sockets are not granted)"
            instead = (
                "use the SDK's HTTP client, `from cairn_sdk import http; http.get(url)` (over wasi:http, "
                "hosts granted with `cairn deploy --allow-http HOST`)"
            )
        else:
            where = "a Python component (built without WASI)"
            instead = (
                f"{_DURABLE_HTTP}, or call an activity written in a language with WASI HTTP "
                "(e.g. Rust) deployed with `cairn deploy --allow-http HOST`"
            )
        raise NetworkAccessError(
            f"{what}: the Cairn sandbox forbids network access in {where}; {instead}"
        )

    refused.__name__ = what.split("(")[0].rsplit(".", 1)[-1]
    return refused


_random_seed = random.seed


def _seed_refusing_entropy(a=None, version=2):
    if a is None:
        raise _blocked(
            "random.seed() without a value",
            "random as it is (it is seeded per orchestration execution and replay-safe), or seed it with a value",
        )
    return _random_seed(a, version)


_NOW = "context.current_utc_datetime"
_UUID = "context.new_uuid()"


def _install_guards():
    if ROLE != ROLE_ACTIVITIES:
        _install_wasi_guards()
    _install_network_guards()

    # Formatting a warning or a traceback reads source lines from files.
    linecache.updatecache = lambda *args, **kwargs: []
    linecache.checkcache = lambda *args, **kwargs: None

    sys.meta_path.insert(0, _NoRuntimeImports)


def _install_wasi_guards():
    for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
                 "process_time", "process_time_ns", "thread_time", "thread_time_ns"):
        if hasattr(time, name):
            setattr(time, name, _refuse(f"time.{name}()", _NOW))
    time.sleep = _refuse("time.sleep()", "a durable timer: context.create_timer(...)")
    time.localtime = _refuse_without_args(time.localtime, "time.localtime()", _NOW, 1)
    time.gmtime = _refuse_without_args(time.gmtime, "time.gmtime()", _NOW, 1)
    time.ctime = _refuse_without_args(time.ctime, "time.ctime()", _NOW, 1)
    time.asctime = _refuse_without_args(time.asctime, "time.asctime()", _NOW, 1)
    time.strftime = _refuse_without_args(time.strftime, "time.strftime() without a time", _NOW, 2)

    os.urandom = _refuse("os.urandom()", _UUID)
    if hasattr(os, "getrandom"):
        os.getrandom = _refuse("os.getrandom()", _UUID)
    uuid.uuid4 = _refuse("uuid.uuid4()", _UUID)
    uuid.uuid1 = _refuse("uuid.uuid1()", _UUID)
    random.seed = _seed_refusing_entropy

    builtins.open = io.open = _refuse_files("open()")
    for name in ("open", "stat", "lstat", "listdir", "scandir", "getcwd", "mkdir", "makedirs",
                 "remove", "unlink", "rename", "replace", "rmdir", "chdir", "access"):
        if hasattr(os, name):
            setattr(os, name, _refuse_files(f"os.{name}()"))


def _install_network_guards():
    # Every connection and name lookup goes through these (`http.client`
    # and `urllib` through `socket.create_connection`).
    for name in ("create_connection", "create_server", "getaddrinfo", "gethostbyname",
                 "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"):
        if hasattr(socket, name):
            setattr(socket, name, _refuse_network(f"socket.{name}()"))
    for name in ("connect", "connect_ex", "bind", "sendto"):
        setattr(socket.socket, name, _refuse_network(f"socket.socket.{name}()"))


class _NoRuntimeImports:
    """A meta path finder that refuses what would need the (stubbed) file
    system: modules not imported when the component was built."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in sys.builtin_module_names or _imp.is_frozen(name):
            return None
        raise ModuleNotFoundError(
            f"module {name!r} cannot be imported while a function runs: a Python component only "
            f"contains the modules imported when it was built. Import {name!r} at the top of "
            "one of the component's modules",
            name=name,
        )

    @staticmethod
    def invalidate_caches():
        pass


_guards_installed = False


def _begin(kind, seed=None):
    global _kind, _guards_installed
    if not _guards_installed:
        _install_guards()
        _guards_installed = True
    _kind = kind
    sys.stdout = _stdout
    sys.stderr = _stderr
    # `random` is replay-stable: seeded by what identifies this execution
    # (this task, in an activity).
    if kind == ORCHESTRATOR:
        o = _host.orchestration
        _random_seed(f"cairn:{o.instance_id()}:{o.execution_id()}", 2)
    elif kind == ENTITY:
        _random_seed(seed, 2)
    elif ROLE == ROLE_ACTIVITIES:
        # Real entropy (WASI random): the build-time snapshot's state must
        # not repeat in every instance.
        _random_seed(None, 2)
    else:
        a = _host.activity_context
        _random_seed(f"cairn:{a.idempotency_key()}:{a.attempt()}", 2)


def _end():
    global _kind
    try:
        _stdout.flush()
        _stderr.flush()
    finally:
        _kind = None


# ---- the export ---------------------------------------------------------


def _call(f, context, input_value):
    if f.arity >= 2:
        return f.fn(context, input_value)
    if f.arity == 1:
        return f.fn(context if f.kind == ORCHESTRATOR else input_value)
    return f.fn()


def _run_orchestrator(f, input_json):
    begin_run()
    context = OrchestrationContext(input_json, generator=f.generator)
    input_value = context.get_input() if f.arity >= 2 else None
    result = _call(f, context, input_value)
    if f.generator or _is_generator(result):
        if not f.generator:
            raise TypeError(
                f"orchestrator {f.name!r} returned a generator, but is not a generator "
                "function: its context returns results, not tasks"
            )
        result = drive(result)
    # Only an orchestrator that returned can have forgotten a task; an
    # exception propagates as it is.
    unawaited = unawaited_failure()
    if unawaited is not None:
        raise unawaited
    if context._continued:
        return None
    return result


def _is_generator(value):
    return hasattr(value, "send") and hasattr(value, "throw") and hasattr(value, "__next__")


def _run_activity(f, input_json):
    input_value = decode(input_json, "the activity input")
    return _call(f, _activity_context, input_value)


class Functions:
    """The ``cairn:durable/functions`` export. The component's main module
    must expose it: ``from cairn_sdk import Functions``."""

    def list(self):
        return [
            _host.FunctionInfo(
                f.name,
                _host.FunctionKind.ORCHESTRATOR if f.kind == ORCHESTRATOR else _host.FunctionKind.ACTIVITY,
            )
            for f in registered()
            if _served(f)
        ]

    def run(self, name, input):
        f = lookup(name)
        if f is None or not _served(f):
            raise _host.Err(_host.WitFailure("NotFound", f"this component has no function named {name!r}", None))
        try:
            _begin(f.kind)
            if f.kind == ORCHESTRATOR:
                value = _run_orchestrator(f, input)
            else:
                value = _run_activity(f, input)
            return encode(value, f"the return value of {name!r}")
        except BaseException as exc:  # noqa: BLE001 - every failure crosses typed
            if ROLE == ROLE_ACTIVITIES and f.kind == ACTIVITY:
                exc = _file_denial(exc) or exc
            raise _host.Err(_to_wit_failure(exc)) from None
        finally:
            _end()


def _served(f):
    """Whether this build of the component serves ``f``: a project built in
    two parts lists its orchestrators (and entities) in one and its
    activities in the other."""
    if ROLE == ROLE_ACTIVITIES:
        return f.kind == ACTIVITY
    if ROLE == ROLE_ORCHESTRATORS:
        return f.kind in (ORCHESTRATOR, ENTITY)
    return True


class Entity(_app.Entity):
    """The ``cairn:durable/entity`` export (and, as ``Entity.create``, the
    Durable Functions registration of an entity function). The component's
    main module exposes it: ``from cairn_sdk import Functions, Entity``
    (importing ``cairn_sdk`` from a main module named ``main`` also sets
    it there when the module does not)."""

    def entities(self):
        return [f.name for f in registered_entities() if _served(f)]

    def run_operation(self, name, key, operation, input, state):
        f = lookup_entity(name)
        if f is None or not _served(f):
            raise _host.Err(_host.WitFailure("NotFound", f"this component has no entity named {name!r}", None))
        try:
            _begin(ENTITY, f"cairn:entity:{name}@{key}:{operation}:{_host.entity_context.current_time()}")
            new_state, output = run_entity(f.fn, name, key, operation, input, state)
            return _host.OperationOutcome(new_state, output)
        except BaseException as exc:  # noqa: BLE001 - every failure crosses typed
            raise _host.Err(_to_wit_failure(exc)) from None
        finally:
            _end()


# "No such file" and the refusals (WASI numbers them its own way: use the
# names). WASI's "not capable" is 76.
_REFUSED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EBADF, getattr(errno, "ENOTCAPABLE", 76)}
_FILE_ERRNOS = {errno.ENOENT, errno.ENOTDIR} | _REFUSED_ERRNOS


def _file_denial(exc):
    """A :class:`CapabilityDeniedError` for an uncaught ``OSError`` about a
    path outside every directory granted to the component (WASI resolves
    paths against the preopened directories only), or about writing into a
    read-only grant; ``None`` for any other exception."""
    if not isinstance(exc, OSError) or exc.errno not in _FILE_ERRNOS:
        return None
    for name in (exc.filename, exc.filename2):
        if not isinstance(name, (str, bytes, os.PathLike)):
            continue
        path = os.path.abspath(os.fsdecode(name))
        granted = _granted_root(path)
        if granted is None:
            return CapabilityDeniedError(
                f"{path}: no directory containing it is granted to this component; grant one at deploy "
                "with `cairn deploy --allow-dir HOST_DIR[:GUEST_DIR][:ro|:rw]`",
                {"path": path},
            )
        if exc.errno in _REFUSED_ERRNOS:
            return CapabilityDeniedError(
                f"{path}: {exc.strerror or 'not permitted'} (the directory {granted} is granted read-only? "
                "grant it with `:rw` to write)",
                {"path": path, "granted": granted},
            )
    return None


def _granted_root(path):
    """The nearest ancestor of ``path`` (itself included) that the component
    can see, or ``None`` when no preopened directory contains it."""
    current = path
    while True:
        try:
            os.stat(current)
            return current
        except OSError:
            pass
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _to_wit_failure(exc):
    try:
        error_type, message, details = failure_from_exception(exc)
        return _host.WitFailure(error_type, message, details_to_json(details))
    except BaseException:  # noqa: BLE001 - a failure must always come out
        return _host.WitFailure(type(exc).__name__, "(the exception could not be described)", None)


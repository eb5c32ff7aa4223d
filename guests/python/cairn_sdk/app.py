"""Registering a component's functions.

::

    import cairn_sdk

    app = cairn_sdk.App()

    @app.orchestrator("HelloCities")
    def hello_cities(context):
        ...

    @app.activity("SayHello")
    def say_hello(name):
        return f"Hello {name}!"

The component's main module then exports them with
``from cairn_sdk import Functions``.

Registration happens when the component is built (componentize-py runs the
module's top level then), so a duplicate or invalid name fails the build.
"""

import inspect

__all__ = ["App", "DFApp", "Orchestrator", "Activity", "ORCHESTRATOR", "ACTIVITY", "ENTITY"]

ORCHESTRATOR = "orchestrator"
ACTIVITY = "activity"
ENTITY = "entity"

# Every App ever created, in creation order; the component serves the
# functions of all of them.
_APPS = []


class _Function:
    __slots__ = ("name", "kind", "fn", "arity", "generator")

    def __init__(self, name, kind, fn):
        self.name = name
        self.kind = kind
        self.fn = fn
        self.arity = _arity(fn)
        self.generator = _is_generator_function(fn)


def _arity(fn):
    """How many positional arguments ``fn`` takes, capped at 2."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return min(n, 2)


def _is_generator_function(fn):
    return inspect.isgeneratorfunction(inspect.unwrap(fn))


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"a function name must be a non-empty string, not {name!r}")
    if any(c in name for c in "/\\#?") or any(ord(c) < 32 for c in name):
        raise ValueError(f"invalid function name {name!r}")
    return name


def _check_entity_name(name):
    _check_name(name)
    if "@" in name:
        raise ValueError(f"an entity name may not contain '@' (entity ids are name@key): {name!r}")
    return name


class App:
    """A set of orchestrators, activities and entities served by the component.

    A component may create several (one per module, say); it serves all of
    their functions, and a name may be registered only once.
    """

    def __init__(self, **_ignored):
        self._functions = {}
        self._entities = {}
        _APPS.append(self)

    # ---- registration -------------------------------------------------

    def add(self, kind, name, fn):
        """Registers ``fn`` as the orchestrator, activity or entity ``name``.
        Entities have their own names: an entity may share its name with
        an orchestrator or an activity."""
        if kind not in (ORCHESTRATOR, ACTIVITY, ENTITY):
            raise ValueError(f"kind must be {ORCHESTRATOR!r}, {ACTIVITY!r} or {ENTITY!r}")
        if not callable(fn):
            raise TypeError(f"{name!r}: {fn!r} is not callable")
        if kind == ENTITY:
            _check_entity_name(name)
            for app in _APPS:
                if name in app._entities:
                    raise ValueError(f"entity {name!r} is registered twice")
            self._entities[name] = _Function(name, kind, fn)
            return fn
        _check_name(name)
        for app in _APPS:
            if name in app._functions:
                raise ValueError(f"function {name!r} is registered twice")
        self._functions[name] = _Function(name, kind, fn)
        return fn

    def _decorator(self, kind, name):
        # Supports @app.orchestrator, @app.orchestrator("Name") and
        # @app.orchestrator(name="Name").
        if callable(name):
            fn = name
            return self.add(kind, getattr(fn, "__name__", None), fn)

        def register(fn):
            return self.add(kind, name if name is not None else getattr(fn, "__name__", None), fn)

        return register

    def orchestrator(self, name=None):
        """Decorator: registers an orchestrator, called as ``fn(context)`` or
        ``fn(context, input)``. A generator function is driven in the
        Durable Functions style (``result = yield context.call_activity(...)``).
        The name defaults to the function's name."""
        return self._decorator(ORCHESTRATOR, name)

    def activity(self, name=None):
        """Decorator: registers an activity, called as ``fn(input)`` or
        ``fn(context, input)`` (``context`` an :class:`ActivityContext`).
        The name defaults to the function's name."""
        return self._decorator(ACTIVITY, name)

    def entity(self, name=None):
        """Decorator: registers an entity function, called as
        ``fn(context)`` (a :class:`~cairn_sdk.DurableEntityContext`) for
        each operation. The name defaults to the function's name and may
        not contain ``@``."""
        return self._decorator(ENTITY, name)

    # ---- Durable Functions (Python v2 programming model) spellings -----

    def orchestration_trigger(self, context_name=None, orchestration=None):
        """``@app.orchestration_trigger(context_name="context")``: registers
        an orchestrator under ``orchestration`` or the function's name (or
        the name given with :meth:`function_name`)."""

        def register(fn):
            return self.add(ORCHESTRATOR, orchestration or getattr(fn, "_cairn_function_name", fn.__name__), fn)

        return register

    def activity_trigger(self, input_name=None, activity=None):
        """``@app.activity_trigger(input_name="city")``: registers an activity
        under ``activity`` or the function's name (or the name given with
        :meth:`function_name`)."""

        def register(fn):
            return self.add(ACTIVITY, activity or getattr(fn, "_cairn_function_name", fn.__name__), fn)

        return register

    def entity_trigger(self, context_name=None, entity_name=None):
        """``@app.entity_trigger(context_name="context")``: registers an
        entity under ``entity_name`` or the function's name (or the name
        given with :meth:`function_name`)."""

        def register(fn):
            return self.add(ENTITY, entity_name or getattr(fn, "_cairn_function_name", fn.__name__), fn)

        return register

    def function_name(self, name):
        """``@app.function_name(name="HelloCities")``, placed below or above
        a trigger decorator: the name to register the function under."""

        def rename(fn):
            for app in _APPS:
                for table in (app._functions, app._entities):
                    for old, f in list(table.items()):
                        if f.fn is fn:
                            del table[old]
                            app.add(f.kind, name, fn)
                            return fn
            fn._cairn_function_name = name
            return fn

        return rename

    # ---- inspection ---------------------------------------------------

    @property
    def functions(self):
        """``{name: kind}`` of this app's orchestrators and activities, in
        registration order."""
        return {name: f.kind for name, f in self._functions.items()}

    @property
    def entities(self):
        """The names of this app's entities, in registration order."""
        return list(self._entities)

    def __repr__(self):
        return f"App({list(self._functions) + list(self._entities)!r})"


class DFApp(App):
    """:class:`App` under the Durable Functions v2 name; constructor
    arguments such as ``http_auth_level`` are accepted and ignored."""


# The app behind the module-level decorators and Orchestrator.create.
default_app = App()


class Orchestrator:
    """Durable Functions (v1 programming model) registration::

        main = df.Orchestrator.create(orchestrator_function, name="HelloCities")
    """

    @staticmethod
    def create(fn, name=None):
        """Registers ``fn`` as orchestrator ``name`` (default: its
        ``__name__``) and returns it."""
        return default_app.add(ORCHESTRATOR, name or fn.__name__, fn)


class Activity:
    """Registration of a plain function as an activity::

        main = df.Activity.create(main, name="SayHello")
    """

    @staticmethod
    def create(fn, name=None):
        """Registers ``fn`` as activity ``name`` (default: its ``__name__``)
        and returns it."""
        return default_app.add(ACTIVITY, name or fn.__name__, fn)


class Entity:
    """Durable Functions registration of an entity function::

        main = df.Entity.create(entity_function, name="Counter")

    The class is also the component's ``cairn:durable/entity`` export (see
    :mod:`cairn_sdk._runtime`); the main module exposes it with
    ``from cairn_sdk import Functions, Entity``.
    """

    @staticmethod
    def create(fn, name=None):
        """Registers ``fn`` as entity ``name`` (default: its ``__name__``)
        and returns it."""
        return default_app.add(ENTITY, name or fn.__name__, fn)


def lookup_entity(name):
    """The registered entity called ``name``, or ``None``."""
    for app in _APPS:
        f = app._entities.get(name)
        if f is not None:
            return f
    return None


def registered_entities():
    """Every registered entity, in registration order."""
    return [f for app in _APPS for f in app._entities.values()]


def lookup(name):
    """The registered function called ``name``, or ``None``."""
    for app in _APPS:
        f = app._functions.get(name)
        if f is not None:
            return f
    return None


def registered():
    """Every registered function: orchestrators first, then activities,
    each in registration order."""
    everything = [f for app in _APPS for f in app._functions.values()]
    return [f for f in everything if f.kind == ORCHESTRATOR] + [f for f in everything if f.kind == ACTIVITY]

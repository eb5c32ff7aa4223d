"""Unit tests of the SDK's durable entities (entity functions, the
``cairn:durable/entity`` export, and calling, signalling and locking
entities from orchestrators) against the in-memory fake host.

Run: python3 -m unittest discover -s guests/python/tests
"""

import datetime
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from fake_host import Err, host  # noqa: E402  (must come before cairn_sdk)

import cairn_sdk as df  # noqa: E402
from cairn_sdk import _runtime  # noqa: E402
from cairn_sdk import EntityId, EntityOperationFailedError, Failure  # noqa: E402

_runtime._guards_installed = True

app = df.App()


def counter_function(context: df.DurableEntityContext):
    if context.operation_name == "add":
        context.set_state(context.get_state(lambda: 0) + context.get_input())
    elif context.operation_name == "reset":
        context.set_state(0)
    elif context.operation_name == "get":
        context.set_result(context.get_state(lambda: 0))
    elif context.operation_name == "delete":
        context.destruct_on_exit()
    else:
        raise Failure("NotFound", f"no operation {context.operation_name!r}")


df.Entity.create(counter_function, name="TCounter")


@app.entity("TCart")
def cart(context):
    items = context.get_state(list)
    if context.operation_name == "put":
        if context.is_newly_constructed:
            context.set_state(items)
        items.append(context.get_input())  # changed in place
    elif context.operation_name == "count":
        return len(items)  # a return value is the result
    elif context.operation_name == "who":
        context.set_result([context.entity_name, context.entity_key, str(context.entity_id)])
    elif context.operation_name == "boom":
        items.append("lost")
        raise ValueError("boom")
    elif context.operation_name == "notify":
        context.signal_entity(EntityId("TCounter", "n"), "add", 1)
        context.signal_entity("TCounter@n", "add", 2, scheduled_time=datetime.timedelta(seconds=5))
        context.set_result(context.start_new_orchestration("Audit", {"n": 1}))
    elif context.operation_name == "log":
        print("from the entity")
    elif context.operation_name == "clock":
        context.set_result(context.current_utc_datetime.isoformat())


dfapp = df.DFApp()


@dfapp.entity_trigger(context_name="context")
def TDFEntity(context):  # noqa: N802 - Durable Functions names entities after the function
    context.set_result(context.operation_name)


@dfapp.function_name(name="TRenamedAbove")
@dfapp.entity_trigger(context_name="context")
def renamed_above(context):
    context.set_result("above")


@dfapp.entity_trigger(context_name="context")
@dfapp.function_name(name="TRenamedBelow")
def renamed_below(context):
    context.set_result("below")


@app.orchestrator("TCallCounter")
def call_counter(context):
    counter = EntityId("TCounter", "c1")
    context.signal_entity(counter, "add", 5)
    value = yield context.call_entity(counter, "get")
    try:
        yield context.call_entity("TCounter@c1", "nope")
    except EntityOperationFailedError as e:
        failed = [e.error_type, e.entity_id, e.operation]
    return [value, failed]


@app.orchestrator("TPlainCall")
def plain_call(context):
    return context.call_entity(EntityId("TCounter", "c2"), "add", 3)


@app.orchestrator("TLockEntities")
def lock_entities(context):
    a, b = EntityId("Account", "a"), EntityId("Account", "b")
    with context.lock_entities(a, b):
        pass
    with context.lock_entities([a, "Account@c"]):
        pass
    with context.lock([a, "plain"]):
        pass
    return host.locks


@app.orchestrator("TBadEntityId")
def bad_entity_id(context):
    context.signal_entity("no-at-sign", "add", 1)


def operation(name, key, op, input_value=None, state=None):
    """Runs an operation through the export: ``("ok", state, result)`` (the
    state and result decoded, state ``None`` for none) or ``("err",
    error_type, message)``."""
    saved = sys.stdout, sys.stderr
    host.entity = (name, key)
    try:
        outcome = df.Entity().run_operation(
            name, key, op, json.dumps(input_value), None if state is None else json.dumps(state)
        )
    except Err as e:
        return "err", e.value.error_type, e.value.message
    finally:
        sys.stdout, sys.stderr = saved
    return "ok", None if outcome.state is None else json.loads(outcome.state), json.loads(outcome.output)


def run(name, input_value=None):
    saved = sys.stdout, sys.stderr
    try:
        out = df.Functions().run(name, json.dumps(input_value))
    except Err as e:
        return "err", (e.value.error_type, e.value.message)
    finally:
        sys.stdout, sys.stderr = saved
    return "ok", json.loads(out)


class Entities(unittest.TestCase):
    def setUp(self):
        host.reset()

    def test_entities_are_listed_apart_from_functions(self):
        names = df.Entity().entities()
        for name in ("TCounter", "TCart", "TDFEntity"):
            self.assertIn(name, names)
        functions = [f.name for f in df.Functions().list()]
        self.assertNotIn("TCounter", functions)
        self.assertIn("TCallCounter", functions)

    def test_a_counter_adds_resets_gets_and_deletes(self):
        self.assertEqual(operation("TCounter", "c", "add", 5), ("ok", 5, None))
        self.assertEqual(operation("TCounter", "c", "add", 2, state=5), ("ok", 7, None))
        self.assertEqual(operation("TCounter", "c", "get", state=7), ("ok", 7, 7))
        self.assertEqual(operation("TCounter", "c", "reset", state=7), ("ok", 0, None))
        self.assertEqual(operation("TCounter", "c", "delete", state=7), ("ok", None, None))

    def test_reading_a_new_entity_does_not_create_its_state(self):
        self.assertEqual(operation("TCounter", "c", "get"), ("ok", None, 0))

    def test_a_failure_crosses_typed(self):
        self.assertEqual(operation("TCounter", "c", "nope", state=3)[:2], ("err", "NotFound"))
        status, error_type, message = operation("TCart", "k", "boom", state=["x"])
        self.assertEqual((status, error_type, message), ("err", "ValueError", "boom"))

    def test_inputs_from_durable_functions_clients_are_unwrapped(self):
        self.assertEqual(operation("TCounter", "c", "add", "5", state=1), ("ok", 6, None))

    def test_state_changed_in_place_is_kept_and_return_values_are_results(self):
        self.assertEqual(operation("TCart", "k", "put", "apple"), ("ok", ["apple"], None))
        self.assertEqual(operation("TCart", "k", "put", "pear", state=["apple"]), ("ok", ["apple", "pear"], None))
        self.assertEqual(operation("TCart", "k", "count", state=["apple", "pear"]), ("ok", ["apple", "pear"], 2))

    def test_the_context_knows_its_entity(self):
        self.assertEqual(operation("TCart", "k@2", "who")[2], ["TCart", "k@2", "TCart@k@2"])
        self.assertEqual(operation("TDFEntity", "x", "hello"), ("ok", None, "hello"))
        self.assertEqual(operation("TCart", "k", "clock")[2], "2023-11-14T22:13:20+00:00")

    def test_signals_and_starts_go_to_the_host(self):
        status, _, result = operation("TCart", "k", "notify")
        self.assertEqual((status, result), ("ok", "started-1"))
        self.assertEqual(
            host.signals,
            [("TCounter@n", "add", "1", None), ("TCounter@n", "add", "2", host.now_ms + 5000)],
        )
        self.assertEqual(host.started, [("Audit", '{"n":1}', None)])

    def test_print_goes_to_the_entity_log(self):
        operation("TCart", "k", "log")
        self.assertIn(("entity", "INFO", "from the entity"), host.logs)

    def test_unknown_entities_are_not_found(self):
        self.assertEqual(operation("Nobody", "k", "get")[:2], ("err", "NotFound"))
        self.assertEqual(run("TCounter")[1][0], "NotFound")

    def test_function_name_renames_entity_triggers(self):
        names = df.Entity().entities()
        self.assertIn("TRenamedAbove", names)
        self.assertIn("TRenamedBelow", names)
        self.assertNotIn("renamed_above", names)
        self.assertEqual(operation("TRenamedAbove", "k", "x")[2], "above")
        self.assertEqual(operation("TRenamedBelow", "k", "x")[2], "below")

    def test_registration_checks_names(self):
        with self.assertRaises(ValueError):
            app.entity("Bad@Name")(counter_function)
        with self.assertRaises(ValueError):
            df.Entity.create(counter_function, name="TCounter")


class EntityIds(unittest.TestCase):
    def test_text_form_and_parsing(self):
        self.assertEqual(str(EntityId("Counter", "c1")), "Counter@c1")
        self.assertEqual(EntityId.parse("Account@a@b"), EntityId("Account", "a@b"))
        self.assertEqual(EntityId("Counter", ""), EntityId.parse("Counter@"))
        with self.assertRaises(ValueError):
            EntityId.parse("Counter")
        with self.assertRaises(ValueError):
            EntityId("A@B", "k")


class Orchestrations(unittest.TestCase):
    def setUp(self):
        host.reset()

        def handler(entity, op, input_json):
            if op == "nope":
                raise Err(host_failure("NotFound", "no such operation"))
            return "42"

        host.entity_handler = handler

    def test_call_and_signal_entities(self):
        self.assertEqual(run("TCallCounter"), ("ok", [42, ["NotFound", "TCounter@c1", "nope"]]))
        self.assertEqual(host.signals, [("TCounter@c1", "add", "5", None)])
        self.assertEqual([t[:2] for t in host.tasks], [("entity", "TCounter@c1"), ("entity", "TCounter@c1")])

    def test_plain_style_call_waits(self):
        self.assertEqual(run("TPlainCall"), ("ok", 42))

    def test_entity_locks_are_named_at_name_at_key(self):
        self.assertEqual(
            run("TLockEntities"),
            ("ok", [["@Account@a", "@Account@b"], ["@Account@a", "@Account@c"], ["@Account@a", "plain"]]),
        )

    def test_a_malformed_entity_id_fails(self):
        status, (error_type, _) = run("TBadEntityId")
        self.assertEqual((status, error_type), ("err", "InvalidInput"))


def host_failure(error_type, message):
    from fake_host import Failure as WitFailure

    return WitFailure(error_type, message, None)


if __name__ == "__main__":
    unittest.main()

"""Unit tests of cairn_sdk's logic on a plain CPython, against an in-memory
fake of the host (fake_host.py). The end-to-end tests, on the real host and
real components, are in tests/e2e/python.rs.

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

import cairn_sdk  # noqa: E402
from cairn_sdk import _runtime  # noqa: E402
from cairn_sdk import (  # noqa: E402
    ActivityFailedError,
    Failure,
    RetryOptions,
    SubOrchestratorFailedError,
    TaskFailedError,
)

# The guards patch the interpreter (open, time.time, ...): not here.
_runtime._guards_installed = True

app = cairn_sdk.App()


def activity_json(fn):
    """An activity for the fake host: JSON in, JSON out, raising Err."""

    def run(input_json):
        value = json.loads(input_json)
        try:
            return json.dumps(fn(value))
        except Failure as f:
            raise Err(host_failure(f.error_type, f.message, f.details))

    return run


def host_failure(error_type, message, details=None):
    from fake_host import Failure as WitFailure

    return WitFailure(error_type, message, None if details is None else json.dumps(details))


def run(name, input_value=None):
    """Runs function ``name`` through the export: ``("ok", value)`` or
    ``("err", failure)`` with the failure's details decoded."""
    saved = sys.stdout, sys.stderr
    try:
        out = cairn_sdk.Functions().run(name, json.dumps(input_value))
    except Err as e:
        f = e.value
        return "err", (f.error_type, f.message, None if f.details is None else json.loads(f.details))
    finally:
        sys.stdout, sys.stderr = saved
    return "ok", json.loads(out)


class Base(unittest.TestCase):
    def setUp(self):
        host.reset()
        host.activities["SayHello"] = activity_json(lambda name: f"Hello {name}!")
        host.activities["Square"] = activity_json(lambda i: i * i)
        host.activities["Decline"] = activity_json(self._decline)

    @staticmethod
    def _decline(amount):
        raise Failure("PaymentDeclined", f"card declined for amount {amount}", {"amount": amount})


# ---- orchestrators used below -----------------------------------------


@app.orchestrator("GenHello")
def gen_hello(context: cairn_sdk.DurableOrchestrationContext):
    result1 = yield context.call_activity("SayHello", "Tokyo")
    result2 = yield context.call_activity("SayHello", "Seattle")
    return [result1, result2]


@app.orchestrator("PlainHello")
def plain_hello(context):
    return [context.call_activity("SayHello", c) for c in ("Tokyo", "London")]


@app.orchestrator("GenCatch")
def gen_catch(context):
    try:
        yield context.call_activity("Decline", 100)
    except ActivityFailedError as e:
        after = yield context.call_activity("SayHello", "after")
        return [e.error_type, e.message, e.details, e.task_id, e.name, after]


@app.orchestrator("PlainFanOut")
def plain_fan_out(context, count):
    tasks = [context.schedule_activity("Square", i) for i in range(count)]
    return sum(context.task_all(tasks))


@app.orchestrator("GenFanOut")
def gen_fan_out(context):
    tasks = [context.call_activity("Square", i) for i in range(context.get_input())]
    return sum((yield context.task_all(tasks)))


@app.orchestrator("PlainAllFails")
def plain_all_fails(context):
    tasks = [context.schedule_activity("Square", 2), context.schedule_activity("Decline", 7)]
    try:
        context.task_all(tasks)
    except TaskFailedError as e:
        return [e.error_type, tasks[0].result, tasks[1].is_faulted]


@app.orchestrator("GenRace")
def gen_race(context):
    event = context.wait_for_external_event("Approval")
    timer = context.create_timer(datetime.timedelta(seconds=5))
    winner = yield context.task_any([event, timer])
    return ["event" if winner == event else "timer", winner.result]


@app.orchestrator("PlainRace")
def plain_race(context):
    event = context.schedule_external_event("Approval")
    timer = context.schedule_timer(context.current_utc_datetime + datetime.timedelta(seconds=5))
    winner = context.task_any([event, timer])
    return winner is timer


@app.orchestrator("PlainTimerAndEvent")
def plain_timer_and_event(context):
    fired = context.create_timer(datetime.timedelta(seconds=2))
    payload = context.wait_for_external_event("Approval")
    return [fired, payload, context.get_input()]


@app.orchestrator("Forgets")
def forgets(context, what):
    if what == "timer":
        context.schedule_timer(datetime.timedelta(seconds=2))
    elif what == "generator-timer":
        context.create_timer(datetime.timedelta(seconds=2))
    elif what == "event":
        context.schedule_external_event("Approval")
    elif what == "activity":
        context.schedule_activity("Square", 3)
    elif what == "cancelled":
        context.schedule_timer(datetime.timedelta(seconds=2)).cancel()
    return "returned"


@app.orchestrator("ForgetsInGenerator")
def forgets_in_generator(context):
    context.create_timer(datetime.timedelta(seconds=2))
    yield context.call_activity("Square", 2)
    return "returned"


@app.orchestrator("Uncaught")
def uncaught(context):
    raise ValueError("bad")


@app.orchestrator("Continue")
def continue_(context):
    context.continue_as_new({"n": 1})
    return "ignored"


@app.orchestrator("Locking")
def locking(context):
    with context.lock(["b", "a"]) as guard:
        inside = list(host.unlocked)
    return [guard.names, inside, list(host.unlocked)]


@app.orchestrator("Status")
def status(context):
    context.set_custom_status({"stage": "waiting", "n": 1})
    return None


@app.orchestrator("Prints")
def prints(context):
    print("hello", "world")
    print("careful", file=sys.stderr)
    sys.stdout.write("no newline")
    return "ok"


@app.orchestrator("YieldsJunk")
def yields_junk(context):
    try:
        yield 42
    except TypeError as e:
        return str(e)


@app.orchestrator("ValuesToTaskAll")
def values_to_task_all(context):
    context.task_all([context.call_activity("Square", 2)])


@app.orchestrator("Retrying")
def retrying(context):
    return context.call_activity_with_retry("Square", RetryOptions(50, 5, backoff_coefficient=2.0), 3)


@app.orchestrator("Child")
def child(context):
    return context.call_sub_orchestrator("Sub", "x")


@app.activity("OneArg")
def one_arg(name):
    return f"one {name}"


@app.activity("TwoArgs")
def two_args(context, name):
    return [context.attempt, context.idempotency_key, name]


@app.activity("NoArgs")
def no_args():
    return cairn_sdk.activity_context().function_name


@app.activity("Raises")
def raises(spec):
    raise KeyError(spec)


class OrchestratorStyles(Base):
    def test_generator_style_waits_at_each_yield(self):
        self.assertEqual(run("GenHello"), ("ok", ["Hello Tokyo!", "Hello Seattle!"]))
        self.assertEqual([t[1] for t in host.tasks], ["SayHello", "SayHello"])

    def test_plain_style_waits_inside_the_call(self):
        self.assertEqual(run("PlainHello"), ("ok", ["Hello Tokyo!", "Hello London!"]))

    def test_failures_are_thrown_in_at_the_yield_and_catchable(self):
        status, value = run("GenCatch")
        self.assertEqual(status, "ok")
        self.assertEqual(value, ["PaymentDeclined", "card declined for amount 100", {"amount": 100}, 0, "Decline", "Hello after!"])

    def test_fan_out_in_both_styles(self):
        self.assertEqual(run("PlainFanOut", 5), ("ok", 30))
        self.assertEqual(run("GenFanOut", 4), ("ok", 14))

    def test_task_all_raises_the_first_failure_and_keeps_the_other_results(self):
        self.assertEqual(run("PlainAllFails"), ("ok", ["PaymentDeclined", 4, True]))

    def test_task_any_returns_the_winning_task(self):
        host.events["Approval"] = json.dumps({"approved": True})
        self.assertEqual(run("GenRace"), ("ok", ["event", {"approved": True}]))
        host.reset()
        host.any_winner = 1
        self.assertEqual(run("PlainRace"), ("ok", True))
        # The timer fires 5 s after the deterministic "now".
        self.assertEqual(host.tasks[1], ("timer", str(host.now_ms + 5000), None, None))

    def test_yielding_something_else_than_a_task_is_a_type_error_at_the_yield(self):
        status, value = run("YieldsJunk")
        self.assertEqual(status, "ok")
        self.assertIn("yield tasks", value)

    def test_plain_style_create_timer_and_wait_for_external_event_wait(self):
        host.events["Approval"] = json.dumps("true")
        # What Durable Functions' Python client sends: JSON text as a JSON string.
        status, value = run("PlainTimerAndEvent", '{"timeout_ms": 60000}')
        self.assertEqual((status, value), ("ok", [None, True, {"timeout_ms": 60000}]))
        # Both tasks were awaited: the host has their outcomes.
        self.assertEqual([t[0] for t in host.tasks], ["timer", "event"])
        self.assertEqual(sorted(host.outcomes), [0, 1])

    def test_a_task_created_and_never_awaited_fails_the_orchestrator(self):
        for what, kind in [("timer", "timer firing at"), ("event", "event 'Approval'"), ("activity", "activity 'Square'")]:
            host.reset()
            status, (error_type, message, _) = run("Forgets", what)
            self.assertEqual((status, error_type), ("err", "UnawaitedTask"), what)
            self.assertIn(kind, message)
            self.assertIn("task 0", message)
        host.reset()
        self.assertEqual(run("Forgets", "cancelled"), ("ok", "returned"))
        host.reset()
        self.assertEqual(run("Forgets", "nothing"), ("ok", "returned"))

    def test_a_generator_that_never_yields_its_timer_fails(self):
        status, (error_type, message, _) = run("ForgetsInGenerator")
        self.assertEqual((status, error_type), ("err", "UnawaitedTask"))
        self.assertIn("timer firing at", message)

    def test_plain_style_task_all_of_values_points_to_schedule_activity(self):
        status, (error_type, message, _) = run("ValuesToTaskAll")
        self.assertEqual((status, error_type), ("err", "TypeError"))
        self.assertIn("schedule_activity", message)


class Failures(Base):
    def test_an_uncaught_exception_fails_with_its_type_and_message(self):
        status, (error_type, message, details) = run("Uncaught")
        self.assertEqual((status, error_type, message), ("err", "ValueError", "bad"))
        self.assertTrue(any("in uncaught" in line for line in details["traceback"]), details)
        self.assertFalse(any("_runtime.py" in line for line in details["traceback"]), details)

    def test_an_activity_exception_becomes_a_typed_failure(self):
        status, (error_type, message, _) = run("Raises", "k")
        self.assertEqual((status, error_type, message), ("err", "KeyError", "'k'"))

    def test_sub_orchestrator_failures_have_their_own_class(self):
        host.activities["Sub"] = lambda _: (_ for _ in ()).throw(Err(host_failure("Boom", "child")))
        try:
            plain = cairn_sdk.OrchestrationContext()
            plain.call_sub_orchestrator("Sub", "x")
        except SubOrchestratorFailedError as e:
            self.assertEqual((e.error_type, e.message, e.name), ("Boom", "child", "Sub"))
        else:
            self.fail("no failure")

    def test_unknown_functions_are_not_found(self):
        status, (error_type, _, _) = run("Nope")
        self.assertEqual((status, error_type), ("err", "NotFound"))

    def test_root_cause_sees_through_host_wrappers(self):
        inner = {"error_type": "ValidationError", "message": "bad input"}
        outer = Failure("ActivityFailed", "activity failed", inner)
        self.assertEqual(outer.root_cause().error_type, "ValidationError")
        self.assertEqual(Failure("A", "b").root_cause().error_type, "A")


class ClientValues(Base):
    def test_double_encoded_values_are_unwrapped_and_strings_stay_strings(self):
        cv = cairn_sdk.client_value
        self.assertEqual(cv('{"timeout_ms": 60000}'), {"timeout_ms": 60000})
        self.assertEqual(cv("[1, 2]"), [1, 2])
        self.assertEqual((cv("true"), cv("false"), cv("null"), cv("42"), cv("1.5")), (True, False, None, 42, 1.5))
        self.assertEqual(cv("Tokyo"), "Tokyo")
        self.assertEqual(cv('"Tokyo"'), '"Tokyo"')
        self.assertEqual(cv("NaN"), "NaN")
        self.assertEqual(cv("1e999"), "1e999", "not a finite number: kept as sent")
        self.assertEqual(cv(""), "")
        self.assertEqual(cv({"a": "true"}), {"a": "true"}, "only the top-level value")
        self.assertIs(cv(True), True)

    def test_orchestration_input_and_event_payloads_are_client_values(self):
        host.input_json = json.dumps('{"timeout_ms": 5}')
        self.assertEqual(cairn_sdk.OrchestrationContext(host.input_json).get_input(), {"timeout_ms": 5})
        host.events["Approval"] = json.dumps("false")
        ctx = cairn_sdk.OrchestrationContext(generator=True)
        self.assertIs(ctx.schedule_external_event("Approval").get(), False)

    def test_activity_inputs_and_results_are_taken_as_sent(self):
        host.activities["Echo"] = lambda text: text
        ctx = cairn_sdk.OrchestrationContext()
        self.assertEqual(ctx.call_activity("Echo", "42"), "42")
        self.assertEqual(run("OneArg", "true"), ("ok", "one true"))


class Context(Base):
    def test_continue_as_new_ignores_the_return_value(self):
        self.assertEqual(run("Continue"), ("ok", None))
        self.assertEqual(host.continued, ('{"n":1}', False))

    def test_lock_is_released_when_the_with_block_ends(self):
        status, (names, inside, after) = run("Locking")
        self.assertEqual((status, names, inside, after), ("ok", ["b", "a"], [], [0]))

    def test_custom_status_is_compact_json(self):
        run("Status")
        self.assertEqual(host.custom_status, '{"stage":"waiting","n":1}')

    def test_print_goes_to_the_replay_safe_log(self):
        run("Prints")
        self.assertEqual(
            host.logs,
            [
                ("orchestration", "INFO", "hello world"),
                ("orchestration", "WARN", "careful"),
                ("orchestration", "INFO", "no newline"),
            ],
        )

    def test_retry_options_reach_the_host(self):
        self.assertEqual(run("Retrying"), ("ok", 9))
        retry = host.tasks[0][3]
        self.assertEqual(
            (retry.max_attempts, retry.first_interval_ms, retry.backoff_coefficient, retry.max_interval_ms),
            (5, 50, 2.0, None),
        )

    def test_current_utc_datetime_is_the_hosts_time(self):
        ctx = cairn_sdk.OrchestrationContext()
        self.assertEqual(ctx.current_utc_datetime.timestamp() * 1000, host.now_ms)
        self.assertEqual(ctx.current_utc_datetime.tzinfo, datetime.timezone.utc)

    def test_activities_get_their_input_and_optionally_their_context(self):
        self.assertEqual(run("OneArg", "x"), ("ok", "one x"))
        self.assertEqual(run("TwoArgs", "y"), ("ok", [1, "inst-1:exec-1:0", "y"]))
        self.assertEqual(run("NoArgs"), ("ok", "Act"))


class Registration(unittest.TestCase):
    def test_durable_functions_spellings(self):
        df_app = cairn_sdk.DFApp(http_auth_level="ANONYMOUS")

        @df_app.orchestration_trigger(context_name="context")
        def df_orchestrator(context):
            return None

        @df_app.function_name(name="RenamedAbove")
        @df_app.activity_trigger(input_name="city")
        def df_activity(city):
            return city

        @df_app.activity_trigger(input_name="city")
        @df_app.function_name(name="RenamedBelow")
        def df_activity2(city):
            return city

        self.assertEqual(
            df_app.functions,
            {"df_orchestrator": "orchestrator", "RenamedAbove": "activity", "RenamedBelow": "activity"},
        )
        cairn_sdk.Orchestrator.create(df_orchestrator, name="ViaCreate")
        self.assertEqual(cairn_sdk.default_app.functions["ViaCreate"], "orchestrator")

    def test_a_name_is_registered_once(self):
        with self.assertRaises(ValueError):
            cairn_sdk.App().activity("OneArg")(lambda x: x)

    def test_list_has_orchestrators_then_activities(self):
        infos = cairn_sdk.Functions().list()
        kinds = [i.kind.name for i in infos]
        self.assertEqual(kinds, sorted(kinds, key=lambda k: k != "ORCHESTRATOR"))
        self.assertIn("GenHello", [i.name for i in infos])


if __name__ == "__main__":
    unittest.main()

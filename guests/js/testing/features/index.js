// Test component for tests/e2e/js.rs: the JavaScript runtime's determinism,
// typed failures in both orchestrator styles, the console, the context API.
//
// - `ClockRandomProbe` (any input): reads Date.now(), new Date(), Date(),
//   Math.random() x4 and context.newGuid() as `first`, sends `first` through
//   the activity `Echo` (so history holds what the live run saw), then
//   returns `{"first", "recorded", "date_after"}`. Replay-stable iff
//   `first == recorded` when `first` was recomputed by a replay.
// - `CatchTyped` (input: a list of throw cases): calls `Throw` with each case,
//   catches, and returns what the orchestrator saw for each.
// - `CatchTypedGenerator` (any input): the same in the generator style: a
//   failing yield, a failing Task.all and a failed Task.any winner.
// - `Uncaught` / `UncaughtGenerator` (a throw case): call `Throw` without
//   catching. `ThrowInOrchestrator`: throws RangeError("out of range").
// - `ConsoleLog` (any input): console.log/warn in the orchestrator and in
//   the activity `ConsoleActivity`, across two episodes.
// - `ActivityClock`: the activity `ReadClock` reads Date.now() (no clock in
//   activities); returns the caught failure.
// - `PromiseActivity`: the activity `ReturnsPromise` returns a Promise;
//   returns the caught failure.
// - `ContextApi` (any input): the context's ids and input, a GUID, a custom
//   status, and a sub-orchestration `Child` started with an explicit id.
// - `Pm4Style` (a name): registered with `app.orchestration`, calls
//   `pm4Hello` (registered with `app.activity`): "Hello <name> from pm4Hello!".
// - `CheckSite` (a URL): the seed's CheckSiteAvailable in the generator
//   style: `yield context.df.callHttp({ method: "GET", url })`; returns
//   `{"status", "content"}` or, when the task fails, `{"error_type"}`.
// - `Sleeps` `{"ms": t}`: plain style, `context.createTimer` (which waits)
//   `t` ms from now; returns the deterministic time (ms) before and after,
//   as `{"before_ms", "after_ms"}` (the same contract as the Rust and Python
//   `Sleeps`).
// - `Forgets` `"timer" | "event" | "activity" | "cancelled" | "nothing"`:
//   creates that task with `context.df`, never awaits it and returns
//   `"returned"` (the SDK fails it with `UnawaitedTask` unless cancelled).
//   `ForgetsGenerator`: a generator that creates a timer it never yields.
// - `JsClientValues` (any input): waits (plain style) for the events `Flag`,
//   `Amount`, `Order` and `Note` in that order; returns `{"input", "flag",
//   "amount", "order", "note"}` as the orchestrator saw them.
// - Activities: `Echo` (returns its input), `Throw` (a throw case:
//   `{"kind": "TypeError" | "RangeError" | "Custom" | "Durable" | "String" |
//   "Record", "message": m}`).

import * as cairn from "cairn-sdk";

function ClockRandomProbe(context) {
  const first = {
    date_now: Date.now(),
    new_date: new Date().getTime(),
    date_string: typeof Date(),
    randoms: [Math.random(), Math.random(), Math.random(), Math.random()],
    current_utc: context.currentUtcDateTime.getTime(),
    guid: context.newGuid(),
  };
  const recorded = context.callActivity("Echo", first);
  return { first, recorded, date_after: Date.now() };
}

function seen(e) {
  return {
    error_type: e.errorType,
    message: e.message,
    name: e.name,
    durable: e instanceof cairn.DurableError,
    is_error: e instanceof Error,
    details: e.details ?? null,
  };
}

function CatchTyped(context, cases) {
  return cases.map((c) => {
    try {
      context.callActivity("Throw", c);
      return "no failure";
    } catch (e) {
      return seen(e);
    }
  });
}

const CatchTypedGenerator = cairn.orchestrator(function* (context) {
  const out = {};
  try {
    yield context.df.callActivity("Throw", { kind: "TypeError", message: "bad" });
  } catch (e) {
    out.single = seen(e);
  }
  try {
    yield context.df.Task.all([
      context.df.callActivity("Echo", 1),
      context.df.callActivity("Throw", { kind: "RangeError", message: "second" }),
    ]);
  } catch (e) {
    out.all = seen(e);
  }
  const failing = context.df.callActivity("Throw", { kind: "Custom", message: "lost" });
  const winner = yield context.df.Task.any([failing]);
  out.any = { winner_is_failing: winner === failing, faulted: winner.isFaulted, exception: seen(winner.exception) };
  out.after = yield context.df.callActivity("Echo", "still running");
  return out;
});

function Uncaught(context, c) {
  return context.callActivity("Throw", c);
}

const UncaughtGenerator = cairn.orchestrator(function* (context) {
  return yield context.df.callActivity("Throw", context.df.getInput());
});

function ThrowInOrchestrator() {
  throw new RangeError("out of range");
}

function ConsoleLog(context) {
  console.log("js-orchestrator-marker", context.instanceId, { n: 1 });
  const r = context.callActivity("ConsoleActivity", context.instanceId);
  console.warn("js-orchestrator-after", r);
  context.log.error("js-context-log-marker");
  return r;
}

function ActivityClock(context) {
  try {
    return context.callActivity("ReadClock", null);
  } catch (e) {
    return seen(e);
  }
}

function PromiseActivity(context) {
  try {
    return context.callActivity("ReturnsPromise", null);
  } catch (e) {
    return seen(e);
  }
}

function ContextApi(context, input) {
  context.setCustomStatus({ step: "child" });
  const child = context.callSubOrchestrator("Child", { from: context.instanceId }, `${context.instanceId}-child`);
  return {
    input,
    df_input: context.df.getInput(),
    instance_id: context.instanceId,
    function_name: context.functionName,
    guid: context.newGuid(),
    guid_again: context.df.newGuid(),
    child,
  };
}

function Child(context, input) {
  return { input, instance_id: context.instanceId };
}

// Durable Functions v4 registration style.
cairn.app.orchestration("Pm4Style", function* (context) {
  return yield context.df.callActivity("pm4Hello", context.df.getInput());
});
cairn.app.activity("pm4Hello", { handler: (input, context) => `Hello ${input} from ${context.functionName}!` });

class Custom extends Error {}

function Throw(context, c) {
  switch (c.kind) {
    case "TypeError":
      throw new TypeError(c.message);
    case "RangeError":
      throw new RangeError(c.message);
    case "Custom":
      throw new Custom(c.message);
    case "Durable":
      throw new cairn.DurableError("Declined", c.message, { code: 42 });
    case "String":
      throw c.message;
    case "Record":
      throw { errorType: "RecordError", message: c.message };
    default:
      return "no throw";
  }
}

const CheckSite = cairn.orchestrator(function* (context) {
  const url = context.df.getInput();
  try {
    const res = yield context.df.callHttp({ method: "GET", url });
    return { status: res.statusCode, content: res.content };
  } catch (e) {
    return { error_type: e.errorType };
  }
});

function Sleeps(context, input) {
  const before = context.currentUtcDateTime.getTime();
  context.createTimer(before + input.ms);
  return { before_ms: before, after_ms: context.currentUtcDateTime.getTime() };
}

function Forgets(context, what) {
  const later = context.currentUtcDateTime.getTime() + 2000;
  if (what === "timer") context.df.createTimer(later);
  else if (what === "event") context.df.waitForExternalEvent("Approval");
  else if (what === "activity") context.df.callActivity("Echo", 3);
  else if (what === "cancelled") context.df.createTimer(later).cancel();
  return "returned";
}

const ForgetsGenerator = cairn.orchestrator(function* (context) {
  context.df.createTimer(context.df.currentUtcDateTime.getTime() + 2000);
  yield context.df.callActivity("Echo", 2);
  return "returned";
});

function JsClientValues(context, input) {
  const flag = context.waitForExternalEvent("Flag");
  const amount = context.waitForExternalEvent("Amount");
  const order = context.waitForExternalEvent("Order");
  const note = context.waitForExternalEvent("Note");
  return { input, df_input: context.df.getInput(), flag, amount, order, note };
}

function ConsoleActivity(context, id) {
  console.log("js-activity-marker", id);
  return "logged";
}

function ReadClock() {
  return Date.now();
}

function ReturnsPromise() {
  return Promise.resolve(1);
}

export const functions = cairn.app({
  orchestrators: {
    ClockRandomProbe,
    CatchTyped,
    CatchTypedGenerator,
    Uncaught,
    UncaughtGenerator,
    ThrowInOrchestrator,
    ConsoleLog,
    ActivityClock,
    PromiseActivity,
    ContextApi,
    Child,
    CheckSite,
    Sleeps,
    Forgets,
    ForgetsGenerator,
    JsClientValues,
  },
  activities: { Echo: (context, input) => input, Throw, ConsoleActivity, ReadClock, ReturnsPromise },
});

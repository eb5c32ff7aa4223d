// Unit tests of the SDK's entities, against a fake host (see host-hooks.mjs):
//   cd guests/js && npm test
import { test } from "node:test";
import assert from "node:assert/strict";

const host = (globalThis.__cairnHost = {});

const df = await import("cairn-sdk");
const { functions } = await import("../examples/entities/index.js");

/** A fake entity-context: records signals and starts, and a fixed clock. */
function entityHost() {
  const sent = { signals: [], starts: [], logs: [] };
  host["entity-context"] = {
    currentTime: () => 1_700_000_000_000,
    signalEntity: (...args) => void sent.signals.push(args),
    startOrchestration: (name, input, id) => {
      sent.starts.push([name, input, id]);
      return id ?? "derived-id";
    },
    log: (level, message) => void sent.logs.push([level, message]),
  };
  return sent;
}

function run(name, key, operation, input, state) {
  return df.entityExport.runOperation(name, key, operation, JSON.stringify(input), state === undefined ? null : JSON.stringify(state));
}

function failure(f) {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail("expected a failure");
}

test("the component lists its entities", () => {
  assert.deepEqual(df.entityExport.entities(), ["Counter", "Account"]);
  assert.deepEqual(
    functions.list().map((f) => f.name),
    ["Transfer"]
  );
});

test("Counter: add, get, reset, delete", () => {
  entityHost();
  assert.deepEqual(run("Counter", "c", "add", 5), { state: "5", output: "null" });
  assert.deepEqual(run("Counter", "c", "add", 7, 5), { state: "12", output: "null" });
  assert.deepEqual(run("Counter", "c", "get", null, 12), { state: "12", output: "12" });
  assert.deepEqual(run("Counter", "c", "get", null), { state: null, output: "0" }, "get creates no state");
  assert.deepEqual(run("Counter", "c", "reset", null, 12), { state: "0", output: "null" });
  assert.deepEqual(run("Counter", "c", "delete", null, 12), { state: null, output: "null" });
});

test("an input encoded twice (the Python client) is decoded", () => {
  entityHost();
  assert.deepEqual(run("Counter", "c", "add", "3", 1), { state: "4", output: "null" });
  assert.equal(failure(() => run("Counter", "c", "add", 1.5, 1)).errorType, "InvalidInput");
  assert.equal(failure(() => run("Counter", "c", "add", "x", 1)).errorType, "InvalidInput");
});

test("failures carry their error type", () => {
  entityHost();
  assert.equal(failure(() => run("Counter", "c", "nope", null, 1)).errorType, "NotFound");
  assert.equal(failure(() => run("Nobody", "c", "get", null)).errorType, "NotFound");
  assert.equal(failure(() => run("Account", "a", "withdraw", 10, 5)).errorType, "InsufficientFunds");
  assert.equal(failure(() => run("Account", "a", "deposit", -1, 5)).errorType, "InvalidInput");
  assert.equal(failure(() => run("Account", "a", "deposit", 1.5, 5)).errorType, "InvalidInput");
  assert.equal(failure(() => run("Account", "a", "withdraw", "x", 5)).errorType, "InvalidInput");
  const bad = failure(() => df.entityExport.runOperation("Counter", "c", "add", "{", null));
  assert.equal(bad.errorType, "InvalidInput");
});

test("Account: deposit, withdraw, balance", () => {
  entityHost();
  assert.deepEqual(run("Account", "a", "deposit", 100), { state: "100", output: "null" });
  assert.deepEqual(run("Account", "a", "withdraw", 30, 100), { state: "70", output: "null" });
  assert.deepEqual(run("Account", "a", "withdraw", 70, 70), { state: "0", output: "null" });
  assert.deepEqual(run("Account", "a", "balance", null, 70), { state: "70", output: "70" });
  assert.deepEqual(run("Account", "a", "balance", null), { state: null, output: "0" });
});

test("an entity context: ids, state helpers, signals, starts, clock and log", () => {
  const sent = entityHost();
  let seen;
  df.app.entity(
    "Probe",
    df.entity(function (context) {
      const d = context.df;
      seen = {
        name: d.entityName,
        key: d.entityKey,
        id: String(d.entityId),
        idObject: { ...d.entityId },
        op: d.operationName,
        input: d.getInput(),
        isNew: d.isNewlyConstructed,
        had: d.hasState(),
        now: Date.now(),
        time: d.currentUtcDateTime.getTime(),
      };
      const state = d.getState(() => ({ items: [] }));
      if (d.operationName === "push") {
        if (!d.hasState()) d.setState(state);
        state.items.push(d.getInput()); // in place: kept
      } else if (d.operationName === "fanout") {
        d.signalEntity("Counter@x", "add", 1);
        d.signalEntity(new df.EntityId("Counter", "y"), "add", 2, new Date(1_700_000_060_000));
        d.signalEntity({ name: "Counter", key: "" }, "reset");
        seen.started = d.startNewOrchestration("Transfer", { from: "a", to: "b", amount: 1 });
        seen.startedWithId = d.startNewOrchestration("Transfer", null, "fixed");
        context.log("fanned out");
        return "returned value";
      } else if (d.operationName === "replace") {
        d.destructOnExit();
        d.setState({ items: ["new"] });
      } else if (d.operationName === "fail") {
        d.setState({ items: ["lost"] });
        throw new Error("boom");
      }
    })
  );
  assert.deepEqual(df.entityExport.entities(), ["Counter", "Account", "Probe"]);

  assert.deepEqual(run("Probe", "k@1", "push", "a"), { state: '{"items":["a"]}', output: "null" });
  assert.deepEqual(seen, {
    name: "Probe",
    key: "k@1",
    id: "Probe@k@1",
    idObject: { name: "Probe", key: "k@1" },
    op: "push",
    input: "a",
    isNew: true,
    had: false,
    now: 1_700_000_000_000,
    time: 1_700_000_000_000,
  });
  assert.deepEqual(run("Probe", "k", "push", "b", { items: ["a"] }), { state: '{"items":["a","b"]}', output: "null" });
  assert.equal(seen.isNew, false);

  assert.deepEqual(run("Probe", "k", "fanout", null, { items: [] }), { state: '{"items":[]}', output: '"returned value"' });
  assert.deepEqual(sent.signals, [
    ["Counter@x", "add", "1", null],
    ["Counter@y", "add", "2", 1_700_000_060_000],
    ["Counter@", "reset", "null", null],
  ]);
  assert.deepEqual(sent.starts, [
    ["Transfer", '{"from":"a","to":"b","amount":1}', null],
    ["Transfer", "null", "fixed"],
  ]);
  assert.equal(seen.started, "derived-id");
  assert.equal(seen.startedWithId, "fixed");
  assert.deepEqual(sent.logs, [["info", "fanned out"]]);

  assert.deepEqual(run("Probe", "k", "replace", null, { items: ["old"] }), { state: '{"items":["new"]}', output: "null" });
  const e = failure(() => run("Probe", "k", "fail", null, { items: [] }));
  assert.equal(e.errorType, "Error");
  assert.equal(e.message, "boom");
});

test("a host failure of signalEntity reaches the entity as a DurableError", () => {
  entityHost();
  host["entity-context"].signalEntity = () => {
    throw { payload: { errorType: "InvalidInput", message: "bad id", details: null } };
  };
  df.app.entity("Signaller", (context) => context.df.signalEntity("Counter@x", "add", 1));
  const e = failure(() => run("Signaller", "k", "go", null));
  assert.equal(e.errorType, "InvalidInput");
  assert.equal(e.message, "bad id");
});

test("a generator entity function (the issue's df.entity(function* ...) shape) runs to its end", () => {
  entityHost();
  df.app({
    entities: {
      Gen: df.entity(function* (context) {
        const got = yield 1; // nothing to wait for: the value comes back
        context.df.setState(context.df.getState(() => 0) + got);
        context.df.return("done");
      }),
    },
  });
  assert.deepEqual(run("Gen", "k", "inc", null, 41), { state: "42", output: '"done"' });
  assert.throws(() => df.app({ entities: { Async: async () => {} } }), /async/);
});

test("entity ids", () => {
  assert.equal(String(new df.EntityId("Account", "a")), "Account@a");
  assert.deepEqual({ ...df.EntityId.parse("Account@a@b") }, { name: "Account", key: "a@b" });
  assert.deepEqual({ ...df.EntityId.parse("@Account@a") }, { name: "Account", key: "a" });
  assert.deepEqual({ ...df.EntityId.parse("Account@") }, { name: "Account", key: "" });
  assert.throws(() => df.EntityId.parse("Account"), TypeError);
  assert.throws(() => df.EntityId.parse("@a"), TypeError);
  assert.throws(() => new df.EntityId("A@b", "c"), TypeError);
  assert.throws(() => df.app({ entities: { "A@b": () => {} } }), TypeError);
  assert.throws(() => df.app({ orchestrators: { Wrong: df.entity(() => {}) } }), TypeError);
  assert.throws(() => df.app({ entities: { Counter: () => {} } }), /registered twice/);
});

/**
 * A fake orchestration host that runs entity calls at once against
 * `accounts` and records lock names and calls.
 */
function orchestrationHost(accounts) {
  const log = { locks: [], unlocks: [], calls: [], signals: [] };
  const results = new Map();
  let next = 1;
  host["orchestration"] = {
    instanceId: () => "i1",
    executionId: () => "e1",
    currentTime: () => 1_700_000_000_000,
    lock: (names) => {
      log.locks.push(names);
      return next++;
    },
    unlock: (id) => void log.unlocks.push(id),
    callEntity: (entity, operation, input) => {
      log.calls.push([entity, operation, JSON.parse(input)]);
      const [name, key] = [entity.slice(0, entity.indexOf("@")), entity.slice(entity.indexOf("@") + 1)];
      const state = accounts[key] === undefined ? null : JSON.stringify(accounts[key]);
      let outcome;
      try {
        const r = df.entityExport.runOperation(name, key, operation, input, state);
        if (r.state === null) delete accounts[key];
        else accounts[key] = JSON.parse(r.state);
        outcome = { ok: r.output };
      } catch (failure) {
        outcome = { err: failure };
      }
      const id = next++;
      results.set(id, outcome);
      return id;
    },
    signalEntity: (...args) => void log.signals.push(args),
    awaitTask: (id) => {
      const o = results.get(id);
      if ("err" in o) throw { payload: o.err };
      return o.ok;
    },
  };
  return log;
}

test("Transfer locks both accounts and moves the money", () => {
  entityHost();
  const accounts = { a: 100 };
  const log = orchestrationHost(accounts);
  const out = functions.run("Transfer", JSON.stringify({ from: "a", to: "b", amount: 30 }));
  assert.deepEqual(JSON.parse(out), { transferred: true, from_balance: 100 });
  assert.deepEqual(accounts, { a: 70, b: 30 });
  assert.deepEqual(log.locks, [["@Account@a", "@Account@b"]]);
  assert.deepEqual(log.unlocks, [1]);
  assert.deepEqual(log.calls, [
    ["Account@a", "balance", null],
    ["Account@a", "withdraw", 30],
    ["Account@b", "deposit", 30],
  ]);

  const short = functions.run("Transfer", JSON.stringify({ from: "b", to: "a", amount: 31 }));
  assert.deepEqual(JSON.parse(short), { transferred: false, from_balance: 30 });
  assert.deepEqual(accounts, { a: 70, b: 30 });

  const same = failure(() => functions.run("Transfer", JSON.stringify({ from: "a", to: "a", amount: 1 })));
  assert.equal(same.errorType, "InvalidInput");
  for (const bad of [null, { from: "a", to: "b" }, { from: 1, to: "b", amount: 1 }, { from: "a", to: "b", amount: "1" }]) {
    assert.equal(failure(() => functions.run("Transfer", JSON.stringify(bad))).errorType, "InvalidInput");
  }
});

test("orchestration: callEntity failures, signalEntity and lock names", () => {
  entityHost();
  const accounts = { a: 5 };
  const log = orchestrationHost(accounts);
  let caught;
  df.app.orchestration("Probe", function* (context) {
    try {
      yield context.df.callEntity("Account@a", "withdraw", 10);
    } catch (e) {
      caught = e;
    }
    context.df.signalEntity(new df.EntityId("Counter", "c"), "add", 1);
    context.df.signalEntity("Counter@c", "add", 2, 1_700_000_001_000);
    const section = context.df.lock(["plain", "Counter@c", new df.EntityId("Account", "a"), "@Account@b"]);
    section.release();
    const plainSection = context.lock("x", "y");
    plainSection.release();
    return context.callEntity("Account@a", "balance");
  });
  assert.equal(JSON.parse(functions.run("Probe", "null")), 5);
  assert.equal(caught.errorType, "InsufficientFunds");
  assert.ok(caught instanceof df.DurableError);
  assert.deepEqual(log.signals, [
    ["Counter@c", "add", "1", null],
    ["Counter@c", "add", "2", 1_700_000_001_000],
  ]);
  assert.deepEqual(log.locks, [
    ["plain", "@Counter@c", "@Account@a", "@Account@b"],
    ["x", "y"],
  ]);
});

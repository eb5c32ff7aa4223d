// The JavaScript client against a real `cairn serve`.
//
// Needs the environment (set by tests/http/clients.rs, which starts the
// servers and deploys hello-cities.wasm, human-interaction.wasm and the
// testing guest failing.wasm):
// CAIRN_URL (a server without an API key), CAIRN_KEYED_URL and
// CAIRN_API_KEY (a server with that key). Nothing is skipped: without them
// every test fails.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import {
  BadRequest,
  CairnClient,
  CairnError,
  Conflict,
  NotFound,
  Unauthorized,
  WaitTimeout,
} from "../index.js";

const HELLO = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"];
const WAITING = { stage: "waiting-for-approval" };
// Long enough that the timer never wins during a test.
const APPROVAL_INPUT = { timeout_ms: 600000 };
const RUN = randomUUID().slice(0, 8);

function env(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run these tests through \`cargo test --test http clients\``);
  return value;
}

const newId = (tag) => `js-${tag}-${RUN}-${randomUUID().slice(0, 6)}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function client() {
  return new CairnClient({ baseUrl: env("CAIRN_URL"), timeoutMs: 30_000 });
}

async function poll(c, instanceId, predicate, what, limitMs = 30_000) {
  const deadline = Date.now() + limitMs;
  let last;
  while (Date.now() < deadline) {
    last = await c.status(instanceId, { showInput: true });
    if (last !== null && predicate(last)) return last;
    await sleep(50);
  }
  assert.fail(`${instanceId} never became ${what}; last status: ${JSON.stringify(last)}`);
}

/** An ApprovalWorkflow instance that waits for its event. */
async function startWaitingApproval(c, tag) {
  const id = await c.start("ApprovalWorkflow", { input: APPROVAL_INPUT, instanceId: newId(tag) });
  await poll(c, id, (s) => JSON.stringify(s.customStatus) === JSON.stringify(WAITING), "waiting for its approval");
  return id;
}

describe("CairnClient against cairn serve", () => {
  test("startAndWait completes HelloCities with its output", async () => {
    const c = client();
    const done = await c.startAndWait("HelloCities", { input: "ignored", timeoutS: 60 });
    assert.equal(done.name, "HelloCities");
    assert.equal(done.runtimeStatus, "Completed");
    assert.deepEqual(done.output, HELLO);
    assert.equal(done.input, "ignored");
    assert.equal(done.instanceId.length, 32);
    assert.ok(done.createdTime instanceof Date);
    assert.ok(done.lastUpdatedTime instanceof Date);
    assert.ok(Math.abs(Date.now() - done.createdTime.getTime()) < 5 * 60_000);
    assert.ok(done.createdTime <= done.lastUpdatedTime);
    assert.equal(done.failureDetails, null);

    const withHistory = await c.status(done.instanceId, { showHistory: true });
    const types = withHistory.historyEvents.map((e) => e.EventType);
    assert.equal(types[0], "ExecutionStarted");
    assert.equal(types.at(-1), "ExecutionCompleted");
    assert.equal(types.filter((t) => t === "TaskCompleted").length, 3, types.join());
    const plain = await c.status(done.instanceId);
    assert.equal(plain.input, null, "showInput false leaves the input out");
    assert.equal(plain.historyEvents, null);
  });

  test("a Failed instance has its failure details", async () => {
    const failed = await client().startAndWait("UncaughtDetails", { timeoutS: 60 });
    assert.equal(failed.runtimeStatus, "Failed");
    assert.equal(failed.output, "OutOfStock: sku-42 is out of stock");
    assert.equal(failed.failureDetails.ErrorType, "OutOfStock");
    assert.equal(failed.failureDetails.Message, "sku-42 is out of stock");
    assert.deepEqual(failed.failureDetails.Details, { sku: "sku-42" });
  });

  test("start, then wait, under a chosen id", async () => {
    const c = client();
    const id = newId("hello");
    assert.equal(await c.start("HelloCities", { instanceId: id }), id);
    const done = await c.wait(id, 60);
    assert.deepEqual([done.instanceId, done.runtimeStatus, done.output], [id, "Completed", HELLO]);
    const waited = await c.startAndWait("HelloCities", { instanceId: newId("hello-wait"), timeoutS: 60 });
    assert.deepEqual(waited.output, HELLO);
  });

  test("an event completes a waiting orchestration", async () => {
    const c = client();
    const id = await startWaitingApproval(c, "event");
    const running = await c.status(id, { showInput: true });
    assert.equal(running.runtimeStatus, "Running");
    assert.deepEqual(running.input, APPROVAL_INPUT);
    await c.raiseEvent(id, "ApprovalEvent", { approved: true });
    const done = await c.wait(id, 60);
    assert.equal(done.runtimeStatus, "Completed");
    assert.equal(done.output, "approved");
    assert.equal(done.customStatus, null);
    await assert.rejects(c.raiseEvent(id, "ApprovalEvent", true), (e) => {
      assert.ok(e instanceof Conflict, String(e));
      assert.equal(e.status, 410);
      assert.ok(e.serverMessage);
      return true;
    });
  });

  test("terminate", async () => {
    const c = client();
    const id = await startWaitingApproval(c, "terminate");
    await c.terminate(id, "no longer needed");
    const done = await c.wait(id, 60);
    assert.equal(done.runtimeStatus, "Terminated");
    assert.equal(done.output, "no longer needed");
    await assert.rejects(c.terminate(id, "again"), (e) => e instanceof Conflict && e.status === 410);
  });

  test("suspend and resume", async () => {
    const c = client();
    const id = await startWaitingApproval(c, "suspend");
    await c.suspend(id, "maintenance");
    const suspended = await poll(c, id, (s) => s.runtimeStatus === "Suspended", "Suspended");
    assert.equal(suspended.output, "maintenance");
    await c.raiseEvent(id, "ApprovalEvent", true);
    await sleep(500);
    assert.equal((await c.status(id)).runtimeStatus, "Suspended", "a suspended instance does not run");
    await c.resume(id, "done");
    const done = await c.wait(id, 60);
    assert.deepEqual([done.runtimeStatus, done.output], ["Completed", "approved"]);
  });

  test("wait times out on a running instance", async () => {
    const c = client();
    const id = await startWaitingApproval(c, "timeout");
    const started = Date.now();
    await assert.rejects(c.wait(id, 0.5), (e) => {
      assert.ok(e instanceof WaitTimeout, String(e));
      assert.ok(e instanceof CairnError);
      assert.equal(e.lastStatus.runtimeStatus, "Running");
      return true;
    });
    assert.ok(Date.now() - started >= 500);
    await assert.rejects(
      c.startAndWait("ApprovalWorkflow", { input: APPROVAL_INPUT, instanceId: newId("timeout2"), timeoutS: 1 }),
      WaitTimeout,
    );
    await c.terminate(id);
  });

  test("query follows every page", async () => {
    const c = client();
    const prefix = `js-page-${RUN}-`;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await c.start("HelloCities", { instanceId: `${prefix}${i}` }));
    for (const id of ids) assert.equal((await c.wait(id, 60)).runtimeStatus, "Completed");

    const first = await c.queryPage({ prefix, top: 2 });
    assert.equal(first.instances.length, 2);
    assert.ok(first.continuationToken, "more pages follow");
    const second = await c.queryPage({ prefix, top: 2, continuationToken: first.continuationToken });
    assert.equal(second.instances.length, 2);
    const firstIds = new Set(first.instances.map((s) => s.instanceId));
    assert.ok(!second.instances.some((s) => firstIds.has(s.instanceId)), "pages do not overlap");

    const found = [];
    for await (const s of c.query({ prefix, top: 2 })) found.push(s);
    assert.deepEqual(found.map((s) => s.instanceId).sort(), [...ids].sort());
    assert.ok(found.every((s) => JSON.stringify(s.output) === JSON.stringify(HELLO) && s.input === null));

    assert.equal((await c.queryAll({ runtimeStatus: ["Completed", "Failed"], prefix, top: 2 })).length, 5);
    assert.deepEqual(await c.queryAll({ runtimeStatus: "Running", prefix }), []);
    const hourAgo = new Date(Date.now() - 3600_000);
    assert.equal((await c.queryAll({ prefix, createdFrom: hourAgo, top: 3 })).length, 5);
    assert.deepEqual(await c.queryAll({ prefix, createdTo: hourAgo }), []);
    assert.deepEqual(await c.queryAll({ prefix, createdFrom: "2999-01-01T00:00:00Z" }), []);
  });

  test("missing instances", async () => {
    const c = client();
    const missing = newId("missing");
    assert.equal(await c.status(missing), null);
    await assert.rejects(c.wait(missing, 1), NotFound);
    await assert.rejects(c.raiseEvent(missing, "ApprovalEvent", true), (e) => {
      assert.ok(e instanceof NotFound);
      assert.equal(e.status, 404);
      assert.ok(e.serverMessage.includes(missing), e.serverMessage);
      return true;
    });
    for (const op of ["terminate", "suspend", "resume", "purge"]) {
      await assert.rejects(c[op](missing), NotFound, op);
    }
  });

  test("refusals are typed and carry the server's message", async () => {
    const c = client();
    await assert.rejects(c.start("NoSuchOrchestrator"), (e) => {
      assert.ok(e instanceof BadRequest);
      assert.equal(e.status, 400);
      assert.ok(e.serverMessage.includes("NoSuchOrchestrator"), e.serverMessage);
      return true;
    });
    await assert.rejects(c.start("HelloCities", { instanceId: "@not-an-id" }), BadRequest);

    const id = await startWaitingApproval(c, "conflict");
    await assert.rejects(c.start("ApprovalWorkflow", { input: APPROVAL_INPUT, instanceId: id }), (e) => {
      assert.ok(e instanceof Conflict);
      assert.equal(e.status, 409);
      assert.ok(e.serverMessage);
      return true;
    });
    await assert.rejects(c.purge(id), (e) => e instanceof Conflict && e.status === 412);
    await c.terminate(id);
    await c.wait(id, 60);
  });

  test("purge", async () => {
    const c = client();
    const done = await c.startAndWait("HelloCities", { instanceId: newId("purge"), timeoutS: 60 });
    assert.equal(await c.purge(done.instanceId), 1);
    assert.equal(await c.status(done.instanceId), null);
    await assert.rejects(c.purge(done.instanceId), NotFound);
  });

  test("an unreachable server and a bad base URL", async () => {
    const c = new CairnClient({ baseUrl: "http://127.0.0.1:9", timeoutMs: 5000 });
    await assert.rejects(c.status("x"), (e) => e instanceof CairnError && e.status === undefined);
    assert.throws(() => new CairnClient({ baseUrl: "127.0.0.1:7071" }), TypeError);
  });
});

describe("API keys", () => {
  test("a wrong or missing key is Unauthorized", async () => {
    const url = env("CAIRN_KEYED_URL");
    env("CAIRN_API_KEY");
    for (const apiKey of ["wrong-key", undefined]) {
      const c = new CairnClient({ baseUrl: url, apiKey });
      await assert.rejects(c.queryAll(), (e) => {
        assert.ok(e instanceof Unauthorized, String(e));
        assert.equal(e.status, 401);
        assert.ok(e.serverMessage);
        return true;
      });
      await assert.rejects(c.start("HelloCities"), Unauthorized);
      await assert.rejects(c.status("no-such-instance"), Unauthorized, "401 before the missing instance's 404");
    }
  });

  test("the right key works", async () => {
    const c = new CairnClient({ baseUrl: env("CAIRN_KEYED_URL"), apiKey: env("CAIRN_API_KEY") });
    const done = await c.startAndWait("HelloCities", { instanceId: newId("keyed"), timeoutS: 60 });
    assert.deepEqual([done.runtimeStatus, done.output], ["Completed", HELLO]);
    const ids = (await c.queryAll({ prefix: "js-keyed-" })).map((s) => s.instanceId);
    assert.ok(ids.includes(done.instanceId));
  });
});

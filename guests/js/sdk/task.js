// Tasks: durable work an orchestrator scheduled. Creating one never blocks;
// `get()` (or `yield task` in a generator orchestrator) waits for it.
//
// Every task must be awaited (`get()`, `yield`, `Task.all`, `Task.any`) or
// cancelled (`task.cancel()`) before the orchestrator returns: one that
// returns while a task it created was never awaited fails with
// `UnawaitedTask`, naming the task.

import { orch } from "./runtime.js";
import { DurableError, fromImportError, fromWire } from "./failure.js";

/** Tasks the running orchestrator created and has not awaited yet, by id. */
const outstanding = new Map();

/** Forgets the tasks of a previous run (called when an orchestrator starts). */
export function beginRun() {
  outstanding.clear();
}

/** The `UnawaitedTask` failure of an orchestrator that returned while tasks it created were never awaited, or null. */
export function unawaitedFailure() {
  if (outstanding.size === 0) return null;
  const tasks = [...outstanding.values()].sort((a, b) => a.id - b.id).map((t) => t.describe());
  outstanding.clear();
  return new DurableError(
    "UnawaitedTask",
    `the orchestrator returned without awaiting ${tasks.length} task(s) it created: ${tasks.join(", ")}. ` +
      "Await every task (task.get(), yield task, Task.all, or race it with Task.any), " +
      "or call task.cancel() to stop waiting for it on purpose"
  );
}

/**
 * The value an outside client meant. Some Durable Functions clients (the
 * Python one) JSON-encode inputs and event data twice, so a string whose
 * text is a JSON object, array, number, `true`, `false` or `null` is taken
 * to be such a value and replaced by it; every other value, including a
 * string holding a JSON string, stays as it is. `"Tokyo"` stays `"Tokyo"`,
 * `'{"a":1}'` becomes `{a: 1}`, `"true"` becomes `true` and `"42"` becomes
 * `42` (a string that must stay `"42"` travels inside an object). Applied
 * to an orchestration's input and to external event payloads.
 */
export function clientValue(value) {
  if (typeof value !== "string") return value;
  let inner;
  try {
    inner = JSON.parse(value);
  } catch {
    return value;
  }
  if (typeof inner === "string" || (typeof inner === "number" && !Number.isFinite(inner))) return value;
  return inner;
}

function decode(id, json) {
  try {
    return JSON.parse(json);
  } catch (e) {
    throw new DurableError("SerializationError", `the result of task ${id} is not JSON: ${e.message}`);
  }
}

/**
 * A scheduled activity, sub-orchestration, timer, event wait or entity call.
 *
 * Like a Durable Functions task: after it has been awaited, `isCompleted`
 * is true and `result` holds its value, or `isFaulted` is true and
 * `exception` holds its DurableError.
 */
export class Task {
  /**
   * @param {number} id the host's task id
   * @param {string} kind "activity", "sub-orchestration", "timer", "event" or "entity"
   * @param {string} [what] how the task is named in an `UnawaitedTask` failure
   */
  constructor(id, kind, what) {
    /** The id the host gave this task. */
    this.id = id;
    /** "activity", "sub-orchestration", "timer", "event" or "entity" (a call of an entity operation). */
    this.kind = kind;
    this.isCompleted = false;
    this.isFaulted = false;
    this.isCancelled = false;
    this.result = undefined;
    this.exception = undefined;
    this._what = what ?? kind;
    outstanding.set(id, this);
  }

  /** How an `UnawaitedTask` failure names this task. */
  describe() {
    return `${this._what} (task ${this.id})`;
  }

  /** Marks the task as awaited (its outcome is, or will be, read). */
  _observe() {
    outstanding.delete(this.id);
  }

  /** Records an outcome: `{ ok: json }` or `{ err: DurableError }`. */
  _settle(outcome) {
    if (this.isCompleted) return;
    this.isCompleted = true;
    if ("err" in outcome) {
      this.isFaulted = true;
      this.exception = outcome.err;
    } else {
      this.result = decode(this.id, outcome.ok);
      if (this.kind === "event") this.result = clientValue(this.result);
    }
  }

  /** Blocks until the task completes; returns its result or throws its DurableError. */
  get() {
    this._observe();
    if (!this.isCompleted) {
      let outcome;
      try {
        outcome = { ok: orch.awaitTask(this.id) };
      } catch (e) {
        outcome = { err: fromImportError(e) };
      }
      this._settle(outcome);
    }
    if (this.isFaulted) throw this.exception;
    return this.result;
  }

  /**
   * Stops waiting for this task on purpose (Durable Functions' timer
   * cancellation): the orchestrator may then return without awaiting it.
   * The work itself is not stopped: an activity still runs and a timer
   * still fires (harmlessly); their results are dropped.
   */
  cancel() {
    this.isCancelled = true;
    this._observe();
  }
}

function idsOf(tasks, what) {
  if (!Array.isArray(tasks)) throw new TypeError(`${what} takes an array of tasks`);
  return tasks.map((t) => {
    if (!(t instanceof Task)) throw new TypeError(`${what} takes tasks created by the orchestration context`);
    return t.id;
  });
}

/** Waits for every task: their results in order, or throws the first failure (in order). */
export function whenAll(tasks) {
  idsOf(tasks, "Task.all");
  tasks.forEach((t) => t._observe());
  const pending = tasks.filter((t) => !t.isCompleted);
  if (pending.length > 0) {
    const outcomes = orch.awaitAll(pending.map((t) => t.id));
    pending.forEach((t, i) => {
      const o = outcomes[i];
      t._settle(o.tag === "ok" ? { ok: o.val } : { err: fromWire(o.val) });
    });
  }
  return tasks.map((t) => t.get());
}

/** Waits until one task completes (the first in history order) and returns that task. */
export function whenAny(tasks) {
  const ids = idsOf(tasks, "Task.any");
  if (ids.length === 0) throw new TypeError("Task.any needs at least one task");
  tasks.forEach((t) => t._observe());
  const done = orch.awaitAny(ids);
  const winner = tasks.find((t) => t.id === done);
  if (!winner) throw new Error(`the host completed task ${done}, which is not among ${JSON.stringify(ids)}`);
  try {
    winner.get();
  } catch {
    // A failed winner still wins; its `exception` holds the failure.
  }
  return winner;
}

/** `Task.all` / `Task.any` of the Durable Functions API: yield it to wait. */
export class TaskSet {
  constructor(mode, tasks) {
    idsOf(tasks, mode === "all" ? "Task.all" : "Task.any");
    this.mode = mode;
    this.tasks = tasks;
  }

  /** Blocks: the results (all) or the winning task (any). */
  get() {
    return this.mode === "all" ? whenAll(this.tasks) : whenAny(this.tasks);
  }
}

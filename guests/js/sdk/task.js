// Tasks: durable work an orchestrator scheduled. Creating one never blocks;
// `get()` (or `yield task` in a generator orchestrator) waits for it.

import { orch } from "./runtime.js";
import { DurableError, fromImportError, fromWire } from "./failure.js";

function decode(id, json) {
  try {
    return JSON.parse(json);
  } catch (e) {
    throw new DurableError("SerializationError", `the result of task ${id} is not JSON: ${e.message}`);
  }
}

/**
 * A scheduled activity, sub-orchestration, timer or event wait.
 *
 * Like a Durable Functions task: after it has been awaited, `isCompleted`
 * is true and `result` holds its value, or `isFaulted` is true and
 * `exception` holds its DurableError.
 */
export class Task {
  constructor(id, kind) {
    /** The id the host gave this task. */
    this.id = id;
    /** "activity", "sub-orchestration", "timer" or "event". */
    this.kind = kind;
    this.isCompleted = false;
    this.isFaulted = false;
    this.result = undefined;
    this.exception = undefined;
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
    }
  }

  /** Blocks until the task completes; returns its result or throws its DurableError. */
  get() {
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

  /** Durable Functions compatibility: a timer that lost a race is simply ignored. */
  cancel() {}
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

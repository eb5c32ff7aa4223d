// The orchestrator's view of the world. Everything it does goes through its
// context, so that it replays identically after a crash or an eviction.

import { orch, RealDate, makeLog } from "./runtime.js";
import { DurableError, fromImportError } from "./failure.js";
import { Task, TaskSet, whenAll, whenAny, beginRun, unawaitedFailure, clientValue } from "./task.js";
import { EntityId, entityIdText } from "./entity.js";

/**
 * How the host retries a failed activity or sub-orchestration (the Durable
 * Functions `RetryOptions`). The delay before retry n (n >= 1) is
 * min(firstRetryIntervalInMilliseconds * backoffCoefficient^(n-1), maxRetryIntervalInMilliseconds).
 */
/** Name of the host's built-in HTTP activity (as in Durable Functions). */
const HTTP_ACTIVITY = "BuiltIn::HttpActivity";

export class RetryOptions {
  /**
   * @param {number} firstRetryIntervalInMilliseconds delay before the first retry
   * @param {number} maxNumberOfAttempts total attempts, including the first
   */
  constructor(firstRetryIntervalInMilliseconds, maxNumberOfAttempts) {
    this.firstRetryIntervalInMilliseconds = firstRetryIntervalInMilliseconds;
    this.maxNumberOfAttempts = maxNumberOfAttempts;
    this.backoffCoefficient = 1;
    this.maxRetryIntervalInMilliseconds = undefined;
    this.retryTimeoutInMilliseconds = undefined;
  }
}

function millis(value, what) {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new TypeError(`${what} must be a non-negative number of milliseconds`);
  return Math.floor(n);
}

function optionalMillis(value, what) {
  return value === undefined || value === null ? null : millis(value, what);
}

/** A RetryOptions, or a plain object with the same fields (or the WIT names), as a WIT retry-policy. */
function retryPolicy(options) {
  if (options === null || typeof options !== "object") {
    throw new TypeError("retry options must be a RetryOptions (or an object with the same fields)");
  }
  const o = options;
  const attempts = o.maxNumberOfAttempts ?? o.maxAttempts;
  const first = o.firstRetryIntervalInMilliseconds ?? o.firstIntervalMs;
  if (!Number.isInteger(attempts) || attempts < 1) throw new TypeError("maxNumberOfAttempts must be an integer >= 1");
  const backoff = Number(o.backoffCoefficient ?? 1);
  if (!(backoff >= 1)) throw new TypeError("backoffCoefficient must be >= 1");
  return {
    maxAttempts: attempts,
    firstIntervalMs: millis(first, "firstRetryIntervalInMilliseconds"),
    backoffCoefficient: backoff,
    maxIntervalMs: optionalMillis(o.maxRetryIntervalInMilliseconds ?? o.maxIntervalMs, "maxRetryIntervalInMilliseconds"),
    retryTimeoutMs: optionalMillis(o.retryTimeoutInMilliseconds ?? o.retryTimeoutMs, "retryTimeoutInMilliseconds"),
  };
}

function toJson(value, what) {
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new DurableError("SerializationError", `${what} cannot be serialized to JSON: ${e.message}`);
  }
  return text;
}

function call(f) {
  try {
    return f();
  } catch (e) {
    throw fromImportError(e);
  }
}

/** Holds the locks taken by `lock`; `release()` (or leaving a `using` block) frees them. */
export class LockHandle {
  constructor(id) {
    this.id = id;
    this.released = false;
  }

  release() {
    if (!this.released) {
      this.released = true;
      orch.unlock(this.id);
    }
  }
}
if (typeof Symbol.dispose === "symbol") {
  LockHandle.prototype[Symbol.dispose] = LockHandle.prototype.release;
}

/**
 * The host's lock names: an EntityId (or `{ name, key }`) and a string
 * `name@key` lock that entity (`@name@key`); a string without `@` is a plain
 * lock name.
 */
function lockNames(names) {
  const flat = names.flat();
  if (flat.length === 0) throw new TypeError("lock needs at least one name");
  return flat.map((n) => {
    if (typeof n === "string" && !n.includes("@")) return n;
    if (typeof n === "string" || n instanceof EntityId || (n !== null && typeof n === "object")) return `@${entityIdText(n)}`;
    return String(n);
  });
}

/**
 * The Durable Functions shaped API (`context.df`): scheduling methods return
 * a Task without waiting. In a generator orchestrator, `yield` the task to
 * get its result; elsewhere call `task.get()`.
 */
export class DurableOrchestrationContext {
  constructor(input) {
    this._input = input;
    /** `Task.all([...])` and `Task.any([...])`, to be yielded. */
    this.Task = {
      all: (tasks) => new TaskSet("all", tasks),
      any: (tasks) => new TaskSet("any", tasks),
    };
  }

  /** Id of this orchestration instance. */
  get instanceId() {
    return orch.instanceId();
  }

  /** Id of the current execution (changes with continueAsNew). */
  get executionId() {
    return orch.executionId();
  }

  /** Name this orchestrator was started under. */
  get functionName() {
    return orch.functionName();
  }

  /** True while re-executing recorded history. */
  get isReplaying() {
    return orch.isReplaying();
  }

  /** Deterministic time: when the current episode started, as a Date. */
  get currentUtcDateTime() {
    return new RealDate(Number(orch.currentTime()));
  }

  /** A deterministic UUID (the same on every replay). */
  newGuid() {
    return orch.newGuid();
  }

  /**
   * The instance input (`null` when none was given). A string whose text is
   * a JSON object, array, number, `true`, `false` or `null` (as Durable
   * Functions' Python client sends values, encoded twice) is unwrapped;
   * other strings stay as sent.
   */
  getInput() {
    return this._input;
  }

  /** Schedules activity `name` with `input`. */
  callActivity(name, input) {
    return activityTask(orch.scheduleActivity(String(name), toJson(input, "the activity input"), null), name);
  }

  /**
   * Sends an HTTP request durably (Durable Functions' `callHttp`): the host
   * sends it, to a host granted at deploy with `--allow-http`, and records
   * the response `{statusCode, headers, content}`; replays read it from
   * history. Both spellings work: `callHttp({ method, url, body, headers })`
   * and `callHttp(method, url, body, headers)`. A refused host or a
   * transport error fails the task (`CapabilityDenied`, `HttpError`).
   */
  callHttp(options, url, body, headers) {
    const o = typeof options === "object" && options !== null ? options : { method: options, url, body, headers };
    const request = { method: String(o.method ?? "GET"), uri: String(o.url ?? o.uri) };
    const content = o.body ?? o.content;
    if (content !== undefined && content !== null) {
      request.content = typeof content === "string" ? content : toJson(content, "the HTTP body");
    }
    if (o.headers) {
      request.headers = Object.fromEntries(Object.entries(o.headers).map(([k, v]) => [k, String(v)]));
    }
    return activityTask(orch.scheduleActivity(HTTP_ACTIVITY, toJson(request, "the HTTP request"), null), HTTP_ACTIVITY);
  }

  /** Schedules activity `name`, retried by the host according to `retryOptions`. */
  callActivityWithRetry(name, retryOptions, input) {
    const policy = retryPolicy(retryOptions);
    return activityTask(orch.scheduleActivity(String(name), toJson(input, "the activity input"), policy), name);
  }

  /** Starts orchestrator `name` as a child instance (id derived by the host unless given). */
  callSubOrchestrator(name, input, instanceId) {
    const id = instanceId === undefined || instanceId === null ? null : String(instanceId);
    const json = toJson(input, "the sub-orchestration input");
    return subTask(orch.scheduleSubOrchestration(String(name), json, id, null), name);
  }

  /** Like callSubOrchestrator, retried by the host according to `retryOptions`. */
  callSubOrchestratorWithRetry(name, retryOptions, input, instanceId) {
    const policy = retryPolicy(retryOptions);
    const id = instanceId === undefined || instanceId === null ? null : String(instanceId);
    const json = toJson(input, "the sub-orchestration input");
    return subTask(orch.scheduleSubOrchestration(String(name), json, id, policy), name);
  }

  /** A durable timer that fires at `fireAt` (a Date or milliseconds since the epoch). */
  createTimer(fireAt) {
    const ms = millis(fireAt instanceof RealDate ? fireAt.getTime() : Number(fireAt), "the timer's fire time");
    const at = new RealDate(ms);
    const when = Number.isNaN(at.getTime()) ? `${ms} ms` : at.toISOString();
    return new Task(orch.createTimer(ms), "timer", `timer firing at ${when}`);
  }

  /**
   * A task completed by the next external event `name`; its result is the
   * event's payload (decoded with the client-value rule, see `getInput`).
   */
  waitForExternalEvent(name) {
    return new Task(orch.waitForEvent(String(name)), "event", `event ${JSON.stringify(String(name))}`);
  }

  /** Replaces the custom status shown by status queries; `null`/`undefined` clears it. */
  setCustomStatus(status) {
    orch.setCustomStatus(status === undefined || status === null ? null : toJson(status, "the custom status"));
  }

  /** Ends this execution and starts a fresh one with `input`. Return right after calling it. */
  continueAsNew(input, preserveUnprocessedEvents = false) {
    orch.continueAsNew(toJson(input, "the continue-as-new input"), Boolean(preserveUnprocessedEvents));
  }

  /**
   * Calls operation `operationName` of entity `entityId` (an EntityId or
   * `name@key`) with `operationInput`; the task's result is the
   * operation's result, its failure the operation's failure. Operations on
   * one entity run one at a time, in the order they arrive.
   */
  callEntity(entityId, operationName, operationInput) {
    const id = entityIdText(entityId);
    const json = toJson(operationInput, "the operation input");
    const task = call(() => orch.callEntity(id, String(operationName), json));
    return new Task(task, "entity", `call of ${JSON.stringify(String(operationName))} on entity ${id}`);
  }

  /**
   * Signals operation `operationName` of entity `entityId` (one way: no
   * result, nothing to wait for). `scheduledTime` (a Date or milliseconds
   * since the epoch) delays the delivery.
   */
  signalEntity(entityId, operationName, operationInput, scheduledTime) {
    const id = entityIdText(entityId);
    const json = toJson(operationInput, "the operation input");
    const at =
      scheduledTime === undefined || scheduledTime === null
        ? null
        : millis(scheduledTime instanceof RealDate ? scheduledTime.getTime() : Number(scheduledTime), "the signal's scheduled time");
    call(() => orch.signalEntity(id, String(operationName), json, at));
  }

  /**
   * Enters a critical section: blocks until every named lock is held
   * (`lock("a", "b")` or `lock(["a", "b"])`). Returns a LockHandle;
   * locks are also released when the instance ends.
   *
   * Entity ids lock entities (Durable Functions' critical sections):
   * `lock([new EntityId("Account", "a"), "Account@b"])`. While the
   * section is held, only this orchestration's calls and signals reach
   * those entities. A string without `@` is a plain lock name.
   */
  lock(...names) {
    const id = call(() => orch.lock(lockNames(names)));
    return new LockHandle(id);
  }
}

/**
 * The context an orchestrator receives. Its methods wait and return the
 * result (`const r = context.callActivity("SayHello", "Tokyo")`); the
 * Durable Functions API that returns tasks is `context.df`.
 */
export class OrchestrationContext {
  constructor(input) {
    /** The Durable Functions shaped API: methods return tasks. */
    this.df = new DurableOrchestrationContext(input);
    /** `Task.all(tasks)` returns the results; `Task.any(tasks)` the first completed task. */
    this.Task = { all: whenAll, any: whenAny };
    /** Replay-safe log: `context.log(...)`, `context.log.warn(...)`, ... */
    this.log = makeLog();
  }

  get instanceId() {
    return this.df.instanceId;
  }

  get executionId() {
    return this.df.executionId;
  }

  get functionName() {
    return this.df.functionName;
  }

  get isReplaying() {
    return this.df.isReplaying;
  }

  get currentUtcDateTime() {
    return this.df.currentUtcDateTime;
  }

  newGuid() {
    return this.df.newGuid();
  }

  getInput() {
    return this.df.getInput();
  }

  /** Runs activity `name` and returns its result (throws its DurableError). */
  callActivity(name, input) {
    return this.df.callActivity(name, input).get();
  }

  /** Runs activity `name` with retries and returns its result. */
  callActivityWithRetry(name, retryOptions, input) {
    return this.df.callActivityWithRetry(name, retryOptions, input).get();
  }

  /** Sends an HTTP request durably and returns the response (see `df.callHttp`). */
  callHttp(options, url, body, headers) {
    return this.df.callHttp(options, url, body, headers).get();
  }

  /** Runs orchestrator `name` as a child instance and returns its output. */
  callSubOrchestrator(name, input, instanceId) {
    return this.df.callSubOrchestrator(name, input, instanceId).get();
  }

  /** Like callSubOrchestrator, with retries. */
  callSubOrchestratorWithRetry(name, retryOptions, input, instanceId) {
    return this.df.callSubOrchestratorWithRetry(name, retryOptions, input, instanceId).get();
  }

  /** Waits until `fireAt` (a Date or milliseconds since the epoch). */
  createTimer(fireAt) {
    this.df.createTimer(fireAt).get();
  }

  /** Waits for the next external event `name` and returns its payload. */
  waitForExternalEvent(name) {
    return this.df.waitForExternalEvent(name).get();
  }

  /** Waits for every task; their results in order (throws the first failure). */
  whenAll(tasks) {
    return whenAll(tasks);
  }

  /** Waits until one task completes and returns that task. */
  whenAny(tasks) {
    return whenAny(tasks);
  }

  setCustomStatus(status) {
    this.df.setCustomStatus(status);
  }

  continueAsNew(input, preserveUnprocessedEvents = false) {
    this.df.continueAsNew(input, preserveUnprocessedEvents);
  }

  lock(...names) {
    return this.df.lock(...names);
  }

  /** Calls operation `operationName` of entity `entityId` and returns its result (throws its failure). */
  callEntity(entityId, operationName, operationInput) {
    return this.df.callEntity(entityId, operationName, operationInput).get();
  }

  /** Signals operation `operationName` of entity `entityId` (one way). */
  signalEntity(entityId, operationName, operationInput, scheduledTime) {
    this.df.signalEntity(entityId, operationName, operationInput, scheduledTime);
  }
}

function activityTask(id, name) {
  return new Task(id, "activity", `activity ${JSON.stringify(String(name))}`);
}

function subTask(id, name) {
  return new Task(id, "sub-orchestration", `sub-orchestration ${JSON.stringify(String(name))}`);
}

function isIterator(value) {
  return value !== null && typeof value === "object" && typeof value.next === "function" && typeof value.throw === "function";
}

/** What a generator gets back for a yielded value: tasks are waited for, anything else is sent back as is. */
function resolve(yielded) {
  if (yielded instanceof Task || yielded instanceof TaskSet) return yielded.get();
  if (Array.isArray(yielded) && yielded.length > 0 && yielded.every((t) => t instanceof Task)) return whenAll(yielded);
  return yielded;
}

/**
 * Runs an orchestrator function: plain functions return their output, generator
 * functions are driven (each yielded task is awaited and its result sent back in,
 * its failure thrown in).
 */
export function runOrchestrator(fn, rawInput) {
  beginRun();
  const output = drive(fn, clientValue(rawInput));
  // Only an orchestrator that returned can have forgotten a task; a throw
  // propagates as it is.
  const unawaited = unawaitedFailure();
  if (unawaited) throw unawaited;
  return output;
}

function drive(fn, input) {
  const context = new OrchestrationContext(input);
  const returned = fn(context, input);
  if (!isIterator(returned)) return returned;
  let step = returned.next();
  while (!step.done) {
    let value;
    let failed = false;
    let failure;
    try {
      value = resolve(step.value);
    } catch (e) {
      failed = true;
      failure = e;
    }
    step = failed ? returned.throw(failure) : returned.next(value);
  }
  return step.value;
}

// Durable entities: small pieces of state with operations, addressed by an
// id `name@key`. Operations on one entity run one at a time, in the order
// they arrive; each starts from the state the previous one left.
//
//   const Counter = df.entity(function (context) {
//     const count = context.df.getState(() => 0);
//     switch (context.df.operationName) {
//       case "add": context.df.setState(count + context.df.getInput()); break;
//       case "reset": context.df.setState(0); break;
//       case "get": context.df.return(count); break;
//       case "delete": context.df.destructOnExit(); break;
//       default: throw new df.DurableError("NotFound", `no operation ${context.df.operationName}`);
//     }
//   });

import { ent, RealDate, makeLog } from "./runtime.js";
import { DurableError, fromImportError } from "./failure.js";
import { clientValue } from "./task.js";

/**
 * The id of an entity: its name (the entity function it runs) and its key
 * (which instance). Cairn writes it `name@key`; the name may not contain `@`.
 */
export class EntityId {
  /**
   * @param {string} name the entity's name, e.g. "Counter"
   * @param {string} key the entity's key, e.g. "c1"
   */
  constructor(name, key) {
    if (typeof name !== "string" || name === "") throw new TypeError("an entity name must be a non-empty string");
    if (name.includes("@")) throw new TypeError(`an entity name may not contain "@": ${JSON.stringify(name)}`);
    this.name = name;
    this.key = String(key ?? "");
  }

  /** Parses `name@key` (or Durable Functions' `@name@key`). */
  static parse(text) {
    const s = String(text);
    const body = s.startsWith("@") ? s.slice(1) : s;
    const at = body.indexOf("@");
    if (at <= 0) throw new TypeError(`an entity id is written name@key, got ${JSON.stringify(s)}`);
    return new EntityId(body.slice(0, at), body.slice(at + 1));
  }

  /** `name@key`. */
  toString() {
    return `${this.name}@${this.key}`;
  }

  toJSON() {
    return { name: this.name, key: this.key };
  }
}

/**
 * An entity id as the host wants it, `name@key`, from an EntityId, an
 * object `{ name, key }`, or a string `name@key` (`@name@key` is accepted).
 */
export function entityIdText(entityId) {
  if (entityId instanceof EntityId) return entityId.toString();
  if (entityId !== null && typeof entityId === "object" && typeof entityId.name === "string") {
    return new EntityId(entityId.name, entityId.key).toString();
  }
  if (typeof entityId === "string") return EntityId.parse(entityId).toString();
  throw new TypeError("an entity id is an EntityId, an object { name, key } or a string name@key");
}

/** JSON text of `value` (`null` for undefined). */
export function toJson(value, what) {
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new DurableError("SerializationError", `${what} cannot be serialized to JSON: ${e.message}`);
  }
  return text === undefined ? "null" : text;
}

function call(f) {
  try {
    return f();
  } catch (e) {
    throw fromImportError(e);
  }
}

function timestamp(at) {
  if (at === undefined || at === null) return null;
  const ms = at instanceof RealDate ? at.getTime() : Number(at);
  if (!Number.isFinite(ms) || ms < 0) throw new TypeError("a scheduled time is a Date or milliseconds since the epoch");
  return Math.floor(ms);
}

/**
 * The Durable Functions shaped API of an entity operation (`context.df`):
 * which operation runs, with which input, on which state.
 */
export class DurableEntityContext {
  constructor(name, key, operation, input, state) {
    this._id = new EntityId(name, key);
    this._operation = operation;
    this._input = input;
    this._hasState = state !== undefined;
    this._state = state;
    this._hasResult = false;
    this._result = undefined;
  }

  /** The entity's name (the part of its id before `@`). */
  get entityName() {
    return this._id.name;
  }

  /** The entity's key (the part of its id after `@`). */
  get entityKey() {
    return this._id.key;
  }

  /** The entity's id: an EntityId `{ name, key }` (its string is `name@key`). */
  get entityId() {
    return this._id;
  }

  /** The operation to run. */
  get operationName() {
    return this._operation;
  }

  /** True when the entity had no state before this operation. */
  get isNewlyConstructed() {
    return this._isNew ?? !this._hasState;
  }

  /** The time the operation's batch started, as a Date. */
  get currentUtcDateTime() {
    return new RealDate(Number(ent.currentTime()));
  }

  /**
   * The operation's input (`null` when none). A string whose text is a JSON
   * value other than a string (as Durable Functions' Python client sends
   * values, encoded twice) is unwrapped, as an orchestration's input is.
   */
  getInput() {
    return this._input;
  }

  /** Whether the entity has a state. */
  hasState() {
    return this._hasState;
  }

  /**
   * The current state. When the entity has none, the result of
   * `initializer()` (or `undefined` without one), which is not stored
   * until `setState`. Changes made in place to a stored state object are
   * kept.
   */
  getState(initializer) {
    if (this._hasState) return this._state;
    return typeof initializer === "function" ? initializer() : undefined;
  }

  /** Replaces the state (JSON-serializable). */
  setState(state) {
    this._isNew = this.isNewlyConstructed;
    this._hasState = true;
    this._state = state;
  }

  /**
   * Deletes the entity's state when the operation ends: reading the entity
   * finds nothing, and its next operation starts from no state. A later
   * `setState` in the same operation sets a new state instead.
   */
  destructOnExit() {
    this._isNew = this.isNewlyConstructed;
    this._hasState = false;
    this._state = undefined;
  }

  /** Sets the operation's result, returned to a caller (`null` when never set). */
  return(value) {
    this._hasResult = true;
    this._result = value;
  }

  /**
   * Signals operation `operationName` of entity `entityId` (one way); it is
   * sent when this operation's batch commits, and not at all if this
   * operation fails. `scheduledTime` (a Date or milliseconds since the
   * epoch) delays the delivery.
   */
  signalEntity(entityId, operationName, operationInput, scheduledTime) {
    const id = entityIdText(entityId);
    const json = toJson(operationInput, "the operation input");
    const at = timestamp(scheduledTime);
    call(() => ent.signalEntity(id, String(operationName), json, at));
  }

  /**
   * Starts orchestrator `name` with `input` (under `instanceId`, or an id
   * derived from this operation) when this operation's batch commits;
   * returns the instance id.
   */
  startNewOrchestration(name, input, instanceId) {
    const json = toJson(input, "the orchestration input");
    const id = instanceId === undefined || instanceId === null ? null : String(instanceId);
    return call(() => ent.startOrchestration(String(name), json, id));
  }
}

/** The context an entity function receives: `context.df` and a log. */
export class EntityContext {
  constructor(df) {
    /** The Durable Functions shaped API. */
    this.df = df;
    /** Host log: `context.log(...)`, `context.log.warn(...)`, ... */
    this.log = makeLog();
  }
}

function isIterator(value) {
  return value !== null && typeof value === "object" && typeof value.next === "function" && typeof value.throw === "function";
}

/**
 * Runs one operation of entity function `fn`; returns the WIT
 * `operation-outcome` `{ state, output }` (JSON texts, `state` null when the
 * entity has no state afterwards). Throws what `fn` throws.
 */
export function runEntity(fn, name, key, operation, inputJson, stateJson) {
  let input;
  try {
    input = clientValue(JSON.parse(inputJson));
  } catch (e) {
    throw new DurableError("InvalidInput", `the input of operation ${JSON.stringify(operation)} is not JSON: ${e.message}`);
  }
  let state;
  if (stateJson !== null && stateJson !== undefined) {
    try {
      state = JSON.parse(stateJson);
    } catch (e) {
      throw new DurableError("SerializationError", `the stored state of entity ${name}@${key} is not JSON: ${e.message}`);
    }
  }
  const df = new DurableEntityContext(name, key, operation, input, state);
  let returned = fn(new EntityContext(df), input);
  if (isIterator(returned)) {
    // A generator entity function: nothing to wait for, yielded values come back as they are.
    let step = returned.next();
    while (!step.done) step = returned.next(step.value);
    returned = step.value;
  }
  if (returned !== null && typeof returned === "object" && typeof returned.then === "function") {
    throw new DurableError(
      "InvalidOutput",
      "the entity function returned a Promise; Cairn's JavaScript runtime has no event loop, so entity functions are synchronous"
    );
  }
  const output = df._hasResult ? df._result : returned;
  return {
    state: df._hasState ? toJson(df._state, "the entity state") : null,
    output: toJson(output, "the operation result"),
  };
}

// Cairn SDK for JavaScript: write orchestrators, activities and durable
// entities, export them as a Cairn component.
//
//   import * as df from "cairn-sdk";
//
//   const HelloCities = df.orchestrator(function* (context) {
//     const output = [];
//     output.push(yield context.df.callActivity("SayHello", "Tokyo"));
//     return output;
//   });
//
//   const Counter = df.entity(function (context) {
//     const count = context.df.getState(() => 0);
//     if (context.df.operationName === "add") context.df.setState(count + context.df.getInput());
//     else if (context.df.operationName === "get") context.df.return(count);
//   });
//
//   export const functions = df.app({
//     orchestrators: { HelloCities },
//     activities: { SayHello: (context, name) => `Hello ${name}!` },
//     entities: { Counter },
//   });
//
// Orchestrators are plain functions `(context, input) => output` whose
// context methods wait and return results, or generator functions in the
// Durable Functions style that `yield` the tasks of `context.df`. Activities
// are functions `(context, input) => output`. Entities are functions
// `(context) => void` that run one operation on the entity's state through
// `context.df`. Inputs, outputs and states are JSON.
//
// The component's `cairn:durable/entity` export is `entityExport` (below),
// which scripts/build-js-guests.sh exports as `entity` beside the module's
// `functions`.

import { orch, act, within, ROLE } from "./runtime.js";
import { beginActivity } from "./io.js";
import { DurableError, toWire } from "./failure.js";
import { runOrchestrator } from "./orchestration.js";
import { ActivityContext } from "./activity.js";
import { runEntity } from "./entity.js";

export { DurableError } from "./failure.js";
export { Task, TaskSet, clientValue } from "./task.js";
export { RetryOptions, LockHandle, OrchestrationContext, DurableOrchestrationContext } from "./orchestration.js";
export { ActivityContext } from "./activity.js";
export { EntityId, EntityContext, DurableEntityContext } from "./entity.js";
export { fs, path, env } from "./io.js";

const ORCHESTRATOR = Symbol("cairn.orchestrator");

/** Marks `fn` as an orchestrator (Durable Functions' `df.orchestrator`). */
export function orchestrator(fn) {
  if (typeof fn !== "function") throw new TypeError("orchestrator() takes a function");
  const marked = (context, input) => fn(context, input);
  marked[ORCHESTRATOR] = fn;
  return marked;
}

const ENTITY = Symbol("cairn.entity");

/**
 * Marks `fn` as an entity function (Durable Functions' `df.entity`): it runs
 * one operation, `context.df.operationName`, on the entity's state.
 */
export function entity(fn) {
  if (typeof fn !== "function") throw new TypeError("entity() takes a function");
  const marked = (context, input) => fn(context, input);
  marked[ENTITY] = fn;
  return marked;
}

/** Registered functions, in registration order: name -> { kind, fn }. */
const registry = new Map();
/** Registered entities, in registration order: name -> { kind: "entity", fn }. */
const entityRegistry = new Map();

function isAsync(fn) {
  const tag = fn[Symbol.toStringTag];
  return tag === "AsyncFunction" || tag === "AsyncGeneratorFunction";
}

function register(kind, name, fn) {
  if (typeof name !== "string" || name === "") throw new TypeError(`${kind} names must be non-empty strings`);
  if (typeof fn !== "function") throw new TypeError(`${kind} ${name} must be a function`);
  const target = fn[ORCHESTRATOR] ?? fn[ENTITY] ?? fn;
  if (kind === "entity" && name.includes("@")) throw new TypeError(`entity name ${name} may not contain "@"`);
  if (kind !== "entity" && fn[ENTITY]) throw new TypeError(`${kind} ${name} is an entity: register it under entities`);
  if (kind === "entity" && fn[ORCHESTRATOR]) throw new TypeError(`entity ${name} is an orchestrator: register it under orchestrators`);
  if (isAsync(target) && (kind === "orchestrator" || kind === "entity" || ROLE === "all")) {
    throw new TypeError(
      `${kind} ${name} is an async function, but Cairn's JavaScript runtime for orchestrators and for ` +
        `activities without WASI (QuickJS, synchronous) has no ` +
        `event loop to settle promises: remove \`async\`/\`await\`. Waiting is synchronous here: ` +
        `context.callActivity(...) returns the result, or \`yield\` a task in a function* orchestrator.`
    );
  }
  if (kind === "activity" && (fn[ORCHESTRATOR] || target[Symbol.toStringTag] === "GeneratorFunction")) {
    throw new TypeError(`activity ${name} is an orchestrator or a generator function: register it under orchestrators`);
  }
  const names = kind === "entity" ? entityRegistry : registry;
  if (names.has(name)) throw new TypeError(`${kind === "entity" ? "entity" : "function"} ${name} is registered twice`);
  names.set(name, { kind, fn });
}

function decodeInput(input) {
  try {
    return JSON.parse(input);
  } catch (e) {
    throw new DurableError("InvalidInput", `the input is not JSON: ${e.message}`);
  }
}

function encodeOutput(value) {
  if (ROLE === "activities" && value !== null && typeof value === "object" && typeof value.then === "function") {
    return value.then(encodeOutput);
  }
  if (value !== null && typeof value === "object" && typeof value.then === "function") {
    throw new DurableError(
      "InvalidOutput",
      "the function returned a Promise; Cairn's JavaScript runtime has no event loop, so functions must return their result"
    );
  }
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new DurableError("SerializationError", `the output cannot be serialized to JSON: ${e.message}`);
  }
  return text === undefined ? "null" : text;
}

/** Whether this build of the component serves functions of `kind`. */
function served(kind) {
  if (ROLE === "activities") return kind === "activity";
  if (ROLE === "orchestrators") return kind === "orchestrator" || kind === "entity";
  return true;
}

/**
 * An activity of an "activities" build (StarlingMonkey): it may be async
 * (`await fetch(...)`); the export returns the Promise, which the runtime's
 * event loop settles before the call returns to the host.
 */
function runIoActivity(fn, seed, input) {
  beginActivity();
  let result;
  try {
    result = within("activity", seed, () => fn(new ActivityContext(), decodeInput(input)));
  } catch (e) {
    throw toWire(e);
  }
  if (result !== null && typeof result === "object" && typeof result.then === "function") {
    return result.then(encodeOutput).catch((e) => {
      throw toWire(e);
    });
  }
  return encodeOutput(result);
}

/** The `cairn:durable/functions` export: what the componentizer binds to. */
const functions = {
  list() {
    return [...registry].filter(([, { kind }]) => served(kind)).map(([name, { kind }]) => ({ name, kind }));
  },

  run(name, input) {
    const entry = registry.get(name);
    try {
      if (!entry || !served(entry.kind)) throw new DurableError("NotFound", `this component has no function named ${JSON.stringify(name)}`);
      if (entry.kind === "orchestrator") {
        const seed = `${orch.instanceId()}\u0000${orch.executionId()}`;
        return within("orchestrator", seed, () => encodeOutput(runOrchestrator(entry.fn, decodeInput(input))));
      }
      const seed = `${act.idempotencyKey()}\u0000${act.attempt()}`;
      if (ROLE === "activities") return runIoActivity(entry.fn, seed, input);
      return within("activity", seed, () => encodeOutput(entry.fn(new ActivityContext(), decodeInput(input))));
    } catch (e) {
      throw toWire(e);
    }
  },
};

/**
 * The `cairn:durable/entity` export (the entry module exports it as
 * `entity`: `export { entityExport as entity } from "cairn-sdk"`, which
 * scripts/build-js-guests.sh adds). A component without entities exports
 * it too, and lists no entity names.
 */
export const entityExport = {
  entities() {
    return served("entity") ? [...entityRegistry.keys()] : [];
  },

  runOperation(name, key, operation, input, state) {
    const entry = entityRegistry.get(name);
    try {
      if (!entry || !served("entity")) throw new DurableError("NotFound", `this component has no entity named ${JSON.stringify(name)}`);
      const seed = `${name}@${key}\u0000${operation}\u0000${input}\u0000${state ?? ""}`;
      return within("entity", seed, () => runEntity(entry.fn, name, key, operation, input, state));
    } catch (e) {
      throw toWire(e);
    }
  },
};

/**
 * Registers functions and returns the component's `functions` export:
 *
 *   export const functions = app({ orchestrators: { Name: fn }, activities: { Name: fn } });
 *
 * An orchestrator is `(context, input) => output` or a generator function
 * (optionally wrapped in `orchestrator(...)`); an activity is
 * `(context, input) => output`; an entity is `(context) => void` (optionally
 * wrapped in `entity(...)`), registered under `entities`. `app()` without
 * arguments returns the same export after `app.orchestration` /
 * `app.activity` / `app.entity` registrations.
 */
export function app(spec = {}) {
  for (const [name, fn] of Object.entries(spec.orchestrators ?? {})) register("orchestrator", name, fn);
  for (const [name, fn] of Object.entries(spec.activities ?? {})) register("activity", name, fn);
  for (const [name, fn] of Object.entries(spec.entities ?? {})) register("entity", name, fn);
  return functions;
}

/** Durable Functions v4 style: `app.orchestration("Name", function* (context) { ... })`. */
app.orchestration = (name, fnOrOptions) =>
  register("orchestrator", name, typeof fnOrOptions === "function" ? fnOrOptions : fnOrOptions?.handler);

/** Durable Functions v4 style: `app.activity("Name", { handler: (input, context) => ... })`. */
app.activity = (name, fnOrOptions) => {
  if (typeof fnOrOptions === "function") return register("activity", name, fnOrOptions);
  const handler = fnOrOptions?.handler;
  if (typeof handler !== "function") throw new TypeError(`activity ${name} needs a handler function`);
  if (isAsync(handler)) return register("activity", name, handler);
  return register("activity", name, (context, input) => handler(input, context));
};

/** Durable Functions v4 style: `app.entity("Counter", function (context) { ... })` or `{ handler }`. */
app.entity = (name, fnOrOptions) =>
  register("entity", name, typeof fnOrOptions === "function" ? fnOrOptions : fnOrOptions?.handler);

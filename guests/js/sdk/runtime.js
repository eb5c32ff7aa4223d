// What runs around a function call: which kind of function is running, and
// the replay-safe stand-ins for the global clock, randomness and console.
//
// Components are built with `componentize-qjs --stub-wasi`: they import no
// WASI at all, so QuickJS's own clock and console would trap, and its
// Math.random would replay the sequence frozen into the build snapshot in
// every instance. This module replaces them once, at build time:
// - in an orchestrator, `Date.now()` / `new Date()` read the episode time
//   (`current-time`, the same value on every replay) and `Math.random()` is a
//   PRNG seeded by the instance and execution ids (the same sequence on
//   every replay);
// - in an entity operation, `Date.now()` reads the time its batch started
//   and `Math.random()` is seeded by the entity id, the operation, its input
//   and the state it starts from;
// - in an activity, `Math.random()` is seeded by the task's idempotency key
//   and attempt, and reading the clock throws an Error that says what to do;
// - `console.*` goes to the host's log: the replay-safe `log` of the
//   orchestration (suppressed while replaying), the entity's or the
//   activity's `log`.

import * as orchModule from "cairn:durable/orchestration@0.1.0";
import * as actModule from "cairn:durable/activity-context@0.1.0";
import * as entModule from "cairn:durable/entity-context@0.1.0";

// componentize-qjs binds an interface as the module's default export,
// componentize-js (StarlingMonkey) as its named exports.
const orch = orchModule.default ?? orchModule;
const act = actModule.default ?? actModule;
const ent = entModule.default ?? entModule;

export { orch, act, ent };

/**
 * Which part of a project this build is (set by the entry module that
 * scripts/build-js-guests.sh generates): "all" (every function, no WASI),
 * "orchestrators" (no WASI) or "activities" (componentize-js with WASI:
 * real clocks, randomness, fetch, files and environment under the grants).
 */
export const ROLE = globalThis.__cairnBuildRole ?? "all";

/** The original Date constructor (for `currentUtcDateTime`). */
export const RealDate = globalThis.Date;

/** `null` between calls; `{ kind: "orchestrator" | "activity" | "entity", random }` during one. */
let current = null;

/** Runs `body` as a function of `kind`; `seed` seeds Math.random. */
export function within(kind, seed, body) {
  const previous = current;
  current = { kind, random: seededRandom(seed) };
  try {
    return body();
  } finally {
    current = previous;
  }
}

export function currentKind() {
  return current ? current.kind : null;
}

function seededRandom(seedText) {
  // FNV-1a of the seed, then a splitmix-style 32-bit mixer; two outputs make
  // one double with 53 random bits. Not for cryptography.
  let h = 0x811c9dc5;
  for (let i = 0; i < seedText.length; i++) {
    h ^= seedText.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  let state = h | 0;
  const next32 = () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
}

function nowMs() {
  if (current && current.kind === "orchestrator") return Number(orch.currentTime());
  if (current && current.kind === "entity") return Number(ent.currentTime());
  if (ROLE === "activities") return RealDate.now();
  if (current && current.kind === "activity") {
    throw new Error(
      "Date.now() and new Date() have no clock in a JavaScript activity: Cairn builds JS components " +
        "with componentize-qjs --stub-wasi, which imports no WASI clock. Pass the time in the activity's " +
        "input (the orchestrator has context.df.currentUtcDateTime)."
    );
  }
  throw new Error(
    "Date.now() and new Date() are only available while a Cairn function runs (not at module load, " +
      "which happens at build time)"
  );
}

function CairnDate(...args) {
  if (!new.target) return new RealDate(nowMs()).toString();
  return Reflect.construct(RealDate, args.length === 0 ? [nowMs()] : args, new.target);
}
CairnDate.prototype = RealDate.prototype;
CairnDate.now = nowMs;
CairnDate.parse = RealDate.parse;
CairnDate.UTC = RealDate.UTC;
Object.defineProperty(CairnDate, "name", { value: "Date" });
globalThis.Date = CairnDate;

const realRandom = Math.random;
const entropy = new Uint32Array(2);
Math.random = function random() {
  if (ROLE === "activities" && globalThis.crypto && typeof globalThis.crypto.getRandomValues === "function") {
    // Real randomness (WASI random) in activities that have it: the engine's
    // own PRNG state was frozen into the build snapshot.
    globalThis.crypto.getRandomValues(entropy);
    return ((entropy[0] >>> 5) * 67108864 + (entropy[1] >>> 6)) / 9007199254740992;
  }
  return current ? current.random() : realRandom();
};

function show(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ? `${value.name}: ${value.message}\n${value.stack}` : String(value);
  if (value === undefined || typeof value === "function" || typeof value === "symbol") return String(value);
  try {
    const text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v));
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

/** Writes one log line to the host's log of the running function. */
export function log(level, args) {
  if (!current) {
    // After an `await` in an async activity, still inside the host's call.
    if (ROLE === "activities") act.log(level, args.map(show).join(" "));
    return;
  }
  const message = args.map(show).join(" ");
  if (current.kind === "orchestrator") orch.log(level, message);
  else if (current.kind === "entity") ent.log(level, message);
  else act.log(level, message);
}

globalThis.console = {
  log: (...a) => log("info", a),
  info: (...a) => log("info", a),
  debug: (...a) => log("debug", a),
  trace: (...a) => log("trace", a),
  warn: (...a) => log("warn", a),
  error: (...a) => log("error", a),
};

/** A `log` function with level methods: `log(...)`, `log.warn(...)`, ... */
export function makeLog() {
  const f = (...args) => log("info", args);
  f.trace = (...args) => log("trace", args);
  f.debug = (...args) => log("debug", args);
  f.verbose = f.debug;
  f.info = (...args) => log("info", args);
  f.warn = (...args) => log("warn", args);
  f.error = (...args) => log("error", args);
  return f;
}

// What an activity knows about the call it serves.

import { act, log } from "./runtime.js";

/**
 * The context an activity receives as its first argument. Activities run at
 * least once: use `idempotencyKey` to make side effects idempotent.
 */
export class ActivityContext {
  constructor() {
    const f = (...args) => log("info", args);
    f.trace = (...args) => log("trace", args);
    f.debug = (...args) => log("debug", args);
    f.verbose = f.debug;
    f.info = (...args) => log("info", args);
    f.warn = (...args) => log("warn", args);
    f.error = (...args) => log("error", args);
    /** Host log: `context.log(...)`, `context.log.warn(...)`, ... */
    this.log = f;
  }

  /** Id of the orchestration instance that scheduled this activity. */
  get instanceId() {
    return act.instanceId();
  }

  /** Name of the activity being run. */
  get functionName() {
    return act.functionName();
  }

  /** `<instance-id>:<execution-id>:<task-id>`, stable across retries and redeliveries. */
  get idempotencyKey() {
    return act.idempotencyKey();
  }

  /** 1 for the first delivery, incremented on every redelivery or retry. */
  get attempt() {
    return act.attempt();
  }
}

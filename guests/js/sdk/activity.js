// What an activity knows about the call it serves.

import { act, makeLog } from "./runtime.js";

/**
 * The context an activity receives as its first argument. Activities run at
 * least once: use `idempotencyKey` to make side effects idempotent.
 */
export class ActivityContext {
  constructor() {
    /** Host log: `context.log(...)`, `context.log.warn(...)`, ... */
    this.log = makeLog();
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

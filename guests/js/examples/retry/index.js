// Automatic retries: the host retries a failing activity with exponential
// backoff, and the orchestrator only sees the final outcome.
//
// - Orchestrator `RetryFlaky`, input `{"fail_times": f}` (a missing input or
//   `fail_times` means 2): calls `FlakyActivity` with `{"fail_times": f}`
//   under a retry policy of at most 5 attempts, 50 ms before the first retry
//   and a backoff coefficient of 2.0 (retries after 50, 100, 200, 400 ms).
//   Returns what the activity returned, e.g. `{"succeeded_on_attempt": 3}`
//   for `f = 2`. With `f >= 5` every attempt fails and so does the
//   orchestration, with the last attempt's `TransientError`.
// - Activity `FlakyActivity`, input `{"fail_times": f}`: throws
//   `TransientError` ("attempt <n> failed (fails <f> times)") while its
//   attempt number `n` (1-based) is `<= f`, then returns
//   `{"succeeded_on_attempt": n}`.

import * as cairn from "cairn-sdk";

class TransientError extends Error {}

function failTimesOf(input) {
  const failTimes = input?.fail_times ?? 2;
  if (!Number.isInteger(failTimes) || failTimes < 0) {
    throw new cairn.DurableError("InvalidInput", "fail_times must be a non-negative integer");
  }
  return failTimes;
}

function RetryFlaky(context, input) {
  const retry = new cairn.RetryOptions(50, 5);
  retry.backoffCoefficient = 2.0;
  return context.callActivityWithRetry("FlakyActivity", retry, { fail_times: failTimesOf(input) });
}

function FlakyActivity(context, input) {
  const failTimes = failTimesOf(input);
  const attempt = context.attempt;
  if (attempt <= failTimes) {
    context.log.warn(`attempt ${attempt} fails`);
    throw new TransientError(`attempt ${attempt} failed (fails ${failTimes} times)`);
  }
  return { succeeded_on_attempt: attempt };
}

export const functions = cairn.app({
  orchestrators: { RetryFlaky },
  activities: { FlakyActivity },
});

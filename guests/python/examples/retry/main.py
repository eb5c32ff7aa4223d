"""Automatic retries: the host retries a failing activity with exponential
backoff, and the orchestrator only sees the final outcome.

- Orchestrator `RetryFlaky`, input `{"fail_times": f}` (a missing input
  or `fail_times` means 2): calls `FlakyActivity` with `{"fail_times": f}`
  under a retry policy of at most 5 attempts, 50 ms before the first retry
  and a backoff coefficient of 2.0 (retries after 50, 100, 200, 400 ms).
  Returns what the activity returned, e.g. `{"succeeded_on_attempt": 3}`
  for `f = 2`. With `f >= 5` every attempt fails and so does the
  orchestration, with the last attempt's `TransientError`.
- Activity `FlakyActivity`, input `{"fail_times": f}`: fails with
  `TransientError` ("attempt <n> failed (fails <f> times)") while its
  attempt number `n` (1-based) is `<= f`, then returns
  `{"succeeded_on_attempt": n}`.

Written as plain code; the activity raises its own exception class, whose
name becomes the failure's error type.
"""

import cairn_sdk
from cairn_sdk import RetryOptions

app = cairn_sdk.App()


class TransientError(Exception):
    """A failure worth retrying."""


@app.orchestrator("RetryFlaky")
def retry_flaky(context):
    fail_times = (context.get_input() or {}).get("fail_times", 2)
    retry = RetryOptions(50, 5, backoff_coefficient=2.0)
    return context.call_activity_with_retry("FlakyActivity", retry, {"fail_times": fail_times})


@app.activity("FlakyActivity")
def flaky_activity(context: cairn_sdk.ActivityContext, input_: dict) -> dict:
    attempt = context.attempt
    fail_times = input_.get("fail_times", 2)
    if attempt <= fail_times:
        print(f"attempt {attempt} fails")
        raise TransientError(f"attempt {attempt} failed (fails {fail_times} times)")
    return {"succeeded_on_attempt": attempt}


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

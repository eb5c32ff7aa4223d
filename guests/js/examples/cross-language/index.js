// Cross-language: one JavaScript orchestration whose activities are served by
// components written in Rust, JavaScript and Python. The orchestrator only
// knows activity names; the host routes each call to the component that
// registered the name, and typed failures cross every language.
//
// Deploy with it: target/guests/rust/hello-cities.wasm (`SayHello`),
// target/guests/rust/retry.wasm (`FlakyActivity`) and, for the Python part,
// target/guests/python/error-handling.wasm (`NotifyCustomer`, `ChargeCard`).
//
// - Orchestrator `CrossLanguage`, input `{"city": c, "python": p}` (a
//   missing input or `city` means "Tokyo"; `python` defaults to false):
//   1. Rust `SayHello` with c -> "Hello Tokyo!";
//   2. JavaScript `Shout` with that greeting -> "HELLO TOKYO!";
//   3. Rust `FlakyActivity` with `{"fail_times": 1}`, whose first attempt
//      fails with `TransientError`; caught here;
//   4. when p is true: Python `NotifyCustomer` with the shouted greeting,
//      and Python `ChargeCard` with `{"amount": 100}`, which raises
//      `PaymentDeclined`; caught here.
//   Returns `{"rust": "Hello Tokyo!", "javascript": "HELLO TOKYO!",
//   "rust_error": {"error_type": "TransientError", "message": "attempt 1
//   failed (fails 1 times)"}}` plus, with p, `"python": "notified: HELLO
//   TOKYO!"` and `"python_error": {"error_type": "PaymentDeclined",
//   "message": "card declined for amount 100"}`.
// - Activity `Shout`, input a string: returns it in upper case.

import * as cairn from "cairn-sdk";

function caught(f) {
  try {
    f();
    return null;
  } catch (failure) {
    return { error_type: failure.errorType, message: failure.message };
  }
}

function CrossLanguage(context, input) {
  const city = input?.city ?? "Tokyo";
  const rust = context.callActivity("SayHello", city);
  const javascript = context.callActivity("Shout", rust);
  const out = {
    rust,
    javascript,
    rust_error: caught(() => context.callActivity("FlakyActivity", { fail_times: 1 })),
  };
  if (input?.python === true) {
    out.python = context.callActivity("NotifyCustomer", javascript);
    out.python_error = caught(() => context.callActivity("ChargeCard", { amount: 100 }));
  }
  return out;
}

function Shout(context, text) {
  return String(text).toUpperCase();
}

export const functions = cairn.app({
  orchestrators: { CrossLanguage },
  activities: { Shout },
});

// Error handling: an activity's typed failure reaches the orchestrator,
// which catches it with try/catch and runs a compensating activity.
//
// - Orchestrator `HandleErrors`, input `{"amount": x}` (a missing input or
//   `amount` means 100): calls `ChargeCard` with `{"amount": x}`.
//   - On success returns `{"status": "charged"}`.
//   - On failure calls `NotifyCustomer` with the failure's message and
//     returns `{"status": "compensated", "error_type": ..., "error_message":
//     ..., "notification": ...}`; for `x = 100`:
//     `{"status": "compensated", "error_type": "PaymentDeclined",
//     "error_message": "card declined for amount 100", "notification":
//     "notified: card declined for amount 100"}`.
// - Activity `ChargeCard`, input `{"amount": x}`: throws `PaymentDeclined`
//   ("card declined for amount <x>") when `x > 50`, else returns `"charged"`.
// - Activity `NotifyCustomer`, input a message string: returns
//   `"notified: <message>"`.

import * as cairn from "cairn-sdk";

/** The error's class name is the failure's type: "PaymentDeclined". */
class PaymentDeclined extends Error {}

function amountOf(input) {
  const amount = input?.amount ?? 100;
  if (typeof amount !== "number") throw new cairn.DurableError("InvalidInput", "amount must be a number");
  return amount;
}

function HandleErrors(context, input) {
  const amount = amountOf(input);
  try {
    context.callActivity("ChargeCard", { amount });
    return { status: "charged" };
  } catch (failure) {
    // `failure` is a DurableError: errorType "PaymentDeclined", and the message.
    context.log.warn(`charge failed (${failure}), compensating`);
    const notification = context.callActivity("NotifyCustomer", failure.message);
    return {
      status: "compensated",
      error_type: failure.errorType,
      error_message: failure.message,
      notification,
    };
  }
}

function ChargeCard(context, payment) {
  const amount = amountOf(payment);
  if (amount > 50) throw new PaymentDeclined(`card declined for amount ${amount}`);
  return "charged";
}

function NotifyCustomer(context, message) {
  return `notified: ${message}`;
}

export const functions = cairn.app({
  orchestrators: { HandleErrors },
  activities: { ChargeCard, NotifyCustomer },
});

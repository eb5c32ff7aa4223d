"""Error handling: an activity's typed failure reaches the orchestrator,
which catches it with `try`/`except` and runs a compensating activity.

- Orchestrator `HandleErrors`, input `{"amount": x}` (a missing input or
  `amount` means 100): calls `ChargeCard` with `{"amount": x}`.
  - On success returns `{"status": "charged"}`.
  - On failure calls `NotifyCustomer` with the failure's message and
    returns `{"status": "compensated", "error_type": ..., "error_message":
    ..., "notification": ...}`; for `x = 100`:
    `{"status": "compensated", "error_type": "PaymentDeclined",
    "error_message": "card declined for amount 100", "notification":
    "notified: card declined for amount 100"}`.
- Activity `ChargeCard`, input `{"amount": x}`: fails with
  `PaymentDeclined` ("card declined for amount <x>") when `x > 50`, else
  returns `"charged"`.
- Activity `NotifyCustomer`, input a message string: returns
  `"notified: <message>"`.

Written in the Durable Functions generator style: a failed task raises at
its `yield`.
"""

import cairn_sdk
from cairn_sdk import ActivityFailedError

app = cairn_sdk.App()


class PaymentDeclined(Exception):
    """The card was declined: the failure's error type is the class name."""


@app.orchestrator("HandleErrors")
def handle_errors(context):
    payment = context.get_input() or {"amount": 100}
    payment.setdefault("amount", 100)
    try:
        yield context.call_activity("ChargeCard", payment)
        return {"status": "charged"}
    except ActivityFailedError as failure:
        # `root_cause` sees through a host wrapper, should there be one.
        cause = failure.root_cause()
        context.log_warn(f"charge failed ({cause}), compensating")
        notification = yield context.call_activity("NotifyCustomer", cause.message)
        return {
            "status": "compensated",
            "error_type": cause.error_type,
            "error_message": cause.message,
            "notification": notification,
        }


@app.activity("ChargeCard")
def charge_card(payment: dict) -> str:
    amount = payment["amount"]
    if not isinstance(amount, (int, float)) or amount > 50:
        raise PaymentDeclined(f"card declined for amount {amount}")
    return "charged"


@app.activity("NotifyCustomer")
def notify_customer(message: str) -> str:
    return f"notified: {message}"


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

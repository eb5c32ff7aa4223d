//! Error handling: an activity's typed failure reaches the orchestrator,
//! which catches it like any `Result` and runs a compensating activity.
//!
//! - Orchestrator `HandleErrors`, input `{"amount": x}` (a missing input or
//!   `amount` means 100): calls `ChargeCard` with `{"amount": x}`.
//!   - On success returns `{"status": "charged"}`.
//!   - On failure calls `NotifyCustomer` with the failure's message and
//!     returns `{"status": "compensated", "error_type": ..., "error_message":
//!     ..., "notification": ...}`; for `x = 100`:
//!     `{"status": "compensated", "error_type": "PaymentDeclined",
//!     "error_message": "card declined for amount 100", "notification":
//!     "notified: card declined for amount 100"}`.
//! - Activity `ChargeCard`, input `{"amount": x}`: fails with
//!   `PaymentDeclined` ("card declined for amount <x>") when `x > 50`, else
//!   returns `"charged"`.
//! - Activity `NotifyCustomer`, input a message string: returns
//!   `"notified: <message>"`.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value, json};

cairn_sdk::register! {
    orchestrators: { "HandleErrors" => handle_errors },
    activities: {
        "ChargeCard" => charge_card,
        "NotifyCustomer" => notify_customer,
    },
}

/// Input of `HandleErrors` and `ChargeCard`. The amount is kept as the JSON
/// number it was given as, so that messages show it the same way.
#[derive(Serialize, Deserialize)]
struct Payment {
    #[serde(default = "default_amount")]
    amount: Number,
}

fn default_amount() -> Number {
    Number::from(100)
}

fn handle_errors(ctx: &OrchestrationContext, input: Option<Payment>) -> Result<Value, Failure> {
    let payment = input.unwrap_or(Payment {
        amount: default_amount(),
    });
    match ctx.call_activity::<_, String>("ChargeCard", &payment) {
        Ok(_) => Ok(json!({ "status": "charged" })),
        Err(failure) => {
            // `root_cause` sees through a host wrapper, should there be one.
            let cause = failure.root_cause();
            ctx.log_warn(format!("charge failed ({cause}), compensating"));
            let notification: String = ctx.call_activity("NotifyCustomer", &cause.message)?;
            Ok(json!({
                "status": "compensated",
                "error_type": cause.error_type,
                "error_message": cause.message,
                "notification": notification,
            }))
        }
    }
}

fn charge_card(_ctx: &ActivityContext, payment: Payment) -> Result<String, Failure> {
    let amount = payment.amount.as_f64().unwrap_or(f64::INFINITY);
    if amount > 50.0 {
        return Err(Failure::new(
            "PaymentDeclined",
            format!("card declined for amount {}", payment.amount),
        ));
    }
    Ok("charged".to_string())
}

fn notify_customer(_ctx: &ActivityContext, message: String) -> Result<String, Failure> {
    Ok(format!("notified: {message}"))
}

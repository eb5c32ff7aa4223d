//! Critical sections: a transfer holds the locks of both accounts while it
//! debits one and credits the other, so that no other orchestration can
//! touch either account in between.
//!
//! - Orchestrator `TransferFunds`, input
//!   `{"from": "acct-a", "to": "acct-b", "amount": n}` (a missing input or
//!   field takes the value shown, and `amount` defaults to 100; `from` and
//!   `to` must differ, else `InvalidInput`): takes the locks `[from, to]`,
//!   calls `Debit` then `Credit`, releases the locks and returns both
//!   results, e.g. `["debited 100 from acct-a", "credited 100 to acct-b"]`.
//! - Activity `Debit`, input `{"account": ..., "amount": n}`: returns
//!   `"debited <n> from <account>"`.
//! - Activity `Credit`, input `{"account": ..., "amount": n}`: returns
//!   `"credited <n> to <account>"`.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde::{Deserialize, Serialize};
use serde_json::Number;

cairn_sdk::register! {
    orchestrators: { "TransferFunds" => transfer_funds },
    activities: {
        "Debit" => debit,
        "Credit" => credit,
    },
}

/// Input of `TransferFunds`.
#[derive(Deserialize)]
struct Transfer {
    #[serde(default = "default_from")]
    from: String,
    #[serde(default = "default_to")]
    to: String,
    /// Kept as the JSON number it was given as.
    #[serde(default = "default_amount")]
    amount: Number,
}

impl Default for Transfer {
    fn default() -> Self {
        Transfer {
            from: default_from(),
            to: default_to(),
            amount: default_amount(),
        }
    }
}

fn default_from() -> String {
    "acct-a".to_string()
}

fn default_to() -> String {
    "acct-b".to_string()
}

fn default_amount() -> Number {
    Number::from(100)
}

/// Input of `Debit` and `Credit`.
#[derive(Serialize, Deserialize)]
struct Entry {
    account: String,
    amount: Number,
}

fn transfer_funds(
    ctx: &OrchestrationContext,
    input: Option<Transfer>,
) -> Result<[String; 2], Failure> {
    let transfer = input.unwrap_or_default();
    if transfer.from == transfer.to {
        return Err(Failure::invalid_input(format!(
            "cannot transfer from {} to itself",
            transfer.from
        )));
    }

    // Blocks until both locks are held; dropping the guard releases them.
    let guard = ctx.lock(&[&transfer.from, &transfer.to])?;
    let debited: String = ctx.call_activity(
        "Debit",
        &Entry {
            account: transfer.from,
            amount: transfer.amount.clone(),
        },
    )?;
    let credited: String = ctx.call_activity(
        "Credit",
        &Entry {
            account: transfer.to,
            amount: transfer.amount,
        },
    )?;
    guard.release();

    Ok([debited, credited])
}

fn debit(_ctx: &ActivityContext, entry: Entry) -> Result<String, Failure> {
    Ok(format!("debited {} from {}", entry.amount, entry.account))
}

fn credit(_ctx: &ActivityContext, entry: Entry) -> Result<String, Failure> {
    Ok(format!("credited {} to {}", entry.amount, entry.account))
}

//! Durable entities: the counter of the Durable Functions aggregator
//! pattern, bank accounts, and a transfer that locks two accounts.
//!
//! - Entity `Counter` (state: a number): `add` (input: a number), `reset`,
//!   `get` (returns the count), `delete`.
//! - Entity `Account` (state: the balance, a number): `deposit` and
//!   `withdraw` (input: a positive amount; a withdrawal larger than the
//!   balance fails with `InsufficientFunds` and changes nothing),
//!   `balance` (returns the balance).
//! - Orchestrator `Transfer`, input `{"from": "a", "to": "b", "amount": n}`
//!   (account keys): locks `Account@from` and `Account@to`, reads the
//!   balance of `from`, and when it covers `amount` withdraws it from
//!   `from` and deposits it to `to`, all inside the critical section.
//!   Returns `{"transferred": true|false, "from_balance": <balance before>}`.

use cairn_sdk::{EntityContext, Failure, OrchestrationContext};
use serde::{Deserialize, Serialize};

cairn_sdk::register! {
    orchestrators: { "Transfer" => transfer },
    entities: {
        "Counter" => counter,
        "Account" => account,
    },
}

fn counter(ctx: &mut EntityContext<i64>) -> Result<(), Failure> {
    match ctx.operation_name() {
        "add" => {
            let amount: i64 = ctx.input()?;
            let count = ctx.state_or_default();
            *count = count.saturating_add(amount);
        }
        "reset" => ctx.set_state(0),
        "get" => {
            let count = ctx.state().copied().unwrap_or(0);
            ctx.set_result(&count);
        }
        "delete" => ctx.delete_state(),
        other => return Err(unknown(other)),
    }
    Ok(())
}

fn account(ctx: &mut EntityContext<i64>) -> Result<(), Failure> {
    match ctx.operation_name() {
        "deposit" => {
            let amount = positive(ctx.input()?)?;
            let balance = ctx.state_or_default();
            *balance = balance.saturating_add(amount);
        }
        "withdraw" => {
            let amount = positive(ctx.input()?)?;
            let balance = ctx.state().copied().unwrap_or(0);
            if amount > balance {
                return Err(Failure::new(
                    "InsufficientFunds",
                    format!(
                        "cannot withdraw {amount} from {}: the balance is {balance}",
                        ctx.entity_id()
                    ),
                ));
            }
            ctx.set_state(balance - amount);
        }
        "balance" => {
            let balance = ctx.state().copied().unwrap_or(0);
            ctx.set_result(&balance);
        }
        "delete" => ctx.delete_state(),
        other => return Err(unknown(other)),
    }
    Ok(())
}

fn positive(amount: i64) -> Result<i64, Failure> {
    if amount > 0 {
        Ok(amount)
    } else {
        Err(Failure::invalid_input(format!(
            "the amount must be positive, got {amount}"
        )))
    }
}

fn unknown(operation: &str) -> Failure {
    Failure::not_found(format!("no operation named {operation:?}"))
}

/// Input of `Transfer`.
#[derive(Deserialize)]
struct TransferInput {
    from: String,
    to: String,
    amount: i64,
}

/// Output of `Transfer`.
#[derive(Serialize)]
struct TransferOutput {
    transferred: bool,
    from_balance: i64,
}

fn transfer(ctx: &OrchestrationContext, input: TransferInput) -> Result<TransferOutput, Failure> {
    if input.from == input.to {
        return Err(Failure::invalid_input(format!(
            "cannot transfer from {} to itself",
            input.from
        )));
    }
    let from = format!("Account@{}", input.from);
    let to = format!("Account@{}", input.to);
    let _section = ctx.lock_entities(&[&from, &to])?;
    let from_balance: i64 = ctx.call_entity(&from, "balance", &())?;
    if from_balance < input.amount {
        return Ok(TransferOutput {
            transferred: false,
            from_balance,
        });
    }
    ctx.call_entity::<_, ()>(&from, "withdraw", &input.amount)?;
    ctx.call_entity::<_, ()>(&to, "deposit", &input.amount)?;
    Ok(TransferOutput {
        transferred: true,
        from_balance,
    })
}

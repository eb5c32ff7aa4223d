//! A fan-out of slow activities, for crash-recovery tests: `SlowFanOut`
//! with `{"count": n, "sleep_ms": m}` runs `n` `SlowSquare` activities that
//! each sleep `m` milliseconds, and returns the sum of the squares of
//! `0..n`. Each `SlowSquare` execution first prints
//! `slow-square <idempotency key> attempt <n>` (crash tests count the lines
//! in the host log to measure duplicate executions).

use std::time::Duration;

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext, Task};
use serde::{Deserialize, Serialize};

cairn_sdk::register! {
    orchestrators: { "SlowFanOut" => slow_fan_out },
    activities: { "SlowSquare" => slow_square },
}

/// Defaults: 10 activities of 100 ms.
#[derive(Deserialize)]
struct FanOutInput {
    #[serde(default = "default_count")]
    count: u32,
    #[serde(default = "default_sleep_ms")]
    sleep_ms: u64,
}

fn default_count() -> u32 {
    10
}

fn default_sleep_ms() -> u64 {
    100
}

#[derive(Serialize, Deserialize)]
struct SquareInput {
    i: i64,
    sleep_ms: u64,
}

fn slow_fan_out(ctx: &OrchestrationContext, input: Option<FanOutInput>) -> Result<i64, Failure> {
    let (count, sleep_ms) = input.map_or((default_count(), default_sleep_ms()), |i| {
        (i.count, i.sleep_ms)
    });
    let tasks: Vec<Task<i64>> = (0..count)
        .map(|i| {
            let input = SquareInput {
                i: i64::from(i),
                sleep_ms,
            };
            ctx.schedule_activity("SlowSquare", &input)
        })
        .collect();
    Ok(ctx.when_all(&tasks)?.iter().sum())
}

fn slow_square(ctx: &ActivityContext, input: SquareInput) -> Result<i64, Failure> {
    println!(
        "slow-square {} attempt {}",
        ctx.idempotency_key(),
        ctx.attempt()
    );
    std::thread::sleep(Duration::from_millis(input.sleep_ms));
    input.i.checked_mul(input.i).ok_or_else(|| {
        Failure::invalid_input(format!("{} squared does not fit in an i64", input.i))
    })
}

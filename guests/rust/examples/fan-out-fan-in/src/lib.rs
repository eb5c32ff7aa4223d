//! Fan-out/fan-in: `FanOutFanIn` squares `0..count` in parallel with the
//! activity `Square` and returns the sum of the squares. `RaceFirst` starts
//! the same activities and returns the result of whichever completes first
//! (first in history order, so replays pick the same one).

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext, Task};
use serde::Deserialize;

cairn_sdk::register! {
    orchestrators: {
        "FanOutFanIn" => fan_out_fan_in,
        "RaceFirst" => race_first,
    },
    activities: { "Square" => square },
}

/// Input of both orchestrators: `{"count": n}`; a missing input or a missing
/// `count` means 10.
#[derive(Deserialize)]
struct CountInput {
    #[serde(default = "default_count")]
    count: u32,
}

fn default_count() -> u32 {
    10
}

fn count_of(input: Option<CountInput>) -> u32 {
    input.map_or_else(default_count, |i| i.count)
}

fn schedule_squares(ctx: &OrchestrationContext, count: u32) -> Vec<Task<i64>> {
    (0..count)
        .map(|i| ctx.schedule_activity("Square", &i))
        .collect()
}

fn fan_out_fan_in(ctx: &OrchestrationContext, input: Option<CountInput>) -> Result<i64, Failure> {
    let tasks = schedule_squares(ctx, count_of(input));
    let squares = ctx.when_all(&tasks)?;
    Ok(squares.iter().sum())
}

fn race_first(ctx: &OrchestrationContext, input: Option<CountInput>) -> Result<i64, Failure> {
    let count = count_of(input);
    if count == 0 {
        return Err(Failure::invalid_input("count must be at least 1"));
    }
    let tasks = schedule_squares(ctx, count);
    let first = ctx.when_any(&tasks);
    tasks[first].get()
}

fn square(_ctx: &ActivityContext, i: i64) -> Result<i64, Failure> {
    i.checked_mul(i)
        .ok_or_else(|| Failure::invalid_input(format!("{i} squared does not fit in an i64")))
}

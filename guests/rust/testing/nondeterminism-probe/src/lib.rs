//! An orchestrator that breaks every determinism rule while importing only
//! what orchestrators may import (wasi:clocks, wasi:random, wasi:io, wasi:cli),
//! so the host accepts it and each replay can see different values:
//! - `HashMapClockRandom` (any input): in its first episode records the
//!   iteration order of a `HashMap` of 50 keys, `SystemTime::now()`,
//!   `Instant::now()`, 4 `u64`s from `getrandom`, 4 `RandomState` hashes and
//!   `ctx.new_guid()` as `first`, sends `first` through the activity `Echo`
//!   (so history holds the live values), then returns
//!   `{"first", "recorded", "system_time_after_ms", "instant_elapsed_ns"}`.
//!   Deterministic iff `first == recorded` when `first` was recomputed by a
//!   replay.
//! - `Echo` (any input): returns its input.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "HashMapClockRandom" => hash_map_clock_random },
    activities: { "Echo" => echo },
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn hash_map_clock_random(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    let map: HashMap<String, usize> = (0..50).map(|i| (format!("key-{i}"), i)).collect();
    let hash_order: Vec<&String> = map.keys().collect();
    let instant_before = Instant::now();
    let randoms = (0..4)
        .map(|_| getrandom::u64())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|e| Failure::new("RandomError", format!("getrandom failed: {e}")))?;
    let random_state_hashes: Vec<u64> = (0..4)
        .map(|_| RandomState::new().hash_one("probe"))
        .collect();
    // Everything the first episode observed. On replay it is computed again;
    // the activity's copy (recorded in history) is what the live run saw.
    let first = json!({
        "hash_order": hash_order,
        "system_time_ms": now_ms(),
        "instant": format!("{instant_before:?}"),
        "randoms": randoms,
        "random_state_hashes": random_state_hashes,
        "guid": ctx.new_guid(),
    });
    let recorded: Value = ctx.call_activity("Echo", &first)?;
    let instant_after = Instant::now();
    Ok(json!({
        "first": first,
        "recorded": recorded,
        "system_time_after_ms": now_ms(),
        "instant_elapsed_ns": instant_after.duration_since(instant_before).as_nanos(),
    }))
}

fn echo(_ctx: &ActivityContext, input: Value) -> Result<Value, Failure> {
    Ok(input)
}

//! An orchestrator that breaks every determinism rule while importing only
//! what orchestrators may import (wasi:clocks, wasi:random, wasi:io, wasi:cli),
//! so the host accepts it and each replay can see different values:
//! - `HashMapClockRandom` (any input): builds a `HashMap` of 50 string keys
//!   (`key-0` .. `key-49`) and records its iteration order, reads
//!   `SystemTime::now()` and `Instant::now()` before and after calling the
//!   activity `Echo` with the input, draws 4 `u64`s from `getrandom` (wasi
//!   random) and hashes `"probe"` with 4 fresh `RandomState`s, then calls
//!   `ctx.new_guid()`. Returns
//!   `{"hash_order": [..50 keys], "system_time_before_ms", "system_time_after_ms",
//!   "instant_before", "instant_after", "instant_elapsed_ns", "randoms": [4 u64],
//!   "random_state_hashes": [4 u64], "guid", "activity_result"}`, where
//!   `instant_*` are the `Debug` renderings of the raw monotonic instants.
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

fn hash_map_clock_random(ctx: &OrchestrationContext, input: Value) -> Result<Value, Failure> {
    let map: HashMap<String, usize> = (0..50).map(|i| (format!("key-{i}"), i)).collect();
    let hash_order: Vec<&String> = map.keys().collect();

    let system_time_before_ms = now_ms();
    let instant_before = Instant::now();
    let activity_result: Value = ctx.call_activity("Echo", &input)?;
    let system_time_after_ms = now_ms();
    let instant_after = Instant::now();

    let randoms = (0..4)
        .map(|_| getrandom::u64())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|e| Failure::new("RandomError", format!("getrandom failed: {e}")))?;
    let random_state_hashes: Vec<u64> = (0..4)
        .map(|_| RandomState::new().hash_one("probe"))
        .collect();
    let guid = ctx.new_guid();

    Ok(json!({
        "hash_order": hash_order,
        "system_time_before_ms": system_time_before_ms,
        "system_time_after_ms": system_time_after_ms,
        "instant_before": format!("{instant_before:?}"),
        "instant_after": format!("{instant_after:?}"),
        "instant_elapsed_ns": instant_after.duration_since(instant_before).as_nanos(),
        "randoms": randoms,
        "random_state_hashes": random_state_hashes,
        "guid": guid,
        "activity_result": activity_result,
    }))
}

fn echo(_ctx: &ActivityContext, input: Value) -> Result<Value, Failure> {
    Ok(input)
}

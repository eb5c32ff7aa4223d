//! Functions that misbehave inside the sandbox, for host limit tests:
//! - `InfiniteLoop` (any input): spins forever without calling the host.
//! - `CallsSpinActivity` (any input): calls the activity `SpinActivity`,
//!   which spins forever; returns whatever the activity returns (never).
//! - `MemoryBomb` (any input; `{"graceful": true}` changes the ending): keeps
//!   allocating 1 MiB chunks (each one written to) and holding on to them.
//!   By default the allocation that fails aborts the component (a trap,
//!   "memory allocation of 1048576 bytes failed" on stderr); with
//!   `"graceful": true` it uses `try_reserve` instead and fails with
//!   `AllocationFailed`, details `{"mib": <MiB held>}`.
//! - `DeepRecursion` (any input): unbounded non-tail recursion with 256
//!   bytes of stack per frame; overflows Rust's 1 MiB shadow stack in linear
//!   memory (a trap: "out of bounds memory access"). With `{"native": true}`
//!   the frames hold no memory, so the recursion exhausts wasmtime's native
//!   wasm stack instead (a trap: "call stack exhausted").
//! - `Quick` (any input): returns its input immediately.
//! - `WarmWorker` (any input): calls `CountCalls` three times, then
//!   `Panics`, then `CountCalls` again; returns the five results, with the
//!   panic as its error type: `[1, 2, 3, "Panic", 1]` when activity
//!   instances are reused between calls and dropped after a trap.
//!   `CountCalls` returns how often this instance has run it (a global
//!   counter); `Panics` panics.
//! - `Chatty` `{"lines": n}`: prints `chatty before <instance id>` to stdout,
//!   calls `ChattyActivity` with `n`, prints `chatty after <instance id>` and
//!   returns the activity's result. `ChattyActivity` `n` prints `n` lines of
//!   100 characters to stdout and `n` to stderr, then returns `n`.
//! - `HugeOutput` `{"bytes": n, "as_status"?: bool}`: returns a JSON string
//!   of `n` `x` characters (the serialized output is `n + 2` bytes, with the
//!   quotes); with `as_status`, sets that string as its custom status
//!   instead and returns `"small"`.
//! - `ManyTasks` `{"count": n}`: schedules `n` `Noop` activity tasks without
//!   awaiting them; returns `n`. `Noop` (any input) returns `null`.
//! - `BlockingSleep` `{"ms": n, "in_activity"?: bool}`: sleeps `n` ms with
//!   `std::thread::sleep` (a blocking wait on the WASI monotonic clock) and
//!   returns `n`; with `in_activity`, calls `SleepActivity` with `n` instead,
//!   which does the same sleep in an activity (where the clock is real) and
//!   returns `n`.
//! - `Nested` (any input): holds the lock `a` while it asks for the lock `b`;
//!   returns `{"nested_error_type": <error type of the second lock's
//!   failure>}` (expected: `LockError`), or `{"nested_error_type": null}` if
//!   the nested lock was granted.

use std::hint::black_box;

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext, Task};
use serde::Deserialize;
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: {
        "InfiniteLoop" => infinite_loop,
        "CallsSpinActivity" => calls_spin_activity,
        "MemoryBomb" => memory_bomb,
        "DeepRecursion" => deep_recursion,
        "Quick" => quick,
        "Chatty" => chatty,
        "WarmWorker" => warm_worker,
        "HugeOutput" => huge_output,
        "ManyTasks" => many_tasks,
        "Nested" => nested,
        "BlockingSleep" => blocking_sleep,
    },
    activities: {
        "SpinActivity" => spin_activity,
        "Noop" => noop,
        "ChattyActivity" => chatty_activity,
        "CountCalls" => count_calls,
        "Panics" => panics,
        "SleepActivity" => sleep_activity,
    },
}

const MIB: usize = 1 << 20;

/// Spins forever; `black_box` keeps the loop from being optimized away.
fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

fn infinite_loop(_ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    spin()
}

fn calls_spin_activity(ctx: &OrchestrationContext, input: Value) -> Result<Value, Failure> {
    ctx.call_activity("SpinActivity", &input)
}

fn spin_activity(_ctx: &ActivityContext, _input: Value) -> Result<Value, Failure> {
    spin()
}

/// A 1 MiB chunk whose every page is written, so it is really allocated.
fn filled_chunk(mut chunk: Vec<u8>, seed: usize) -> Vec<u8> {
    chunk.resize(MIB, 0);
    for (i, byte) in chunk.iter_mut().enumerate().step_by(4096) {
        *byte = (i ^ seed) as u8 | 1;
    }
    black_box(chunk)
}

fn memory_bomb(_ctx: &OrchestrationContext, input: Value) -> Result<Value, Failure> {
    let graceful = input
        .get("graceful")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = if graceful {
            let mut chunk = Vec::new();
            if chunk.try_reserve_exact(MIB).is_err() || chunks.try_reserve(1).is_err() {
                return Err(Failure::new(
                    "AllocationFailed",
                    format!("allocation failed after {} MiB", chunks.len()),
                )
                .with_details(json!({ "mib": chunks.len() })));
            }
            chunk
        } else {
            Vec::with_capacity(MIB)
        };
        let seed = chunks.len();
        chunks.push(filled_chunk(chunk, seed));
        black_box(&chunks);
    }
}

/// Recurses until the stack runs out: the local buffer lives on the stack
/// (its address escapes through `black_box`), and the addition after the call
/// keeps the recursion from being turned into a loop.
fn recurse(depth: u64) -> u64 {
    let buffer = black_box([depth as u8; 256]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(u64::from(buffer[(depth % 256) as usize]))
}

/// Recurses until the native wasm stack runs out: no local has its address
/// taken (so nothing lives in linear memory), and the multiply-add after the
/// call is not an accumulator LLVM can turn into a loop.
fn recurse_native(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    recurse_native(depth + 1)
        .wrapping_mul(3)
        .wrapping_add(depth)
}

fn deep_recursion(_ctx: &OrchestrationContext, input: Value) -> Result<u64, Failure> {
    let native = input
        .get("native")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(if native {
        recurse_native(black_box(0))
    } else {
        recurse(0)
    })
}

fn quick(_ctx: &OrchestrationContext, input: Value) -> Result<Value, Failure> {
    Ok(input)
}

#[derive(Deserialize)]
struct HugeOutputInput {
    bytes: usize,
    #[serde(default)]
    as_status: bool,
}

fn huge_output(ctx: &OrchestrationContext, input: HugeOutputInput) -> Result<String, Failure> {
    let huge = "x".repeat(input.bytes);
    if input.as_status {
        ctx.set_custom_status(&huge);
        return Ok("small".into());
    }
    Ok(huge)
}

#[derive(Deserialize)]
struct ManyTasksInput {
    count: u32,
}

fn many_tasks(ctx: &OrchestrationContext, input: ManyTasksInput) -> Result<u32, Failure> {
    for _ in 0..input.count {
        let _task: Task<Value> = ctx.schedule_activity("Noop", &Value::Null);
    }
    Ok(input.count)
}

fn noop(_ctx: &ActivityContext, _input: Value) -> Result<Value, Failure> {
    Ok(Value::Null)
}

fn nested(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    let outer = ctx.lock(&["a"])?;
    let nested_error_type = match ctx.lock(&["b"]) {
        Ok(inner) => {
            inner.release();
            None
        }
        Err(failure) => Some(failure.error_type),
    };
    outer.release();
    Ok(json!({ "nested_error_type": nested_error_type }))
}

#[derive(Deserialize)]
struct ChattyInput {
    lines: u32,
}

fn chatty(ctx: &OrchestrationContext, input: ChattyInput) -> Result<u32, Failure> {
    println!("chatty before {}", ctx.instance_id());
    let printed = ctx.call_activity("ChattyActivity", &input.lines)?;
    println!("chatty after {}", ctx.instance_id());
    Ok(printed)
}

fn chatty_activity(_ctx: &ActivityContext, lines: u32) -> Result<u32, Failure> {
    for i in 0..lines {
        println!("{i:>10} {}", "-".repeat(89));
        eprintln!("{i}");
    }
    Ok(lines)
}

fn warm_worker(ctx: &OrchestrationContext, _input: Value) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(ctx.call_activity("CountCalls", &())?);
    }
    match ctx.call_activity::<_, Value>("Panics", &()) {
        Ok(v) => out.push(v),
        Err(f) => out.push(json!(f.error_type)),
    }
    out.push(ctx.call_activity("CountCalls", &())?);
    Ok(out)
}

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn count_calls(_ctx: &ActivityContext, _input: Value) -> Result<u32, Failure> {
    Ok(CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
}

fn panics(_ctx: &ActivityContext, _input: Value) -> Result<u32, Failure> {
    panic!("this activity always panics")
}

#[derive(Deserialize)]
struct SleepInput {
    ms: u64,
    #[serde(default)]
    in_activity: bool,
}

fn blocking_sleep(ctx: &OrchestrationContext, input: SleepInput) -> Result<u64, Failure> {
    if input.in_activity {
        return ctx.call_activity("SleepActivity", &input.ms);
    }
    std::thread::sleep(std::time::Duration::from_millis(input.ms));
    Ok(input.ms)
}

fn sleep_activity(_ctx: &ActivityContext, ms: u64) -> Result<u64, Failure> {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(ms)
}

//! Write Cairn orchestrators, activities and durable entities in Rust.
//!
//! A Cairn component is a WebAssembly component (built for `wasm32-wasip2`,
//! as a `cdylib`) that serves one or more named functions. Orchestrators are
//! plain sequential code: waiting for a task blocks inside the host, which
//! records every result so that the orchestrator replays identically after a
//! crash. Activities do the actual work, and may run more than once.
//!
//! Functions take a context and a `serde`-deserializable input, and return a
//! `serde`-serializable output or a [`Failure`]. [`register!`] exports them:
//!
//! ```no_run
//! use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
//!
//! cairn_sdk::register! {
//!     orchestrators: { "HelloCities" => hello_cities },
//!     activities: { "SayHello" => say_hello },
//! }
//!
//! fn hello_cities(ctx: &OrchestrationContext, _input: ()) -> Result<Vec<String>, Failure> {
//!     let mut greetings = Vec::new();
//!     for city in ["Tokyo", "Seattle", "London"] {
//!         greetings.push(ctx.call_activity("SayHello", city)?);
//!     }
//!     Ok(greetings)
//! }
//!
//! fn say_hello(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
//!     Ok(format!("Hello {name}!"))
//! }
//! # fn main() {}
//! ```
//!
//! The component's crate depends on `cairn-sdk`, `serde` and `serde_json`
//! only.
//!
//! ## Orchestrators
//!
//! Scheduling work ([`OrchestrationContext::schedule_activity`],
//! [`create_timer`](OrchestrationContext::create_timer),
//! [`wait_for_event`](OrchestrationContext::wait_for_event), ...) never
//! blocks and returns a [`Task`]; [`Task::get`],
//! [`when_all`](OrchestrationContext::when_all) and
//! [`when_any`](OrchestrationContext::when_any) block until results exist:
//!
//! ```no_run
//! # use cairn_sdk::{Failure, OrchestrationContext, Task};
//! fn fan_out(ctx: &OrchestrationContext, n: u32) -> Result<i64, Failure> {
//!     let tasks: Vec<Task<i64>> = (0..n).map(|i| ctx.schedule_activity("Square", &i)).collect();
//!     Ok(ctx.when_all(&tasks)?.iter().sum())
//! }
//! ```
//!
//! Every task must be awaited ([`Task::get`], `when_all`, `when_any`) or
//! [cancelled](Task::cancel) before the orchestrator returns: one that
//! returns while a task it created was never awaited fails with
//! `UnawaitedTask`, naming the task. (`Task` is also `#[must_use]`, so the
//! compiler warns about a task that is dropped at once.)
//!
//! An orchestrator is re-executed from the start whenever it resumes, so it
//! must be deterministic: it takes time and ids from its context
//! ([`current_utc_datetime`](OrchestrationContext::current_utc_datetime),
//! [`new_guid`](OrchestrationContext::new_guid)) and leaves I/O, clocks and
//! randomness to activities.
//!
//! ## Inputs from Durable Functions clients
//!
//! Durable Functions' Python client JSON-encodes inputs and event data
//! twice (`{"timeout_ms": 60000}` arrives as the JSON string
//! `"{\"timeout_ms\": 60000}"`, `True` as `"true"`). An orchestrator's
//! input and external event payloads are therefore decoded with one rule
//! (the same in the JavaScript and Python SDKs): when the value is a JSON
//! string whose text is a JSON object, array, number, `true`, `false` or
//! `null`, and the declared type accepts that inner value, the function
//! gets the inner value; otherwise the value as sent. A `String` parameter
//! always gets the string as sent; `serde_json::Value` gets the inner
//! value. Activity inputs and task results are decoded as sent.
//!
//! A panic ends the function: the message is written to stderr and the
//! component traps, which the host reports as a failure.

#![warn(missing_docs)]
#![deny(unsafe_code)]

/// `log_debug`, `log_info`, `log_warn` and `log_error` for a context type
/// with a `log(level, message)` method.
macro_rules! level_logs {
    () => {
        /// Logs at [`LogLevel::Debug`].
        pub fn log_debug(&self, message: impl AsRef<str>) {
            self.log(LogLevel::Debug, message);
        }

        /// Logs at [`LogLevel::Info`].
        pub fn log_info(&self, message: impl AsRef<str>) {
            self.log(LogLevel::Info, message);
        }

        /// Logs at [`LogLevel::Warn`].
        pub fn log_warn(&self, message: impl AsRef<str>) {
            self.log(LogLevel::Warn, message);
        }

        /// Logs at [`LogLevel::Error`].
        pub fn log_error(&self, message: impl AsRef<str>) {
            self.log(LogLevel::Error, message);
        }
    };
}
pub(crate) use level_logs;

mod activity;
mod codec;
mod entity;
mod failure;
mod http;
mod orchestration;

pub use activity::ActivityContext;
pub use entity::EntityContext;
pub use failure::Failure;
pub use http::{DurableHttpRequest, DurableHttpResponse};
pub use orchestration::{AnyTask, LockGuard, OrchestrationContext, RetryOptions, Task, TaskId};

/// Bindings generated from the Cairn WIT (world `cairn:durable/app-entities`).
/// Not a stable API: use the types of this crate instead.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "cairn:durable/app-entities",
        pub_export_macro: true,
        export_macro_name: "__export_cairn",
        default_bindings_module: "cairn_sdk::__bindings",
    });
}

use __bindings::cairn::durable::types as wit;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging information.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected, but handled.
    Warn,
    /// Something failed.
    Error,
}

#[doc(hidden)]
impl From<LogLevel> for wit::LogLevel {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Trace => wit::LogLevel::Trace,
            LogLevel::Debug => wit::LogLevel::Debug,
            LogLevel::Info => wit::LogLevel::Info,
            LogLevel::Warn => wit::LogLevel::Warn,
            LogLevel::Error => wit::LogLevel::Error,
        }
    }
}

/// Serializes a value handed to the host. Failing here is a bug in the
/// value's `Serialize` implementation (or e.g. a map with non-string keys),
/// not bad input, so it panics with a clear message.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_string(value) {
        Ok(json) => json,
        Err(e) => panic!("cairn-sdk: value cannot be serialized to JSON: {e}"),
    }
}

/// Exports the component's functions.
///
/// ```ignore
/// cairn_sdk::register! {
///     orchestrators: { "Name" => function, ... },
///     activities: { "Name" => function, ... },
///     entities: { "Name" => function, ... },
/// }
/// ```
///
/// Any section may be omitted, but they come in this order. An
/// orchestrator is a `fn(&OrchestrationContext, I) -> Result<O, Failure>`, an
/// activity a `fn(&ActivityContext, I) -> Result<O, Failure>`, where
/// `I: DeserializeOwned` and `O: Serialize`; an entity is a
/// `fn(&mut EntityContext<S>) -> Result<(), Failure>` with its state type
/// `S: Serialize + DeserializeOwned` (see [`EntityContext`]). Input that
/// does not deserialize into `I` fails with `InvalidInput`; an unknown name
/// fails with `NotFound`. Use the macro once per component, at module level.
#[macro_export]
macro_rules! register {
    (
        $(orchestrators: { $($oname:literal => $ofn:path),* $(,)? } $(,)?)?
        $(activities: { $($aname:literal => $afn:path),* $(,)? } $(,)?)?
        $(entities: { $($ename:literal => $efn:path),* $(,)? } $(,)?)?
    ) => {
        #[doc(hidden)]
        pub struct __CairnFunctions;

        impl $crate::__private::Guest for __CairnFunctions {
            #[allow(unused_mut)]
            fn list() -> ::std::vec::Vec<$crate::__private::FunctionInfo> {
                let mut functions = ::std::vec::Vec::new();
                $($(functions.push($crate::__private::orchestrator_info($oname));)*)?
                $($(functions.push($crate::__private::activity_info($aname));)*)?
                functions
            }

            fn run(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::WitFailure> {
                $crate::__private::install_panic_hook();
                match name.as_str() {
                    $($($oname => $crate::__private::run_orchestrator(&input, $ofn),)*)?
                    $($($aname => $crate::__private::run_activity(&input, $afn),)*)?
                    other => $crate::__private::not_found(other),
                }
            }
        }

        impl $crate::__private::EntityGuest for __CairnFunctions {
            #[allow(unused_mut)]
            fn entities() -> ::std::vec::Vec<::std::string::String> {
                let mut names = ::std::vec::Vec::new();
                $($(names.push(::std::string::String::from($ename));)*)?
                names
            }

            fn run_operation(
                name: ::std::string::String,
                key: ::std::string::String,
                operation: ::std::string::String,
                input: ::std::string::String,
                state: ::std::option::Option<::std::string::String>,
            ) -> ::std::result::Result<$crate::__private::OperationOutcome, $crate::__private::WitFailure> {
                $crate::__private::install_panic_hook();
                match name.as_str() {
                    $($($ename => $crate::__private::run_entity(name, key, operation, input, state, $efn),)*)?
                    other => $crate::__private::entity_not_found(other),
                }
            }
        }

        $crate::__bindings::__export_cairn!(__CairnFunctions with_types_in $crate::__bindings);
    };
}

/// Support code for [`register!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    use std::io::Write;
    use std::sync::Once;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    pub use crate::__bindings::cairn::durable::types::{
        Failure as WitFailure, FunctionInfo, FunctionKind,
    };
    pub use crate::__bindings::exports::cairn::durable::entity::{
        Guest as EntityGuest, OperationOutcome,
    };
    pub use crate::__bindings::exports::cairn::durable::functions::Guest;
    use crate::{ActivityContext, EntityContext, Failure, OrchestrationContext};

    pub fn run_entity<S, F>(
        name: String,
        key: String,
        operation: String,
        input: String,
        state: Option<String>,
        f: F,
    ) -> Result<OperationOutcome, WitFailure>
    where
        S: Serialize + DeserializeOwned,
        F: FnOnce(&mut EntityContext<S>) -> Result<(), Failure>,
    {
        crate::entity::run(name, key, operation, input, state, f)
            .map(|(state, output)| OperationOutcome { state, output })
            .map_err(Into::into)
    }

    pub fn entity_not_found(name: &str) -> Result<OperationOutcome, WitFailure> {
        Err(Failure::not_found(format!("this component has no entity named {name:?}")).into())
    }

    pub fn orchestrator_info(name: &str) -> FunctionInfo {
        FunctionInfo {
            name: name.to_string(),
            kind: FunctionKind::Orchestrator,
        }
    }

    pub fn activity_info(name: &str) -> FunctionInfo {
        FunctionInfo {
            name: name.to_string(),
            kind: FunctionKind::Activity,
        }
    }

    pub fn run_orchestrator<I, O, F>(input: &str, f: F) -> Result<String, WitFailure>
    where
        I: DeserializeOwned,
        O: Serialize,
        F: FnOnce(&OrchestrationContext, I) -> Result<O, Failure>,
    {
        let ctx = OrchestrationContext::new();
        crate::orchestration::begin_run();
        let outcome = crate::codec::from_client_json(input)
            .map_err(invalid_input)
            .and_then(|input| f(&ctx, input));
        // Only an orchestrator that returned can have forgotten a task; a
        // failure is reported as it is.
        let outcome = match (outcome, crate::orchestration::unawaited_failure()) {
            (Ok(_), Some(unawaited)) => Err(unawaited),
            (outcome, _) => outcome,
        };
        finish(outcome)
    }

    pub fn run_activity<I, O, F>(input: &str, f: F) -> Result<String, WitFailure>
    where
        I: DeserializeOwned,
        O: Serialize,
        F: FnOnce(&ActivityContext, I) -> Result<O, Failure>,
    {
        let ctx = ActivityContext::new();
        finish(decode(input).and_then(|input| f(&ctx, input)))
    }

    pub fn not_found(name: &str) -> Result<String, WitFailure> {
        Err(Failure::not_found(format!("this component has no function named {name:?}")).into())
    }

    fn decode<I: DeserializeOwned>(input: &str) -> Result<I, Failure> {
        serde_json::from_str(input).map_err(invalid_input)
    }

    fn invalid_input(e: serde_json::Error) -> Failure {
        Failure::invalid_input(format!("the input does not have the expected type: {e}"))
    }

    fn finish<O: Serialize>(outcome: Result<O, Failure>) -> Result<String, WitFailure> {
        outcome
            .and_then(|output| {
                serde_json::to_string(&output).map_err(|e| {
                    Failure::new(
                        "SerializationError",
                        format!("the output cannot be serialized: {e}"),
                    )
                })
            })
            .map_err(Into::into)
    }

    /// Makes sure a panic leaves its message on stderr (captured by the
    /// host) as one line: `panicked at <file>:<line>:<col>: <message>`.
    pub fn install_panic_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_else(|| "<unknown>".to_string());
                let _ = writeln!(std::io::stderr(), "panicked at {location}: {message}");
            }));
        });
    }
}

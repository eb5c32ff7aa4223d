//! Durable entities: small pieces of state with operations, addressed by
//! an id `name@key`. Operations on one entity run one at a time, in the
//! order they arrive; each starts from the state the previous one left.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::cairn::durable::entity_context as host;
use crate::codec::from_client_json;
use crate::{Failure, LogLevel, to_json};

/// An entity operation's view: its name and input, the entity's state
/// (typed `S`), its result, and the signals and orchestration starts it
/// sends (they go out when the operation's batch commits, and not at all
/// when the operation fails).
///
/// ```no_run
/// use cairn_sdk::{EntityContext, Failure};
///
/// cairn_sdk::register! {
///     entities: { "Counter" => counter },
/// }
///
/// fn counter(ctx: &mut EntityContext<i64>) -> Result<(), Failure> {
///     match ctx.operation_name() {
///         "add" => {
///             let amount: i64 = ctx.input()?;
///             *ctx.state_or_default() += amount;
///         }
///         "reset" => ctx.set_state(0),
///         "get" => ctx.set_result(&ctx.state().copied().unwrap_or(0)),
///         "delete" => ctx.delete_state(),
///         other => return Err(Failure::not_found(format!("no operation {other:?}"))),
///     }
///     Ok(())
/// }
/// # fn main() {}
/// ```
pub struct EntityContext<S> {
    name: String,
    key: String,
    operation: String,
    input: String,
    state: Option<S>,
    result: String,
    _state: PhantomData<S>,
}

impl<S: Serialize + DeserializeOwned> EntityContext<S> {
    /// The entity's name (the part of its id before `@`).
    pub fn entity_name(&self) -> &str {
        &self.name
    }

    /// The entity's key (the part of its id after `@`).
    pub fn entity_key(&self) -> &str {
        &self.key
    }

    /// The entity's id, `name@key`.
    pub fn entity_id(&self) -> String {
        format!("{}@{}", self.name, self.key)
    }

    /// The operation to run.
    pub fn operation_name(&self) -> &str {
        &self.operation
    }

    /// The operation's input. Inputs from Durable Functions clients that
    /// arrive double-encoded are decoded as orchestration inputs are.
    ///
    /// # Errors
    /// `InvalidInput` when the input does not have type `T`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        from_client_json(&self.input).map_err(|e| {
            Failure::invalid_input(format!(
                "the input of operation {:?} does not have the expected type: {e}",
                self.operation
            ))
        })
    }

    /// The current state; `None` when the entity has none yet (or it was deleted).
    pub fn state(&self) -> Option<&S> {
        self.state.as_ref()
    }

    /// Whether the entity has a state.
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// The state, set to `S::default()` first when there is none.
    pub fn state_or_default(&mut self) -> &mut S
    where
        S: Default,
    {
        self.state.get_or_insert_with(S::default)
    }

    /// Replaces the state.
    pub fn set_state(&mut self, state: S) {
        self.state = Some(state);
    }

    /// Deletes the entity's state: reading the entity finds nothing, and
    /// its next operation starts from no state.
    pub fn delete_state(&mut self) {
        self.state = None;
    }

    /// Sets the operation's result, returned to a caller (`null` when unset).
    pub fn set_result<T: Serialize + ?Sized>(&mut self, result: &T) {
        self.result = to_json(result);
    }

    /// Signals operation `operation` of entity `entity` (`name@key`).
    ///
    /// # Errors
    /// `InvalidInput` for a malformed entity id or operation name.
    pub fn signal_entity<I: Serialize + ?Sized>(
        &self,
        entity: &str,
        operation: &str,
        input: &I,
    ) -> Result<(), Failure> {
        Ok(host::signal_entity(
            entity,
            operation,
            &to_json(input),
            None,
        )?)
    }

    /// Signals operation `operation` of entity `entity`, delivered at `at`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed entity id or operation name.
    pub fn schedule_signal<I: Serialize + ?Sized>(
        &self,
        entity: &str,
        operation: &str,
        input: &I,
        at: SystemTime,
    ) -> Result<(), Failure> {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        Ok(host::signal_entity(
            entity,
            operation,
            &to_json(input),
            Some(u64::try_from(ms).unwrap_or(u64::MAX)),
        )?)
    }

    /// Starts orchestrator `name` with `input` (under `instance_id`, or an
    /// id derived from this operation); returns the instance id.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed name, input or instance id.
    pub fn start_new_orchestration<I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
        instance_id: Option<&str>,
    ) -> Result<String, Failure> {
        Ok(host::start_orchestration(
            name,
            &to_json(input),
            instance_id,
        )?)
    }

    /// The time the operation's batch started.
    pub fn current_utc_datetime(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(host::current_time())
    }

    /// Logs a line under the entity's id.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        host::log(level.into(), message.as_ref());
    }

    crate::level_logs!();
}

/// Runs one operation of an entity function (support code for
/// [`crate::register!`]).
pub(crate) fn run<S, F>(
    name: String,
    key: String,
    operation: String,
    input: String,
    state: Option<String>,
    f: F,
) -> Result<(Option<String>, String), Failure>
where
    S: Serialize + DeserializeOwned,
    F: FnOnce(&mut EntityContext<S>) -> Result<(), Failure>,
{
    let state = match state {
        Some(text) => Some(serde_json::from_str::<S>(&text).map_err(|e| {
            Failure::new(
                "SerializationError",
                format!(
                    "the stored state of entity {name}@{key} does not have the expected type: {e}"
                ),
            )
        })?),
        None => None,
    };
    let mut ctx = EntityContext {
        name,
        key,
        operation,
        input,
        state,
        result: "null".to_string(),
        _state: PhantomData,
    };
    f(&mut ctx)?;
    Ok((ctx.state.as_ref().map(|s| to_json(s)), ctx.result))
}

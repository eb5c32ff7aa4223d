//! The orchestrator's view of the world: everything it does goes through
//! [`OrchestrationContext`], so that it replays identically.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::cairn::durable::orchestration as host;
use crate::__bindings::cairn::durable::types as wit;
use crate::codec::from_client_json;
use crate::{Failure, LogLevel, to_json};

/// Identifies a task within one execution of an orchestration.
pub type TaskId = u32;

/// How the host retries a failed activity or sub-orchestration.
///
/// The delay before retry `n` (n >= 1) is
/// `min(first_interval * backoff_coefficient^(n-1), max_interval)`.
///
/// ```
/// # use std::time::Duration;
/// # use cairn_sdk::RetryOptions;
/// let retry = RetryOptions::new(Duration::from_secs(1), 5)
///     .with_backoff_coefficient(2.0)
///     .with_max_interval(Duration::from_secs(30));
/// assert_eq!(retry.max_attempts, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryOptions {
    /// Total attempts including the first; 1 means no retry.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub first_interval: Duration,
    /// Multiplier applied to the delay after each retry (>= 1.0).
    pub backoff_coefficient: f64,
    /// Upper bound of a single delay.
    pub max_interval: Option<Duration>,
    /// Give up once this much time has passed since the first attempt.
    pub retry_timeout: Option<Duration>,
}

impl RetryOptions {
    /// Up to `max_attempts` attempts, `first_interval` apart (no backoff).
    pub fn new(first_interval: Duration, max_attempts: u32) -> Self {
        RetryOptions {
            max_attempts,
            first_interval,
            backoff_coefficient: 1.0,
            max_interval: None,
            retry_timeout: None,
        }
    }

    /// Multiplies the delay by `coefficient` after each retry.
    pub fn with_backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    /// Caps a single delay at `max_interval`.
    pub fn with_max_interval(mut self, max_interval: Duration) -> Self {
        self.max_interval = Some(max_interval);
        self
    }

    /// Stops retrying once `timeout` has passed since the first attempt.
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    fn to_wit(self) -> wit::RetryPolicy {
        wit::RetryPolicy {
            max_attempts: self.max_attempts,
            first_interval_ms: millis(self.first_interval),
            backoff_coefficient: self.backoff_coefficient,
            max_interval_ms: self.max_interval.map(millis),
            retry_timeout_ms: self.retry_timeout.map(millis),
        }
    }
}

// Tasks this execution of the orchestrator created and has not awaited
// yet, with a description for the `UnawaitedTask` failure. A guest runs one
// function at a time on one thread.
thread_local! {
    static OUTSTANDING: RefCell<BTreeMap<TaskId, String>> = const { RefCell::new(BTreeMap::new()) };
}

fn created(id: TaskId, what: String) {
    OUTSTANDING.with(|o| o.borrow_mut().insert(id, what));
}

fn observed(id: TaskId) {
    OUTSTANDING.with(|o| o.borrow_mut().remove(&id));
}

/// Forgets the tasks of a previous run (called when an orchestrator starts).
pub(crate) fn begin_run() {
    OUTSTANDING.with(|o| o.borrow_mut().clear());
}

/// The `UnawaitedTask` failure of an orchestrator that returned while tasks
/// it created were never awaited, if it did.
pub(crate) fn unawaited_failure() -> Option<Failure> {
    let outstanding = OUTSTANDING.with(|o| std::mem::take(&mut *o.borrow_mut()));
    if outstanding.is_empty() {
        return None;
    }
    let list: Vec<String> = outstanding.into_values().collect();
    Some(Failure::new(
        "UnawaitedTask",
        format!(
            "the orchestrator returned without awaiting {} task(s) it created: {}. \
             Await every task (`task.get()`, `when_all`, or race it with `when_any`), \
             or call `task.cancel()` to stop waiting for it on purpose",
            list.len(),
            list.join(", ")
        ),
    ))
}

/// A scheduled piece of durable work whose result is an `O`.
///
/// Creating a task never blocks; [`get`](Task::get) waits for its result.
/// A task is just an id: it is `Copy`, and dropping it does not cancel it.
///
/// Every task must be awaited (by [`get`](Task::get),
/// [`when_all`](OrchestrationContext::when_all) or
/// [`when_any`](OrchestrationContext::when_any)) or explicitly
/// [`cancel`](Task::cancel)led before the orchestrator returns: an
/// orchestrator that returns while a task it created was never awaited
/// fails with `UnawaitedTask`, naming the task (a timer that was never
/// waited for did not delay anything, and an event nobody waited for was
/// not received).
#[must_use = "a task must be awaited (`get`, `when_all`, `when_any`) or cancelled, or the orchestrator fails with UnawaitedTask"]
pub struct Task<O> {
    id: TaskId,
    /// The result is a value from an outside client (an event payload).
    from_client: bool,
    _result: PhantomData<fn() -> O>,
}

impl<O> Task<O> {
    fn new(id: TaskId, what: String) -> Self {
        created(id, format!("{what} (task {id})"));
        Task {
            id,
            from_client: false,
            _result: PhantomData,
        }
    }

    /// The id the host gave this task.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Stops waiting for this task on purpose (Durable Functions' timer
    /// cancellation): the orchestrator may then return without awaiting it.
    /// The work itself is not stopped: an activity still runs, a timer still
    /// fires (harmlessly); their results are dropped.
    pub fn cancel(self) {
        observed(self.id);
    }
}

impl<O: DeserializeOwned> Task<O> {
    /// Blocks until the task completes and returns its result, or its
    /// failure. Calling it again returns the same outcome.
    ///
    /// A result that does not deserialize into `O` is a
    /// `SerializationError` failure.
    pub fn get(&self) -> Result<O, Failure> {
        observed(self.id);
        let json = host::await_task(self.id)?;
        decode_result(self.id, &json, self.from_client)
    }
}

impl<O> Clone for Task<O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O> Copy for Task<O> {}

impl<O> fmt::Debug for Task<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("id", &self.id).finish()
    }
}

/// Anything that names a task: a [`Task`] of any result type, or a bare
/// [`TaskId`]. Used by [`OrchestrationContext::when_any`] so that tasks with
/// different result types can race each other.
pub trait AnyTask {
    /// The id of the task.
    fn task_id(&self) -> TaskId;
}

impl<O> AnyTask for Task<O> {
    fn task_id(&self) -> TaskId {
        self.id
    }
}

impl AnyTask for TaskId {
    fn task_id(&self) -> TaskId {
        *self
    }
}

impl<T: AnyTask + ?Sized> AnyTask for &T {
    fn task_id(&self) -> TaskId {
        (**self).task_id()
    }
}

/// Holds the locks acquired by [`OrchestrationContext::lock`] and releases
/// them when dropped.
#[must_use = "the locks are released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard {
    id: TaskId,
}

impl LockGuard {
    /// The id of the lock task.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Releases the locks now (same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        host::unlock(self.id);
    }
}

/// The orchestrator's handle on its durable execution.
///
/// Every method is deterministic under replay: time, ids and task results
/// come from the recorded history. Orchestrator code must not use other
/// sources of time, randomness or I/O.
///
/// Values passed to the host are serialized with `serde_json`; a value whose
/// `Serialize` implementation fails is a programming error and panics.
#[derive(Debug, Clone, Copy)]
pub struct OrchestrationContext {
    _private: (),
}

impl OrchestrationContext {
    pub(crate) fn new() -> Self {
        OrchestrationContext { _private: () }
    }

    /// Id of this orchestration instance.
    pub fn instance_id(&self) -> String {
        host::instance_id()
    }

    /// Id of the current execution (changes with continue-as-new).
    pub fn execution_id(&self) -> String {
        host::execution_id()
    }

    /// Name this orchestrator was started under.
    pub fn function_name(&self) -> String {
        host::function_name()
    }

    /// The instance input, deserialized (`InvalidInput` if it does not fit
    /// `T`). A double-encoded input (as Durable Functions' Python client
    /// sends) is unwrapped when `T` is not a string: see the crate docs.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        Ok(from_client_json(&host::input())?)
    }

    /// Deterministic "now": the time the current episode started.
    pub fn current_utc_datetime(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(host::current_time())
    }

    /// A deterministic UUID (lowercase, hyphenated), stable across replays.
    pub fn new_guid(&self) -> String {
        host::new_guid()
    }

    /// True while the orchestrator re-executes already recorded history.
    pub fn is_replaying(&self) -> bool {
        host::is_replaying()
    }

    /// Schedules activity `name` with `input`; does not block.
    pub fn schedule_activity<I, O>(&self, name: &str, input: &I) -> Task<O>
    where
        I: Serialize + ?Sized,
    {
        Task::new(
            host::schedule_activity(name, &to_json(input), None),
            format!("activity {name:?}"),
        )
    }

    /// Schedules activity `name`, retried by the host according to `retry`.
    pub fn schedule_activity_with_retry<I, O>(
        &self,
        name: &str,
        input: &I,
        retry: RetryOptions,
    ) -> Task<O>
    where
        I: Serialize + ?Sized,
    {
        Task::new(
            host::schedule_activity(name, &to_json(input), Some(retry.to_wit())),
            format!("activity {name:?}"),
        )
    }

    /// Runs activity `name` and waits for its result.
    pub fn call_activity<I, O>(&self, name: &str, input: &I) -> Result<O, Failure>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        self.schedule_activity(name, input).get()
    }

    /// Sends an HTTP request durably (Durable Functions' `CallHttpAsync`):
    /// the host sends it, to a host granted at deploy with `--allow-http`,
    /// and records the response, which replays read back from history.
    /// Any status is a response; a refused host (`CapabilityDenied`) or a
    /// transport error (`HttpError`) fails the task.
    pub fn schedule_http(
        &self,
        request: &crate::DurableHttpRequest,
    ) -> Task<crate::DurableHttpResponse> {
        self.schedule_activity(crate::http::HTTP_ACTIVITY, request)
    }

    /// [`schedule_http`](Self::schedule_http) and wait for the response.
    pub fn call_http(
        &self,
        request: &crate::DurableHttpRequest,
    ) -> Result<crate::DurableHttpResponse, Failure> {
        self.schedule_http(request).get()
    }

    /// Runs activity `name` with retries and waits for its result.
    pub fn call_activity_with_retry<I, O>(
        &self,
        name: &str,
        input: &I,
        retry: RetryOptions,
    ) -> Result<O, Failure>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        self.schedule_activity_with_retry(name, input, retry).get()
    }

    /// Starts orchestrator `name` as a child instance; does not block.
    /// Without `instance_id` the host derives a deterministic one.
    pub fn schedule_sub_orchestrator<I, O>(
        &self,
        name: &str,
        input: &I,
        instance_id: Option<&str>,
    ) -> Task<O>
    where
        I: Serialize + ?Sized,
    {
        Task::new(
            host::schedule_sub_orchestration(name, &to_json(input), instance_id, None),
            format!("sub-orchestration {name:?}"),
        )
    }

    /// Like [`schedule_sub_orchestrator`](Self::schedule_sub_orchestrator),
    /// retried by the host according to `retry`.
    pub fn schedule_sub_orchestrator_with_retry<I, O>(
        &self,
        name: &str,
        input: &I,
        instance_id: Option<&str>,
        retry: RetryOptions,
    ) -> Task<O>
    where
        I: Serialize + ?Sized,
    {
        Task::new(
            host::schedule_sub_orchestration(
                name,
                &to_json(input),
                instance_id,
                Some(retry.to_wit()),
            ),
            format!("sub-orchestration {name:?}"),
        )
    }

    /// Runs orchestrator `name` as a child instance and waits for its output.
    pub fn call_sub_orchestrator<I, O>(
        &self,
        name: &str,
        input: &I,
        instance_id: Option<&str>,
    ) -> Result<O, Failure>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        self.schedule_sub_orchestrator(name, input, instance_id)
            .get()
    }

    /// A durable timer task that fires at `fire_at`. Creating it does not
    /// wait: `ctx.create_timer(at).get()?` does (or race it with
    /// [`when_any`](Self::when_any)).
    pub fn create_timer(&self, fire_at: SystemTime) -> Task<()> {
        let ms = fire_at.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0);
        Self::timer(ms)
    }

    /// A durable timer task that fires `delay` after
    /// [`current_utc_datetime`](Self::current_utc_datetime). Creating it
    /// does not wait: `.get()?` does.
    pub fn create_timer_after(&self, delay: Duration) -> Task<()> {
        Self::timer(host::current_time().saturating_add(millis(delay)))
    }

    fn timer(fire_at_ms: u64) -> Task<()> {
        Task::new(
            host::create_timer(fire_at_ms),
            format!("timer firing at {fire_at_ms} ms"),
        )
    }

    /// A task completed by the next external event called `name`; its
    /// result is the event payload (a double-encoded payload, as Durable
    /// Functions' Python client sends, is unwrapped when `O` is not a
    /// string: see the crate docs).
    pub fn wait_for_event<O>(&self, name: &str) -> Task<O> {
        let mut task = Task::new(host::wait_for_event(name), format!("event {name:?}"));
        task.from_client = true;
        task
    }

    /// Waits for every task; their results in the order given, or the first
    /// failure in that order.
    pub fn when_all<O: DeserializeOwned>(&self, tasks: &[Task<O>]) -> Result<Vec<O>, Failure> {
        self.when_all_settled(tasks).into_iter().collect()
    }

    /// Waits for every task; each task's result or failure, in the order given.
    pub fn when_all_settled<O: DeserializeOwned>(
        &self,
        tasks: &[Task<O>],
    ) -> Vec<Result<O, Failure>> {
        let ids: Vec<TaskId> = tasks.iter().map(Task::id).collect();
        ids.iter().copied().for_each(observed);
        host::await_all(&ids)
            .into_iter()
            .zip(tasks)
            .map(|(outcome, task)| match outcome {
                Ok(json) => decode_result(task.id, &json, task.from_client),
                Err(failure) => Err(failure.into()),
            })
            .collect()
    }

    /// Waits until one of `tasks` completes and returns its index in
    /// `tasks` (the first one completed in history order). Read its result
    /// with [`Task::get`].
    ///
    /// ```no_run
    /// # use cairn_sdk::{AnyTask, OrchestrationContext, Task};
    /// # use std::time::Duration;
    /// # fn f(ctx: &OrchestrationContext) {
    /// let approval: Task<bool> = ctx.wait_for_event("Approval");
    /// let timeout = ctx.create_timer_after(Duration::from_secs(3600));
    /// let winner = ctx.when_any::<&dyn AnyTask>(&[&approval, &timeout]);
    /// // or, with ids: ctx.when_any(&[approval.id(), timeout.id()])
    /// # }
    /// ```
    ///
    /// # Panics
    /// If `tasks` is empty.
    pub fn when_any<T: AnyTask>(&self, tasks: &[T]) -> usize {
        assert!(!tasks.is_empty(), "when_any needs at least one task");
        let ids: Vec<TaskId> = tasks.iter().map(AnyTask::task_id).collect();
        ids.iter().copied().for_each(observed);
        let done = host::await_any(&ids);
        ids.iter()
            .position(|id| *id == done)
            .unwrap_or_else(|| panic!("the host completed task {done}, which is not among {ids:?}"))
    }

    /// Replaces the custom status shown by status queries.
    pub fn set_custom_status<S: Serialize + ?Sized>(&self, status: &S) {
        host::set_custom_status(Some(&to_json(status)));
    }

    /// Clears the custom status.
    pub fn clear_custom_status(&self) {
        host::set_custom_status(None);
    }

    /// Ends this execution and starts a fresh one with `input` and an empty
    /// history. Return from the orchestrator right after calling it.
    pub fn continue_as_new<I: Serialize + ?Sized>(
        &self,
        input: &I,
        preserve_unprocessed_events: bool,
    ) {
        host::continue_as_new(&to_json(input), preserve_unprocessed_events);
    }

    /// Enters a critical section: blocks until every named lock is held.
    /// The locks are released when the returned guard is dropped (and
    /// always when the instance ends). Nested locking is a `LockError`.
    pub fn lock(&self, names: &[&str]) -> Result<LockGuard, Failure> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let id = host::lock(&names)?;
        Ok(LockGuard { id })
    }

    /// Enters a critical section over entities (ids `name@key`): blocks
    /// until this orchestration holds every one of them. While it does,
    /// only its own calls and signals reach those entities; other requests
    /// wait, in order, until the guard is dropped. Can be combined with
    /// plain lock names in [`lock`](Self::lock) as `@name@key`.
    pub fn lock_entities(&self, entities: &[&str]) -> Result<LockGuard, Failure> {
        let names: Vec<String> = entities.iter().map(|e| format!("@{e}")).collect();
        let id = host::lock(&names)?;
        Ok(LockGuard { id })
    }

    /// Calls operation `operation` of entity `entity` (`name@key`); await
    /// the result with [`Task::get`].
    pub fn schedule_call_entity<I, O>(
        &self,
        entity: &str,
        operation: &str,
        input: &I,
    ) -> Result<Task<O>, Failure>
    where
        I: Serialize + ?Sized,
    {
        let id = host::call_entity(entity, operation, &to_json(input))?;
        Ok(Task::new(
            id,
            format!("call of {operation:?} on entity {entity}"),
        ))
    }

    /// Calls operation `operation` of entity `entity` and waits for its result.
    pub fn call_entity<I, O>(&self, entity: &str, operation: &str, input: &I) -> Result<O, Failure>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        self.schedule_call_entity(entity, operation, input)?.get()
    }

    /// Signals operation `operation` of entity `entity` (one way).
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
    pub fn schedule_signal_entity<I: Serialize + ?Sized>(
        &self,
        entity: &str,
        operation: &str,
        input: &I,
        at: SystemTime,
    ) -> Result<(), Failure> {
        let at = millis(at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO));
        Ok(host::signal_entity(
            entity,
            operation,
            &to_json(input),
            Some(at),
        )?)
    }

    /// Replay-safe log: suppressed while replaying.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        host::log(level.into(), message.as_ref());
    }

    crate::level_logs!();
}

fn decode_result<O: DeserializeOwned>(
    id: TaskId,
    json: &str,
    from_client: bool,
) -> Result<O, Failure> {
    let decoded = if from_client {
        from_client_json(json)
    } else {
        serde_json::from_str(json)
    };
    decoded.map_err(|e| {
        Failure::new(
            "SerializationError",
            format!("the result of task {id} does not have the expected type: {e}"),
        )
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

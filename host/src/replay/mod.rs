//! The replay engine: PURE state machine between the durable history and the
//! guest's calls. No I/O, no wasmtime, no SQLite.
//!
//! A [`Replay`] is built from the committed history of one execution, then
//! each episode feeds it the new inbox messages ([`Replay::begin_episode`]),
//! the guest runs against it (schedule / await calls) until it blocks or
//! returns, and [`Replay::take_episode`] yields the events to append.
//!
//! The same object serves cold replay (built from history, the guest re-runs
//! from the start and every scheduling call is matched against the recorded
//! actions) and the hot path (kept alive between episodes: the guest resumes
//! where it blocked and nothing is re-matched).
//!
//! Episode layout in history, as in the Durable Functions history table:
//! `[consumed messages…] OrchestratorStarted [new actions…] OrchestratorCompleted [ExecutionCompleted]`.
//! A message therefore belongs to the episode of the next OrchestratorStarted,
//! whose timestamp is the deterministic `current-time` once the guest has
//! consumed it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::history::{CompletionStatus, Event, Failure, Millis, ParentRef, RetryPolicy, TaskId};

/// Error type of failures the replay engine produces itself.
pub const NON_DETERMINISM: &str = "NonDeterminism";

/// What kind of durable action a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Activity,
    SubOrchestration,
    Timer,
    Lock,
    Unlock,
    /// A call of an entity operation (name: `entity operation`).
    EntityCall,
    /// A one-way signal to an entity (never awaited).
    EntitySignal,
}

/// An action as recorded in history (or just emitted), for matching.
#[derive(Debug, Clone)]
struct Recorded {
    kind: ActionKind,
    name: String,
    /// What a recorded action was given (an activity's or
    /// sub-orchestration's JSON input, a timer's fire-at time), kept only
    /// until the re-run matches it: actions of the live run and locks keep
    /// `None`, so a hot instance holds no copies of its inputs.
    input: Option<String>,
    matched: bool,
}

/// A recorded action that a re-run scheduled again under the same name but
/// with a different input (an activity or sub-orchestration input, a timer's
/// fire-at time).
///
/// The engine tolerates such a change, as Durable Functions does (the
/// recorded result is what the guest gets back), but it means the code no
/// longer does what the history says it did: `cairn replay` reports it as a
/// divergence and `cairn upgrade-check` as "input changed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputChange {
    pub task_id: TaskId,
    /// The action, described as in non-determinism messages (`activity "SayHello"`).
    pub action: String,
    /// The input in history.
    pub recorded: String,
    /// The input the code gives now.
    pub replayed: String,
}

impl InputChange {
    /// One line naming the task, the action and both inputs.
    #[must_use]
    pub fn message(&self) -> String {
        format!(
            "input changed: at task {} the history has {} with input {} but the orchestrator now gives it {}",
            self.task_id,
            self.action,
            clip(&self.recorded),
            clip(&self.replayed)
        )
    }
}

/// Longest input quoted in a message, bytes.
const MAX_QUOTED_INPUT: usize = 200;

fn clip(text: &str) -> String {
    if text.len() <= MAX_QUOTED_INPUT {
        return text.to_owned();
    }
    let mut end = MAX_QUOTED_INPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Equal as JSON values (so `{"a":1,"b":2}` equals `{"b": 2, "a": 1}`),
/// or as text when either side is not JSON.
fn same_input(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// How an entity operation is named in matching and messages.
fn entity_action(entity: &str, operation: &str) -> String {
    format!("{operation:?} of {entity}")
}

fn describe(kind: ActionKind, name: &str) -> String {
    match kind {
        ActionKind::Activity => format!("activity {name:?}"),
        ActionKind::SubOrchestration => format!("sub-orchestration {name:?}"),
        ActionKind::Timer => "a timer".to_owned(),
        ActionKind::Lock => format!("a lock on {name}"),
        ActionKind::Unlock => "an unlock".to_owned(),
        ActionKind::EntityCall => format!("a call of entity operation {name}"),
        ActionKind::EntitySignal => format!("a signal of entity operation {name}"),
    }
}

#[derive(Debug, Clone)]
struct Done {
    outcome: Result<String, Failure>,
    episode: usize,
    order: u64,
}

/// A task the guest created that has not completed (for time travel).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenTask {
    pub task_id: TaskId,
    /// `activity`, `sub-orchestration`, `timer`, `lock` or `event`.
    pub kind: &'static str,
    /// Activity, orchestrator or event name; lock names joined with `,`.
    pub name: String,
}

/// Outcome of a waiting call.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait<T> {
    Ready(T),
    /// Nothing to return until new messages arrive: the episode ends here.
    Blocked,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Completed(String),
    Failed(Failure),
    ContinuedAsNew {
        input: String,
        carried_events: Vec<(String, String)>,
    },
    Terminated(Option<String>),
}

impl Finish {
    #[must_use]
    pub fn status(&self) -> CompletionStatus {
        match self {
            Self::Completed(_) => CompletionStatus::Completed,
            Self::Failed(_) => CompletionStatus::Failed,
            Self::ContinuedAsNew { .. } => CompletionStatus::ContinuedAsNew,
            Self::Terminated(_) => CompletionStatus::Terminated,
        }
    }
}

/// The new history of one episode.
#[derive(Debug, Clone, Default)]
pub struct EpisodeOutput {
    /// Events to append, in order, with their timestamps.
    pub events: Vec<(Millis, Event)>,
    /// `Some(new)` when the guest changed its custom status this episode.
    pub custom_status: Option<Option<String>>,
    /// Set when the execution ended in this episode.
    pub finish: Option<Finish>,
    /// The first recorded action re-scheduled with another input so far
    /// (see [`InputChange`]; replay checks report it, the engine ignores it).
    pub input_change: Option<InputChange>,
}

/// Replay state of one execution. See the module docs.
#[derive(Debug, Default)]
pub struct Replay {
    instance_id: String,
    execution_id: String,
    name: String,
    input: String,
    version: String,
    parent: Option<ParentRef>,
    started: bool,
    /// Committed history length (events), i.e. the store position.
    history_len: u64,
    episode_times: Vec<Millis>,
    actions: BTreeMap<TaskId, Recorded>,
    unmatched: usize,
    completions: HashMap<TaskId, Done>,
    buffered_events: HashMap<String, VecDeque<(String, usize, u64)>>,
    waiters: HashMap<String, VecDeque<TaskId>>,
    next_task: TaskId,
    guid_counter: u64,
    current_episode: usize,
    order: u64,
    pending: Vec<(Millis, Event)>,
    custom_status: Option<Option<String>>,
    continue_as_new: Option<(String, bool)>,
    fatal: Option<Failure>,
    /// The first recorded action re-scheduled with another input.
    input_change: Option<InputChange>,
    finished: bool,
}

impl Replay {
    /// Builds the state of an execution from its committed history.
    #[must_use]
    pub fn from_history<'a>(instance_id: &str, history: impl IntoIterator<Item = &'a (Millis, Event)>) -> Self {
        let mut r = Self {
            instance_id: instance_id.to_owned(),
            ..Self::default()
        };
        for (ts, event) in history {
            r.apply(*ts, event);
            r.history_len += 1;
        }
        r.unmatched = r.actions.len();
        for rec in r.actions.values_mut() {
            rec.matched = false;
        }
        r
    }

    /// Number of committed events this state reflects (the store position).
    #[must_use]
    pub fn history_len(&self) -> u64 {
        self.history_len
    }

    #[must_use]
    pub fn is_started(&self) -> bool {
        self.started
    }

    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }

    #[must_use]
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    #[must_use]
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// Content hash of the component this execution is pinned to.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    #[must_use]
    pub fn parent(&self) -> Option<&ParentRef> {
        self.parent.as_ref()
    }

    /// The fatal (non-determinism) failure detected so far, if any.
    #[must_use]
    pub fn fatal(&self) -> Option<&Failure> {
        self.fatal.as_ref()
    }

    /// The first recorded action this run scheduled again with a different
    /// input, if any (not fatal: see [`InputChange`]).
    #[must_use]
    pub fn input_change(&self) -> Option<&InputChange> {
        self.input_change.as_ref()
    }

    fn live(&self) -> usize {
        self.episode_times.len().saturating_sub(1)
    }

    /// Applies a history event or an accepted message to the state.
    fn apply(&mut self, ts: Millis, event: &Event) {
        let episode = self.episode_times.len();
        match event {
            Event::ExecutionStarted {
                name,
                input,
                execution_id,
                version,
                parent,
                carried_events,
            } => {
                self.started = true;
                self.name.clone_from(name);
                self.input.clone_from(input);
                self.execution_id.clone_from(execution_id);
                self.version.clone_from(version);
                self.parent.clone_from(parent);
                for (n, payload) in carried_events {
                    self.deliver_event(n, payload.clone(), episode);
                }
            }
            Event::OrchestratorStarted => self.episode_times.push(ts),
            Event::TaskScheduled {
                task_id, name, input, ..
            } => self.record(*task_id, ActionKind::Activity, name, Some(input)),
            Event::SubOrchestrationInstanceCreated {
                task_id, name, input, ..
            } => {
                self.record(*task_id, ActionKind::SubOrchestration, name, Some(input));
            }
            Event::TimerCreated { task_id, fire_at } => {
                self.record(*task_id, ActionKind::Timer, "", Some(&fire_at.to_string()));
            }
            Event::LockRequested { task_id, names } => {
                self.record(*task_id, ActionKind::Lock, &names.join(","), None);
            }
            Event::LockReleased { task_id, .. } => self.record(*task_id, ActionKind::Unlock, "", None),
            Event::EntityOperationCalled {
                task_id,
                entity,
                operation,
                input,
            } => self.record(
                *task_id,
                ActionKind::EntityCall,
                &entity_action(entity, operation),
                Some(input),
            ),
            Event::EntityOperationSignaled {
                task_id,
                entity,
                operation,
                input,
                ..
            } => self.record(
                *task_id,
                ActionKind::EntitySignal,
                &entity_action(entity, operation),
                Some(input),
            ),
            Event::EntityOperationCompleted { task_id, result } => {
                self.complete(*task_id, Ok(result.clone()), episode);
            }
            Event::EntityOperationFailed { task_id, failure } => {
                self.complete(*task_id, Err(failure.clone()), episode);
            }
            Event::LockGranted { task_id } => self.complete(*task_id, Ok("null".to_owned()), episode),
            Event::TaskCompleted { task_id, result } | Event::SubOrchestrationInstanceCompleted { task_id, result } => {
                self.complete(*task_id, Ok(result.clone()), episode);
            }
            Event::TimerFired { task_id, .. } => self.complete(*task_id, Ok("null".to_owned()), episode),
            Event::TaskFailed { task_id, failure } | Event::SubOrchestrationInstanceFailed { task_id, failure } => {
                self.complete(*task_id, Err(failure.clone()), episode);
            }
            Event::EventRaised { name, input } => self.deliver_event(name, input.clone(), episode),
            Event::ExecutionCompleted { .. } => self.finished = true,
            Event::OrchestratorCompleted
            | Event::TaskRetrying { .. }
            | Event::ExecutionSuspended { .. }
            | Event::ExecutionResumed { .. }
            | Event::ExecutionRewound { .. }
            | Event::ExecutionTerminated { .. }
            | Event::EntityRequest { .. } => {}
        }
    }

    fn record(&mut self, task_id: TaskId, kind: ActionKind, name: &str, input: Option<&str>) {
        self.actions.insert(
            task_id,
            Recorded {
                kind,
                name: name.to_owned(),
                input: input.map(str::to_owned),
                matched: true,
            },
        );
    }

    fn complete(&mut self, task_id: TaskId, outcome: Result<String, Failure>, episode: usize) {
        self.order += 1;
        self.completions.entry(task_id).or_insert(Done {
            outcome,
            episode,
            order: self.order,
        });
    }

    fn deliver_event(&mut self, name: &str, payload: String, episode: usize) {
        self.order += 1;
        if let Some(task) = self.waiters.get_mut(name).and_then(VecDeque::pop_front) {
            self.completions.insert(
                task,
                Done {
                    outcome: Ok(payload),
                    episode,
                    order: self.order,
                },
            );
        } else {
            self.buffered_events
                .entry(name.to_owned())
                .or_default()
                .push_back((payload, episode, self.order));
        }
    }

    /// The tasks created so far that have no completion: scheduled
    /// actions (not unlocks) and event waits, by task id.
    #[must_use]
    pub fn open_tasks(&self) -> Vec<OpenTask> {
        let mut out: Vec<OpenTask> = self
            .actions
            .iter()
            .filter(|(id, a)| {
                !matches!(a.kind, ActionKind::Unlock | ActionKind::EntitySignal) && !self.completions.contains_key(id)
            })
            .map(|(id, a)| OpenTask {
                task_id: *id,
                kind: match a.kind {
                    ActionKind::Activity => "activity",
                    ActionKind::SubOrchestration => "sub-orchestration",
                    ActionKind::Timer => "timer",
                    ActionKind::Lock | ActionKind::Unlock => "lock",
                    ActionKind::EntityCall | ActionKind::EntitySignal => "entity",
                },
                name: a.name.clone(),
            })
            .collect();
        for (name, tasks) in &self.waiters {
            out.extend(
                tasks
                    .iter()
                    .filter(|id| !self.completions.contains_key(id))
                    .map(|id| OpenTask {
                        task_id: *id,
                        kind: "event",
                        name: name.clone(),
                    }),
            );
        }
        out.sort_by_key(|t| t.task_id);
        out
    }

    /// Would `event` change anything? Duplicate and stray completions
    /// (unknown task, wrong kind, already completed) are filtered out here
    /// so they never reach history.
    #[must_use]
    pub fn accepts(&self, event: &Event) -> bool {
        let expect = |task_id: &TaskId, kind: ActionKind| {
            self.actions.get(task_id).is_some_and(|a| a.kind == kind) && !self.completions.contains_key(task_id)
        };
        match event {
            Event::ExecutionStarted { .. } => !self.started,
            Event::TaskCompleted { task_id, .. } | Event::TaskFailed { task_id, .. } => {
                expect(task_id, ActionKind::Activity)
            }
            Event::TaskRetrying { task_id, .. } => {
                expect(task_id, ActionKind::Activity) || expect(task_id, ActionKind::SubOrchestration)
            }
            Event::TimerFired { task_id, .. } => expect(task_id, ActionKind::Timer),
            Event::LockGranted { task_id } => expect(task_id, ActionKind::Lock),
            Event::EntityOperationCompleted { task_id, .. } | Event::EntityOperationFailed { task_id, .. } => {
                expect(task_id, ActionKind::EntityCall)
            }
            Event::SubOrchestrationInstanceCompleted { task_id, .. }
            | Event::SubOrchestrationInstanceFailed { task_id, .. } => expect(task_id, ActionKind::SubOrchestration),
            Event::EventRaised { .. }
            | Event::ExecutionSuspended { .. }
            | Event::ExecutionResumed { .. }
            | Event::ExecutionRewound { .. }
            | Event::ExecutionTerminated { .. } => self.started,
            _ => false,
        }
    }

    /// Starts an episode at time `now` with the given messages (already
    /// filtered with [`Replay::accepts`]; filtered again here for safety).
    ///
    /// A `TimerFired` message is stamped with its delivery time (`now`, and
    /// never before its fire-at time), not with the time the timer was
    /// created: history shows when the timer fired.
    pub fn begin_episode(&mut self, now: Millis, messages: impl IntoIterator<Item = (Millis, Event)>) {
        for (ts, event) in messages {
            let ts = match &event {
                Event::TimerFired { fire_at, .. } => now.max(*fire_at).max(ts),
                _ => ts,
            };
            if self.accepts(&event) {
                self.apply(ts, &event);
                self.pending.push((ts, event));
            }
        }
        // Time never goes backwards inside an instance, even if the host
        // clock does.
        let now = self.episode_times.last().map_or(now, |&last| now.max(last));
        self.pending.push((now, Event::OrchestratorStarted));
        self.episode_times.push(now);
        self.current_episode = self.current_episode.min(self.live());
    }

    /// Records an event that replay does not interpret (e.g. suspension).
    pub fn record_event(&mut self, now: Millis, event: Event) {
        self.pending.push((now, event));
    }

    // ---- guest calls -------------------------------------------------------

    /// The deterministic time of the episode the guest is executing in.
    #[must_use]
    pub fn current_time(&self) -> Millis {
        self.episode_times.get(self.current_episode).copied().unwrap_or(0)
    }

    /// True while the guest is re-executing recorded episodes.
    #[must_use]
    pub fn is_replaying(&self) -> bool {
        self.current_episode < self.live()
    }

    /// The next deterministic GUID (UUID v5 over instance, execution and a counter).
    pub fn new_guid(&mut self) -> String {
        self.guid_counter += 1;
        let name = format!("{}/{}/{}", self.instance_id, self.execution_id, self.guid_counter);
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }

    /// Number of tasks the guest has created so far in this run.
    #[must_use]
    pub fn task_count(&self) -> TaskId {
        self.next_task
    }

    fn now(&self) -> Millis {
        self.episode_times.last().copied().unwrap_or(0)
    }

    fn nondeterminism(&mut self, message: String) -> Failure {
        let f = Failure::new(NON_DETERMINISM, message);
        self.fatal.get_or_insert_with(|| f.clone());
        f
    }

    /// Matches a new durable action against history; `Ok(true)` when it is
    /// new (must be appended), `Ok(false)` when history already has it.
    /// Kind and name must match; a different input is noted (see
    /// [`InputChange`]), not fatal.
    fn match_action(
        &mut self,
        task_id: TaskId,
        kind: ActionKind,
        name: &str,
        input: Option<&str>,
    ) -> Result<bool, Failure> {
        if let Some(fatal) = &self.fatal {
            return Err(fatal.clone());
        }
        match self.actions.get_mut(&task_id) {
            Some(rec) if rec.kind == kind && rec.name == name && !rec.matched => {
                rec.matched = true;
                self.unmatched -= 1;
                if let (Some(recorded), Some(replayed)) = (rec.input.take(), input)
                    && self.input_change.is_none()
                    && !same_input(&recorded, replayed)
                {
                    self.input_change = Some(InputChange {
                        task_id,
                        action: describe(kind, name),
                        recorded,
                        replayed: replayed.to_owned(),
                    });
                }
                Ok(false)
            }
            Some(rec) => {
                let msg = format!(
                    "non-deterministic orchestrator: at task {task_id} the history has {} but the orchestrator now schedules {}",
                    describe(rec.kind, &rec.name),
                    describe(kind, name)
                );
                Err(self.nondeterminism(msg))
            }
            None if self.unmatched > 0 => {
                let (k, rec) = self
                    .actions
                    .iter()
                    .find(|(_, r)| !r.matched)
                    .map(|(k, r)| (*k, describe(r.kind, &r.name)))
                    .unwrap_or_default();
                let msg = format!(
                    "non-deterministic orchestrator: at task {task_id} the orchestrator now schedules {} where the history has no action; the history's next action is {rec} at task {k}",
                    describe(kind, name)
                );
                Err(self.nondeterminism(msg))
            }
            None => {
                self.record(task_id, kind, name, None);
                Ok(true)
            }
        }
    }

    fn next_task_id(&mut self) -> TaskId {
        let t = self.next_task;
        self.next_task += 1;
        t
    }

    /// `schedule-activity`.
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn schedule_activity(
        &mut self,
        name: &str,
        input: &str,
        retry: Option<RetryPolicy>,
    ) -> Result<TaskId, Failure> {
        let task_id = self.next_task_id();
        if self.match_action(task_id, ActionKind::Activity, name, Some(input))? {
            let now = self.now();
            self.pending.push((
                now,
                Event::TaskScheduled {
                    task_id,
                    name: name.to_owned(),
                    input: input.to_owned(),
                    retry,
                },
            ));
        }
        Ok(task_id)
    }

    /// `schedule-sub-orchestration`. A missing instance id is derived from
    /// the parent's id and the task id, so it is the same on every replay.
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn schedule_sub_orchestration(
        &mut self,
        name: &str,
        input: &str,
        instance_id: Option<&str>,
        retry: Option<RetryPolicy>,
    ) -> Result<TaskId, Failure> {
        let task_id = self.next_task_id();
        if self.match_action(task_id, ActionKind::SubOrchestration, name, Some(input))? {
            let now = self.now();
            let child = instance_id.map_or_else(|| format!("{}:{task_id}", self.instance_id), str::to_owned);
            self.pending.push((
                now,
                Event::SubOrchestrationInstanceCreated {
                    task_id,
                    name: name.to_owned(),
                    instance_id: child,
                    input: input.to_owned(),
                    retry,
                },
            ));
        }
        Ok(task_id)
    }

    /// `create-timer`.
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn create_timer(&mut self, fire_at: Millis) -> Result<TaskId, Failure> {
        let task_id = self.next_task_id();
        if self.match_action(task_id, ActionKind::Timer, "", Some(&fire_at.to_string()))? {
            let now = self.now();
            self.pending.push((now, Event::TimerCreated { task_id, fire_at }));
        }
        Ok(task_id)
    }

    /// `lock`: requests a critical section over `names` (sorted, unique).
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn request_lock(&mut self, names: &[String]) -> Result<TaskId, Failure> {
        let task_id = self.next_task_id();
        if self.match_action(task_id, ActionKind::Lock, &names.join(","), None)? {
            let now = self.now();
            self.pending.push((
                now,
                Event::LockRequested {
                    task_id,
                    names: names.to_vec(),
                },
            ));
        }
        Ok(task_id)
    }

    /// `unlock` of the section entered with lock task `lock`.
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn release_lock(&mut self, lock: TaskId) -> Result<(), Failure> {
        let task_id = self.next_task_id();
        if self.match_action(task_id, ActionKind::Unlock, "", None)? {
            let now = self.now();
            self.pending.push((now, Event::LockReleased { task_id, lock }));
        }
        Ok(())
    }

    /// `call-entity`: calls `operation` of entity `entity` (a validated
    /// `name@key`).
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn call_entity(&mut self, entity: &str, operation: &str, input: &str) -> Result<TaskId, Failure> {
        let task_id = self.next_task_id();
        let action = entity_action(entity, operation);
        if self.match_action(task_id, ActionKind::EntityCall, &action, Some(input))? {
            let now = self.now();
            self.pending.push((
                now,
                Event::EntityOperationCalled {
                    task_id,
                    entity: entity.to_owned(),
                    operation: operation.to_owned(),
                    input: input.to_owned(),
                },
            ));
        }
        Ok(task_id)
    }

    /// `signal-entity`: one way, now or at `scheduled_at`.
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history disagrees.
    pub fn signal_entity(
        &mut self,
        entity: &str,
        operation: &str,
        input: &str,
        scheduled_at: Option<Millis>,
    ) -> Result<(), Failure> {
        let task_id = self.next_task_id();
        let action = entity_action(entity, operation);
        if self.match_action(task_id, ActionKind::EntitySignal, &action, Some(input))? {
            let now = self.now();
            self.pending.push((
                now,
                Event::EntityOperationSignaled {
                    task_id,
                    entity: entity.to_owned(),
                    operation: operation.to_owned(),
                    input: input.to_owned(),
                    scheduled_at,
                },
            ));
        }
        Ok(())
    }

    /// `wait-for-event`: binds the oldest buffered event of that name, or
    /// queues the task for the next one.
    ///
    /// # Errors
    /// A `NonDeterminism` failure when history has an action at this task.
    pub fn wait_for_event(&mut self, name: &str) -> Result<TaskId, Failure> {
        if let Some(fatal) = &self.fatal {
            return Err(fatal.clone());
        }
        let task_id = self.next_task_id();
        if let Some(rec) = self.actions.get(&task_id) {
            let msg = format!(
                "non-deterministic orchestrator: at task {task_id} the history has {} but the orchestrator now waits for event {name:?}",
                describe(rec.kind, &rec.name)
            );
            return Err(self.nondeterminism(msg));
        }
        if let Some((payload, episode, order)) = self.buffered_events.get_mut(name).and_then(VecDeque::pop_front) {
            self.completions.insert(
                task_id,
                Done {
                    outcome: Ok(payload),
                    episode,
                    order,
                },
            );
        } else {
            self.waiters.entry(name.to_owned()).or_default().push_back(task_id);
        }
        Ok(task_id)
    }

    fn check_known(&self, id: TaskId) -> Result<(), Failure> {
        if id < self.next_task {
            Ok(())
        } else {
            Err(Failure::new(
                "InvalidInput",
                format!("task {id} was never created by this orchestrator"),
            ))
        }
    }

    /// `await-task`.
    ///
    /// # Errors
    /// `InvalidInput` for a task id the guest never created.
    pub fn await_task(&mut self, id: TaskId) -> Result<Wait<Result<String, Failure>>, Failure> {
        self.check_known(id)?;
        Ok(match self.completions.get(&id) {
            Some(done) => {
                self.current_episode = self.current_episode.max(done.episode);
                Wait::Ready(done.outcome.clone())
            }
            None => Wait::Blocked,
        })
    }

    /// `await-all`.
    ///
    /// # Errors
    /// `InvalidInput` for a task id the guest never created.
    pub fn await_all(&mut self, ids: &[TaskId]) -> Result<Wait<Vec<Result<String, Failure>>>, Failure> {
        for &id in ids {
            self.check_known(id)?;
        }
        let mut latest = self.current_episode;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.completions.get(id) {
                Some(done) => {
                    latest = latest.max(done.episode);
                    out.push(done.outcome.clone());
                }
                None => return Ok(Wait::Blocked),
            }
        }
        self.current_episode = latest;
        Ok(Wait::Ready(out))
    }

    /// `await-any`: the task among `ids` that completed first in history order.
    ///
    /// # Errors
    /// `InvalidInput` for an empty list or a task id the guest never created.
    pub fn await_any(&mut self, ids: &[TaskId]) -> Result<Wait<TaskId>, Failure> {
        if ids.is_empty() {
            return Err(Failure::new("InvalidInput", "await-any needs at least one task"));
        }
        for &id in ids {
            self.check_known(id)?;
        }
        let first = ids
            .iter()
            .filter_map(|id| self.completions.get(id).map(|d| (d.order, d.episode, *id)))
            .min();
        Ok(match first {
            Some((_, episode, id)) => {
                self.current_episode = self.current_episode.max(episode);
                Wait::Ready(id)
            }
            None => Wait::Blocked,
        })
    }

    /// `set-custom-status`.
    pub fn set_custom_status(&mut self, status: Option<String>) {
        self.custom_status = Some(status);
    }

    /// `continue-as-new`: remembered until the guest returns.
    pub fn continue_as_new(&mut self, input: String, preserve_unprocessed_events: bool) {
        self.continue_as_new = Some((input, preserve_unprocessed_events));
    }

    // ---- episode boundaries ----------------------------------------------

    /// Called when the guest blocks: every action in history must have been
    /// scheduled again by now, or the code diverged.
    ///
    /// # Errors
    /// A `NonDeterminism` failure naming the first action the guest skipped.
    pub fn check_blocked(&mut self) -> Result<(), Failure> {
        if let Some(f) = &self.fatal {
            return Err(f.clone());
        }
        if self.unmatched == 0 {
            return Ok(());
        }
        let (k, rec) = self
            .actions
            .iter()
            .find(|(_, r)| !r.matched)
            .map(|(k, r)| (*k, describe(r.kind, &r.name)))
            .unwrap_or_default();
        let msg = format!(
            "non-deterministic orchestrator: the history has {rec} at task {k} but the orchestrator stopped after creating {} task(s) without scheduling it",
            self.next_task
        );
        Err(self.nondeterminism(msg))
    }

    /// Ends the execution with the guest's result (or a trap message).
    /// A recorded non-determinism failure wins over whatever the guest returned.
    pub fn finish(&mut self, guest: Result<String, Failure>) -> Finish {
        let finish = match (self.fatal.clone(), guest) {
            (Some(f), _) => Finish::Failed(f),
            (None, Err(f)) => Finish::Failed(f),
            (None, Ok(output)) => match self.check_blocked() {
                Err(f) => Finish::Failed(f),
                Ok(()) => match self.continue_as_new.take() {
                    Some((input, preserve)) => Finish::ContinuedAsNew {
                        input,
                        carried_events: if preserve {
                            self.take_buffered_events()
                        } else {
                            Vec::new()
                        },
                    },
                    None => Finish::Completed(output),
                },
            },
        };
        self.end(finish.clone());
        finish
    }

    /// Terminates the execution (no guest code runs).
    pub fn terminate(&mut self, reason: Option<String>) -> Finish {
        let finish = Finish::Terminated(reason);
        self.end(finish.clone());
        finish
    }

    fn take_buffered_events(&mut self) -> Vec<(String, String)> {
        let mut all: Vec<(u64, String, String)> = self
            .buffered_events
            .drain()
            .flat_map(|(name, q)| q.into_iter().map(move |(p, _, order)| (order, name.clone(), p)))
            .collect();
        all.sort();
        all.into_iter().map(|(_, n, p)| (n, p)).collect()
    }

    fn end(&mut self, finish: Finish) {
        let now = self.now();
        let (result, failure) = match &finish {
            Finish::Completed(out) => (Some(out.clone()), None),
            Finish::Failed(f) => (None, Some(f.clone())),
            Finish::ContinuedAsNew { input, .. } => (Some(input.clone()), None),
            Finish::Terminated(reason) => (
                reason.as_ref().map(|r| serde_json::Value::from(r.as_str()).to_string()),
                None,
            ),
        };
        self.pending.push((
            now,
            Event::ExecutionCompleted {
                status: finish.status(),
                result,
                failure,
            },
        ));
        self.finished = true;
    }

    /// Takes the new events of this episode (closing it with
    /// OrchestratorCompleted) and advances the history position.
    pub fn take_episode(&mut self, finish: Option<Finish>) -> EpisodeOutput {
        let now = self.now();
        let mut events = std::mem::take(&mut self.pending);
        // OrchestratorCompleted goes before ExecutionCompleted, as in DTFx.
        let at = events
            .iter()
            .position(|(_, e)| matches!(e, Event::ExecutionCompleted { .. }))
            .unwrap_or(events.len());
        events.insert(at, (now, Event::OrchestratorCompleted));
        self.history_len += events.len() as u64;
        EpisodeOutput {
            events,
            custom_status: self.custom_status.take(),
            finish,
            input_change: self.input_change.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

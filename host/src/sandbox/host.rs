//! Host side of the `cairn:durable` imports.

use std::fmt;

use wasmtime::format_err;

use super::cairn::durable::{activity_context, entity_context, orchestration, types as wit};
use super::{EntityCtx, GuestState, OrchestratorCtx, Role, Yielded};
use crate::decide::EntityEffect;
use crate::history::Failure;
use crate::replay::Wait;

/// A host-side decision to end the guest with a typed failure.
#[derive(Debug)]
pub(super) struct GuestAbort(pub(super) Failure);

impl fmt::Display for GuestAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for GuestAbort {}

fn abort(error_type: &str, message: impl Into<String>) -> wasmtime::Error {
    wasmtime::Error::new(GuestAbort(Failure::new(error_type, message)))
}

/// Longest log line kept, bytes.
const MAX_LOG_BYTES: usize = 8 * 1024;

impl wit::Host for GuestState {}

fn level(l: wit::LogLevel) -> tracing::Level {
    match l {
        wit::LogLevel::Trace => tracing::Level::TRACE,
        wit::LogLevel::Debug => tracing::Level::DEBUG,
        wit::LogLevel::Info => tracing::Level::INFO,
        wit::LogLevel::Warn => tracing::Level::WARN,
        wit::LogLevel::Error => tracing::Level::ERROR,
    }
}

fn level_name(l: wit::LogLevel) -> &'static str {
    match l {
        wit::LogLevel::Trace => "trace",
        wit::LogLevel::Debug => "debug",
        wit::LogLevel::Info => "info",
        wit::LogLevel::Warn => "warn",
        wit::LogLevel::Error => "error",
    }
}

/// At most [`MAX_LOG_BYTES`] of `message`, cut at a character boundary.
fn truncated(message: &str) -> &str {
    let mut end = message.len().min(MAX_LOG_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

fn emit(instance: &str, l: wit::LogLevel, message: &str) {
    let m = truncated(message);
    match level(l) {
        tracing::Level::TRACE => tracing::trace!(target: "cairn::guest", instance, "{m}"),
        tracing::Level::DEBUG => tracing::debug!(target: "cairn::guest", instance, "{m}"),
        tracing::Level::INFO => tracing::info!(target: "cairn::guest", instance, "{m}"),
        tracing::Level::WARN => tracing::warn!(target: "cairn::guest", instance, "{m}"),
        tracing::Level::ERROR => tracing::error!(target: "cairn::guest", instance, "{m}"),
    }
}

impl GuestState {
    fn orch(&mut self) -> wasmtime::Result<&mut OrchestratorCtx> {
        match &mut self.role {
            Role::Orchestrator(ctx) => Ok(ctx),
            _ => Err(abort(
                "Trap",
                "an orchestration function was called outside an orchestrator (e.g. from an activity)",
            )),
        }
    }

    fn check_payload(&mut self, what: &str, len: usize) -> wasmtime::Result<()> {
        let max = self.orch()?.max_payload;
        if len > max {
            return Err(abort(
                "LimitExceeded",
                format!("{what} is {len} bytes; the limit is {max} bytes (limits.payload)"),
            ));
        }
        Ok(())
    }

    fn check_json(&mut self, what: &str, text: &str) -> wasmtime::Result<()> {
        self.check_payload(what, text.len())?;
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(abort("InvalidInput", format!("{what} is not valid JSON")));
        }
        Ok(())
    }

    fn check_tasks(&mut self) -> wasmtime::Result<()> {
        let ctx = self.orch()?;
        let max = ctx.max_tasks;
        if ctx.replay.task_count() >= max {
            return Err(abort(
                "LimitExceeded",
                format!("the orchestration created {max} tasks in one execution (limits.tasks); use continue-as-new"),
            ));
        }
        Ok(())
    }

    /// After an await: the virtual clock shows the episode's time, and
    /// output is logged only once the guest runs past recorded history.
    fn sync_clock(&mut self) {
        if let Role::Orchestrator(ctx) = &mut self.role {
            ctx.clock
                .store(ctx.replay.current_time(), std::sync::atomic::Ordering::Relaxed);
            self.io
                .quiet
                .store(ctx.replay.is_replaying(), std::sync::atomic::Ordering::Relaxed);
            if let Some(p) = &ctx.probe {
                p.set_position(ctx.replay.current_time(), ctx.replay.is_replaying());
            }
        }
    }

    /// Ends the episode: reports it to the engine and parks the guest
    /// until the next batch of messages arrives.
    async fn block(&mut self) -> wasmtime::Result<()> {
        let memory = self.limiter.in_use;
        let ctx = self.orch()?;
        if let Err(f) = ctx.replay.check_blocked() {
            return Err(wasmtime::Error::new(GuestAbort(f)));
        }
        if let Some(p) = &ctx.probe {
            p.stopped(ctx.replay.open_tasks());
        }
        let output = ctx.replay.take_episode(None);
        ctx.yielded
            .send(Yielded::Blocked { output, memory })
            .await
            .map_err(|_| format_err!("orchestrator session was closed"))?;
        // Parked from here: the stack keeps only its live frames.
        super::dense::release_dead_stack();
        let Some(next) = ctx.resume.recv().await else {
            return Err(format_err!("orchestrator session was evicted"));
        };
        ctx.replay.begin_episode(next.now, next.messages);
        self.segment_start = std::time::Instant::now();
        self.cpu.reset();
        Ok(())
    }

    fn replay_err(f: Failure) -> wasmtime::Error {
        wasmtime::Error::new(GuestAbort(f))
    }
}

fn retry_from(r: Option<wit::RetryPolicy>) -> Option<crate::history::RetryPolicy> {
    r.map(|r| crate::history::RetryPolicy {
        max_attempts: r.max_attempts.max(1),
        first_interval_ms: r.first_interval_ms,
        backoff_coefficient: if r.backoff_coefficient.is_finite() {
            r.backoff_coefficient
        } else {
            1.0
        },
        max_interval_ms: r.max_interval_ms,
        retry_timeout_ms: r.retry_timeout_ms,
    })
}

fn valid_name(what: &'static str, name: &str) -> wasmtime::Result<()> {
    crate::ids::validate_name(what, name).map_err(|e| abort("InvalidInput", e.to_string()))
}

impl orchestration::Host for GuestState {
    async fn instance_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.orch()?.replay.instance_id().to_owned())
    }

    async fn execution_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.orch()?.replay.execution_id().to_owned())
    }

    async fn function_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.orch()?.replay.name().to_owned())
    }

    async fn input(&mut self) -> wasmtime::Result<String> {
        Ok(self.orch()?.replay.input().to_owned())
    }

    async fn current_time(&mut self) -> wasmtime::Result<u64> {
        Ok(self.orch()?.replay.current_time())
    }

    async fn new_guid(&mut self) -> wasmtime::Result<String> {
        Ok(self.orch()?.replay.new_guid())
    }

    async fn is_replaying(&mut self) -> wasmtime::Result<bool> {
        Ok(self.orch()?.replay.is_replaying())
    }

    async fn schedule_activity(
        &mut self,
        name: String,
        input: String,
        retry: Option<wit::RetryPolicy>,
    ) -> wasmtime::Result<u32> {
        valid_name("activity name", &name)?;
        self.check_json("activity input", &input)?;
        self.check_tasks()?;
        self.orch()?
            .replay
            .schedule_activity(&name, &input, retry_from(retry))
            .map_err(Self::replay_err)
    }

    async fn schedule_sub_orchestration(
        &mut self,
        name: String,
        input: String,
        instance_id: Option<String>,
        retry: Option<wit::RetryPolicy>,
    ) -> wasmtime::Result<u32> {
        valid_name("orchestrator name", &name)?;
        self.check_json("sub-orchestration input", &input)?;
        if let Some(id) = &instance_id {
            crate::ids::InstanceId::parse(id).map_err(|e| abort("InvalidInput", e.to_string()))?;
        }
        self.check_tasks()?;
        self.orch()?
            .replay
            .schedule_sub_orchestration(&name, &input, instance_id.as_deref(), retry_from(retry))
            .map_err(Self::replay_err)
    }

    async fn create_timer(&mut self, fire_at: u64) -> wasmtime::Result<u32> {
        self.check_tasks()?;
        self.orch()?.replay.create_timer(fire_at).map_err(Self::replay_err)
    }

    async fn wait_for_event(&mut self, name: String) -> wasmtime::Result<u32> {
        valid_name("event name", &name)?;
        self.check_tasks()?;
        let ctx = self.orch()?;
        let task = ctx.replay.wait_for_event(&name).map_err(Self::replay_err)?;
        if let Some(p) = &ctx.probe {
            p.wait(task, &name);
        }
        Ok(task)
    }

    async fn await_task(&mut self, id: u32) -> wasmtime::Result<Result<String, wit::Failure>> {
        loop {
            match self.orch()?.replay.await_task(id) {
                Err(f) => return Ok(Err(f.into())),
                Ok(Wait::Ready(r)) => {
                    self.sync_clock();
                    return Ok(r.map_err(Into::into));
                }
                Ok(Wait::Blocked) => self.block().await?,
            }
        }
    }

    async fn await_all(&mut self, ids: Vec<u32>) -> wasmtime::Result<Vec<Result<String, wit::Failure>>> {
        loop {
            match self.orch()?.replay.await_all(&ids) {
                Err(f) => return Err(Self::replay_err(f)),
                Ok(Wait::Ready(r)) => {
                    self.sync_clock();
                    return Ok(r.into_iter().map(|x| x.map_err(Into::into)).collect());
                }
                Ok(Wait::Blocked) => self.block().await?,
            }
        }
    }

    async fn await_any(&mut self, ids: Vec<u32>) -> wasmtime::Result<u32> {
        loop {
            match self.orch()?.replay.await_any(&ids) {
                Err(f) => return Err(Self::replay_err(f)),
                Ok(Wait::Ready(id)) => {
                    self.sync_clock();
                    return Ok(id);
                }
                Ok(Wait::Blocked) => self.block().await?,
            }
        }
    }

    async fn call_entity(
        &mut self,
        entity: String,
        operation: String,
        input: String,
    ) -> wasmtime::Result<Result<u32, wit::Failure>> {
        let id = match entity_target(&entity, &operation) {
            Ok(id) => id,
            Err(f) => return Ok(Err(f.into())),
        };
        self.check_json("entity operation input", &input)?;
        self.check_tasks()?;
        let task = self
            .orch()?
            .replay
            .call_entity(&id.to_string(), &operation, &input)
            .map_err(Self::replay_err)?;
        Ok(Ok(task))
    }

    async fn signal_entity(
        &mut self,
        entity: String,
        operation: String,
        input: String,
        scheduled_at: Option<u64>,
    ) -> wasmtime::Result<Result<(), wit::Failure>> {
        let id = match entity_target(&entity, &operation) {
            Ok(id) => id,
            Err(f) => return Ok(Err(f.into())),
        };
        self.check_json("entity operation input", &input)?;
        self.check_tasks()?;
        self.orch()?
            .replay
            .signal_entity(&id.to_string(), &operation, &input, scheduled_at)
            .map_err(Self::replay_err)?;
        Ok(Ok(()))
    }

    async fn lock(&mut self, names: Vec<String>) -> wasmtime::Result<Result<u32, wit::Failure>> {
        if self.orch()?.in_lock {
            return Ok(Err(Failure::new(
                "LockError",
                "nested lock: leave the current critical section (unlock) before entering another",
            )
            .into()));
        }
        if names.is_empty() || names.len() > 64 {
            return Ok(Err(Failure::new("LockError", "lock needs 1 to 64 lock names").into()));
        }
        for n in &names {
            valid_name("lock name", n)?;
            if n.starts_with('@') && crate::ids::EntityId::from_instance_id(n).is_none() {
                return Ok(Err(Failure::new(
                    "LockError",
                    format!("lock name {n:?} starts with '@' but is not an entity lock `@name@key`"),
                )
                .into()));
            }
        }
        let mut names = names;
        // Sorted acquisition order: two orchestrations locking the same set
        // can never deadlock.
        names.sort();
        names.dedup();
        self.check_tasks()?;
        let id = self.orch()?.replay.request_lock(&names).map_err(Self::replay_err)?;
        match self.await_task(id).await? {
            Ok(_) => {
                self.orch()?.in_lock = true;
                Ok(Ok(id))
            }
            Err(f) => Ok(Err(f)),
        }
    }

    async fn unlock(&mut self, id: u32) -> wasmtime::Result<()> {
        let ctx = self.orch()?;
        if !ctx.in_lock {
            return Ok(());
        }
        ctx.in_lock = false;
        ctx.replay.release_lock(id).map_err(Self::replay_err)
    }

    async fn set_custom_status(&mut self, status: Option<String>) -> wasmtime::Result<()> {
        if let Some(s) = &status {
            self.check_json("custom status", s)?;
        }
        self.orch()?.replay.set_custom_status(status);
        Ok(())
    }

    async fn continue_as_new(&mut self, input: String, preserve_unprocessed_events: bool) -> wasmtime::Result<()> {
        self.check_json("continue-as-new input", &input)?;
        self.orch()?.replay.continue_as_new(input, preserve_unprocessed_events);
        Ok(())
    }

    async fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        let ctx = self.orch()?;
        if let Some(p) = &ctx.probe {
            p.line(level_name(level), truncated(&message));
        } else if !ctx.replay.is_replaying() {
            emit(ctx.replay.instance_id(), level, &message);
        }
        Ok(())
    }
}

impl GuestState {
    fn act(&self) -> wasmtime::Result<&super::ActivityCtx> {
        match &self.role {
            Role::Activity(ctx) => Ok(ctx),
            _ => Err(abort("Trap", "the activity context was used outside an activity")),
        }
    }
}

impl activity_context::Host for GuestState {
    async fn instance_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.act()?.instance_id.clone())
    }

    async fn function_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.act()?.function_name.clone())
    }

    async fn idempotency_key(&mut self) -> wasmtime::Result<String> {
        Ok(self.act()?.idempotency_key.clone())
    }

    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.act()?.attempt)
    }

    async fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        let ctx = self.act()?;
        emit(&ctx.instance_id, level, &message);
        Ok(())
    }
}

/// Validates the target of an entity call or signal.
fn entity_target(entity: &str, operation: &str) -> Result<crate::ids::EntityId, Failure> {
    let id = crate::ids::EntityId::parse(entity).map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
    crate::ids::validate_name("entity operation name", operation)
        .map_err(|e| Failure::new("InvalidInput", e.to_string()))?;
    Ok(id)
}

impl GuestState {
    fn ent(&mut self) -> wasmtime::Result<&mut EntityCtx> {
        match &mut self.role {
            Role::Entity(ctx) => Ok(ctx),
            _ => Err(abort("Trap", "the entity context was used outside an entity operation")),
        }
    }

    fn check_entity_json(&mut self, what: &str, text: &str) -> Result<(), Failure> {
        let max = self.ent().map(|c| c.max_payload).unwrap_or(0);
        if text.len() > max {
            return Err(Failure::new(
                "LimitExceeded",
                format!(
                    "{what} is {} bytes; the limit is {max} bytes (limits.payload)",
                    text.len()
                ),
            ));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(Failure::new("InvalidInput", format!("{what} is not valid JSON")));
        }
        Ok(())
    }
}

/// Most signals and starts one entity operation may send.
const MAX_EFFECTS_PER_OPERATION: usize = 1000;

impl entity_context::Host for GuestState {
    async fn entity_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.ent()?.entity.name().to_owned())
    }

    async fn entity_key(&mut self) -> wasmtime::Result<String> {
        Ok(self.ent()?.entity.key().to_owned())
    }

    async fn current_time(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ent()?.now)
    }

    async fn signal_entity(
        &mut self,
        entity: String,
        operation: String,
        input: String,
        scheduled_at: Option<u64>,
    ) -> wasmtime::Result<Result<(), wit::Failure>> {
        let target = match entity_target(&entity, &operation) {
            Ok(id) => id,
            Err(f) => return Ok(Err(f.into())),
        };
        if let Err(f) = self.check_entity_json("entity operation input", &input) {
            return Ok(Err(f.into()));
        }
        let ctx = self.ent()?;
        if ctx.effects.len() >= MAX_EFFECTS_PER_OPERATION {
            return Err(abort(
                "LimitExceeded",
                format!("an entity operation sent more than {MAX_EFFECTS_PER_OPERATION} signals and starts"),
            ));
        }
        ctx.effects.push(EntityEffect::Signal {
            entity: target,
            operation,
            input,
            scheduled_at,
        });
        Ok(Ok(()))
    }

    async fn start_orchestration(
        &mut self,
        name: String,
        input: String,
        instance_id: Option<String>,
    ) -> wasmtime::Result<Result<String, wit::Failure>> {
        if let Err(e) = crate::ids::validate_name("orchestrator name", &name) {
            return Ok(Err(Failure::new("InvalidInput", e.to_string()).into()));
        }
        if let Err(f) = self.check_entity_json("orchestration input", &input) {
            return Ok(Err(f.into()));
        }
        if let Some(id) = &instance_id
            && let Err(e) = crate::ids::InstanceId::parse(id)
        {
            return Ok(Err(Failure::new("InvalidInput", e.to_string()).into()));
        }
        let ctx = self.ent()?;
        if ctx.effects.len() >= MAX_EFFECTS_PER_OPERATION {
            return Err(abort(
                "LimitExceeded",
                format!("an entity operation sent more than {MAX_EFFECTS_PER_OPERATION} signals and starts"),
            ));
        }
        // Deterministic per operation: the same request gets the same id
        // if its batch runs again after a crash.
        let id = instance_id.unwrap_or_else(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(
                format!(
                    "{}\0{}\0{}",
                    ctx.entity.instance_id(),
                    ctx.request_id,
                    ctx.effects.len()
                )
                .as_bytes(),
            );
            hex::encode(&digest[..16])
        });
        ctx.effects.push(EntityEffect::Start {
            name,
            input,
            instance_id: id.clone(),
        });
        Ok(Ok(id))
    }

    async fn log(&mut self, level: wit::LogLevel, message: String) -> wasmtime::Result<()> {
        let id = self.ent()?.entity.instance_id();
        emit(&id, level, &message);
        Ok(())
    }
}

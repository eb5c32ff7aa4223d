//! What an activity knows about the call it serves.

use crate::__bindings::cairn::durable::activity_context as host;
use crate::LogLevel;

/// The activity's handle on the call it serves.
///
/// Activities are where I/O lives; they run at least once, so use
/// [`idempotency_key`](Self::idempotency_key) to make side effects idempotent.
#[derive(Debug, Clone, Copy)]
pub struct ActivityContext {
    _private: (),
}

impl ActivityContext {
    pub(crate) fn new() -> Self {
        ActivityContext { _private: () }
    }

    /// Id of the orchestration instance that scheduled this activity.
    pub fn instance_id(&self) -> String {
        host::instance_id()
    }

    /// Name of the activity being run.
    pub fn function_name(&self) -> String {
        host::function_name()
    }

    /// `<instance-id>:<execution-id>:<task-id>`, stable across retries and
    /// redeliveries of the same scheduled task.
    pub fn idempotency_key(&self) -> String {
        host::idempotency_key()
    }

    /// 1 for the first delivery, incremented on every redelivery or retry.
    pub fn attempt(&self) -> u32 {
        host::attempt()
    }

    /// Writes a log line through the host.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        host::log(level.into(), message.as_ref());
    }

    crate::level_logs!();
}

//! Resource limits of guest calls, and the one reviewed `unsafe` call
//! (loading a precompiled component from the cache).

use std::path::Path;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Engine, ResourceLimiter};

/// Limits applied to every guest. Each bounds a way a guest could hurt the
/// host or other instances.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory per guest instance, bytes (memory bombs).
    pub max_memory_bytes: usize,
    /// CPU time of orchestrator code between two waits on the host, i.e.
    /// per episode (infinite loops). Only the guest's own execution counts,
    /// not time spent waiting for a core.
    pub orchestrator_cpu: Duration,
    /// Wall time of one activity call.
    pub activity_cpu: Duration,
    /// Largest input, output, event payload or custom status, bytes.
    pub max_payload_bytes: usize,
    /// Largest component accepted at deploy, bytes.
    pub max_component_bytes: usize,
    /// Most tasks one execution may create (history growth).
    pub max_tasks_per_execution: u32,
    /// Most history events one execution may have (use continue-as-new).
    pub max_history_events: u64,
    /// Longest compile of a component at deploy (compile bombs).
    pub max_compile_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 << 20,
            orchestrator_cpu: Duration::from_secs(2),
            activity_cpu: Duration::from_secs(300),
            max_payload_bytes: 2 << 20,
            max_component_bytes: 64 << 20,
            max_tasks_per_execution: 100_000,
            max_history_events: 1_000_000,
            max_compile_time: Duration::from_secs(120),
        }
    }
}

/// Capabilities an activity component is granted at deploy. Default: none
/// (no environment variables, no directories, no network).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    /// Names of host environment variables the activity may read.
    #[serde(default)]
    pub env: Vec<String>,
    /// Host directories preopened for the activity.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Hosts the activity may send HTTP requests to (`wasi:http`), as
    /// [`HostPattern`](super::HostPattern)s.
    #[serde(default)]
    pub http: Vec<String>,
}

impl Grants {
    /// Grants from their command-line / query-string spellings
    /// (`--allow-env`, `--allow-dir`, `--allow-http`).
    ///
    /// # Errors
    /// A message naming the first bad directory or host spec.
    pub fn from_specs(env: Vec<String>, dirs: &[String], http: Vec<String>) -> Result<Self, String> {
        let dirs = dirs.iter().map(|d| DirGrant::parse(d)).collect::<Result<Vec<_>, _>>()?;
        for host in &http {
            super::HostPattern::parse(host)?;
        }
        Ok(Self { env, dirs, http })
    }

    /// The HTTP grant, parsed (patterns were validated at deploy).
    #[must_use]
    pub fn http_patterns(&self) -> Vec<super::HostPattern> {
        self.http
            .iter()
            .filter_map(|p| super::HostPattern::parse(p).ok())
            .collect()
    }
}

/// One preopened directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirGrant {
    pub host: std::path::PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl DirGrant {
    /// Parses `HOST[:GUEST][:ro|:rw]` (read-only unless `:rw`).
    ///
    /// # Errors
    /// A message when HOST is empty or not a directory.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts: Vec<&str> = spec.split(':').collect();
        let writable = match parts.last() {
            Some(&"rw") => {
                parts.pop();
                true
            }
            Some(&"ro") => {
                parts.pop();
                false
            }
            _ => false,
        };
        let (host, guest) = match parts.as_slice() {
            [host] => (*host, *host),
            [host, guest] => (*host, *guest),
            _ => return Err(format!("--allow-dir {spec:?}: expected HOST[:GUEST][:ro|:rw]")),
        };
        if host.is_empty() || !std::path::Path::new(host).is_dir() {
            return Err(format!("--allow-dir {spec:?}: {host:?} is not a directory"));
        }
        Ok(Self {
            host: host.into(),
            guest: guest.to_owned(),
            writable,
        })
    }
}

/// Enforces the memory limit and tracks memory in use (for the hot cache's
/// memory bound).
pub(super) struct Limiter {
    max: usize,
    pub(super) in_use: usize,
}

impl Limiter {
    pub(super) fn new(max: usize) -> Self {
        Self { max, in_use: 0 }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.in_use.saturating_sub(current).saturating_add(desired);
        if total > self.max {
            return Err(wasmtime::format_err!(
                "LimitExceeded: guest memory would grow to {total} bytes; the limit is {} bytes (limits.memory)",
                self.max
            ));
        }
        self.in_use = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Loads a component from the compiled cache.
#[expect(unsafe_code, reason = "wasmtime requires unsafe to load precompiled code")]
pub(super) fn deserialize_cached(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is written only by `Sandbox::compile` of this
    // process or an earlier one (atomically, via rename), under a name that
    // includes the engine's compatibility hash; wasmtime additionally checks
    // its header and refuses artifacts of another engine configuration.
    unsafe { Component::deserialize_file(engine, path) }
}

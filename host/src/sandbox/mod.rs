//! The wasmtime sandbox: ONE engine configuration, component loading with a
//! compiled cache, per-call limits, and the host side of the WIT contract.
//!
//! Orchestrators and activities share one linker (the `app` world plus
//! WASI p2). What differs is the per-store state: an orchestrator's WASI is
//! virtual and deterministic (clocks = the episode's time, random = a PRNG
//! seeded by instance and execution, no env, no preopens, no network), an
//! activity's WASI has real clocks and random but, by default, no env, no
//! preopened directories and no network.

mod clocks;
mod cpu;
mod dense;
mod host;
mod http;
mod limits;
pub mod mailbox;
mod output;
pub mod probe;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::decide::{EntityEffect, OperationDone};
use crate::history::{Event, Failure, Millis};
use crate::replay::{EpisodeOutput, Replay};
use crate::store::FunctionKind;
pub use clocks::BLOCKING_WAIT;
use clocks::VirtualClock;
pub use http::{HostPattern, check_target};
pub use limits::{DirGrant, Grants, Limits};

wasmtime::component::bindgen!({
    world: "app",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

use self::cairn::durable::types as wit;

/// The `entity` export, for components that implement entities (world
/// `app-entities`); its imports are the ones [`App`] links.
mod entities {
    wasmtime::component::bindgen!({
        world: "app-entities",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "cairn:durable/types": super::cairn::durable::types,
            "cairn:durable/orchestration": super::cairn::durable::orchestration,
            "cairn:durable/activity-context": super::cairn::durable::activity_context,
            "cairn:durable/entity-context": super::cairn::durable::entity_context,
        },
    });
}
use entities::AppEntitiesPre;

/// How often the epoch ticker advances (the granularity of CPU deadlines).
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why an entity batch did not run.
#[derive(Debug, thiserror::Error)]
pub enum EntityRunError {
    #[error("component {0} implements no entities")]
    NotAnEntity(String),
    #[error("the host ran out of memory for the entity: {0}")]
    HostExhausted(String),
}

/// Errors of loading and running components.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    #[error("component is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("component cannot be instantiated here: {0}")]
    Instantiate(String),
    #[error("component's `list` failed: {0}")]
    List(String),
    #[error("component exports no functions")]
    NoFunctions,
    #[error("invalid function name in component: {0}")]
    BadName(#[from] crate::ids::IdError),
    #[error(
        "orchestrator component imports {}; orchestrators may only import cairn:durable and deterministic WASI (io, cli, clocks, random): move network, file and HTTP I/O into an activity",
        .0.join(", ")
    )]
    ForbiddenImports(Vec<String>),
    #[error(
        "activity component imports {}, but was granted no outbound HTTP hosts: grant the hosts it calls with `cairn deploy --allow-http HOST`",
        .0.join(", ")
    )]
    UngrantedImports(Vec<String>),
    #[error("{0}")]
    BadGrant(String),
    #[error("wasmtime configuration: {0}")]
    Config(String),
    #[error("compiled-component cache at {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
}

impl From<wit::Failure> for Failure {
    fn from(f: wit::Failure) -> Self {
        Self {
            error_type: f.error_type,
            message: f.message,
            details: f.details,
        }
    }
}

impl From<Failure> for wit::Failure {
    fn from(f: Failure) -> Self {
        Self {
            error_type: f.error_type,
            message: f.message,
            details: f.details,
        }
    }
}

/// A loaded (compiled) component, ready to instantiate.
pub struct Loaded {
    pub hash: String,
    component: Component,
    /// Compiled for the dense engine (see [`Sandbox::flavor`]).
    dense: bool,
    /// Linked against the host's imports; `Err` names what the host lacks.
    pre: Result<AppPre<GuestState>, String>,
    /// The same, with the `entity` export: `None` when the component
    /// implements no entities.
    entities: Option<AppEntitiesPre<GuestState>>,
}

impl Loaded {
    fn pre(&self) -> wasmtime::Result<&AppPre<GuestState>> {
        self.pre
            .as_ref()
            .map_err(|e| wasmtime::Error::new(host::GuestAbort(Failure::new("Instantiate", e.clone()))))
    }
}

/// Import prefixes an orchestrator may have: the orchestration contract
/// and the WASI interfaces the host virtualizes deterministically.
const ORCHESTRATOR_IMPORTS: &[&str] = &[
    "cairn:durable/",
    "wasi:io/",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/",
];

/// The next batch an orchestrator session receives.
#[derive(Debug)]
pub struct Resume {
    pub now: Millis,
    pub messages: Vec<(Millis, Event)>,
}

/// What a session reports at the end of an episode.
#[derive(Debug)]
pub enum Yielded {
    /// The guest is parked waiting for more messages.
    Blocked { output: EpisodeOutput, memory: usize },
    /// The execution ended (the output's `finish` is set).
    Finished(EpisodeOutput),
    /// The host ran out of memory or memory mappings for the guest: not the
    /// guest's failure; nothing is recorded and the episode runs again.
    HostExhausted(String),
}

/// Whether `error` is the host running out of memory or memory mappings
/// (mmap's ENOMEM), rather than the guest failing.
fn host_exhausted(error: &wasmtime::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(12))
            || e.downcast_ref::<rustix::io::Errno>() == Some(&rustix::io::Errno::NOMEM)
    }) || format!("{error:#}").contains("(os error 12)")
}

/// Per-store state of a guest.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: limits::Limiter,
    role: Role,
    /// Start of the current uninterrupted run of guest code.
    segment_start: Instant,
    /// The guest's CPU time in the current run (what `budget` limits).
    cpu: Arc<cpu::CpuMeter>,
    budget: Duration,
    /// The guest's stdout and stderr (the tail of stderr explains traps).
    io: GuestIo,
    http: wasmtime_wasi_http::WasiHttpCtx,
    /// Outbound HTTP grant (empty for orchestrators: every request denied).
    gate: http::HttpGate,
}

enum Role {
    Inspect,
    Orchestrator(Box<OrchestratorCtx>),
    Activity(ActivityCtx),
    Entity(EntityCtx),
}

/// What an entity operation knows while it runs, and what it sends.
struct EntityCtx {
    entity: crate::ids::EntityId,
    /// The batch's time.
    now: Millis,
    /// The request being served (derives ids of what it starts).
    request_id: String,
    /// Signals and starts of the current operation, in order.
    effects: Vec<EntityEffect>,
    max_payload: usize,
}

/// One operation of an entity batch.
#[derive(Debug, Clone)]
pub struct EntityOperation {
    pub request_id: String,
    pub operation: String,
    pub input: String,
}

struct OrchestratorCtx {
    replay: Replay,
    clock: Arc<AtomicU64>,
    resume: mailbox::Receiver<Resume>,
    yielded: mailbox::Sender<Yielded>,
    max_payload: usize,
    max_tasks: u32,
    in_lock: bool,
    /// Records what the guest does (time travel); `None` for real episodes.
    probe: Option<Arc<probe::Probe>>,
}

/// What an activity call knows about itself.
#[derive(Debug, Clone)]
pub struct ActivityCtx {
    pub instance_id: String,
    pub function_name: String,
    pub idempotency_key: String,
    pub attempt: u32,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for GuestState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

/// One wasmtime engine and the linker of the host's imports for it.
struct Flavor {
    engine: Engine,
    linker: Linker<GuestState>,
}

impl Flavor {
    fn new(config: &Config) -> Result<Self, SandboxError> {
        let engine = Engine::new(config).map_err(|e| SandboxError::Config(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| SandboxError::Config(e.to_string()))?;
        // Orchestrators may not wait on their (virtual) monotonic clock.
        clocks::add_to_linker(&mut linker).map_err(|e| SandboxError::Config(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        App::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        Ok(Self { engine, linker })
    }
}

/// The component host: engines, linkers, loaded components.
pub struct Sandbox {
    /// wasmtime's default layout (large components).
    standard: Flavor,
    /// The dense layout: components with little data (`dense::suits`),
    /// whose guests' memories and stacks merge into few kernel mappings,
    /// at the price of explicit bounds checks and data segments copied at
    /// instantiation. The others (the JavaScript and Python runtimes,
    /// whose memory images are large) keep wasmtime's default layout, with
    /// copy-on-write images and guard regions.
    dense: Flavor,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    limits: Limits,
    /// Idle activity instances, reused by later calls of the same component.
    activity_pool: ActivityPool,
    /// Idle entity instances, reused by later batches of the same component.
    entity_pool: EntityPool,
}

/// The one place wasmtime is configured: `dense` for the dense engine.
fn engine_config(limits: &Limits, dense: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(1 << 20);
    config.cranelift_nan_canonicalization(true);
    config.parallel_compilation(true);
    if dense {
        dense::configure(&mut config, limits.max_memory_bytes, dense::GUARDED_STACKS);
    }
    config
}

fn import_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn forbidden_for_orchestrators(imports: &[String]) -> Vec<String> {
    imports
        .iter()
        .filter(|name| !ORCHESTRATOR_IMPORTS.iter().any(|p| name.starts_with(p)))
        .cloned()
        .collect()
}

/// sha256 of a component's bytes, lowercase hex: its version id.
#[must_use]
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Sandbox {
    /// Creates the engine (with its epoch ticker thread) and the linker.
    /// Compiled components are cached in `cache_dir` when given.
    ///
    /// # Errors
    /// [`SandboxError::Config`] when wasmtime refuses the configuration.
    pub fn new(cache_dir: Option<PathBuf>, limits: Limits) -> Result<Arc<Self>, SandboxError> {
        let standard = Flavor::new(&engine_config(&limits, false))?;
        let dense = Flavor::new(&engine_config(&limits, true))?;
        let weak = [standard.engine.weak(), dense.engine.weak()];
        std::thread::Builder::new()
            .name("cairn-epoch".into())
            .spawn(move || {
                // Ticks only while some guest runs (an idle host sleeps).
                loop {
                    let busy = cpu::wait_for_guests(Duration::from_millis(500));
                    if busy {
                        std::thread::sleep(EPOCH_TICK);
                    }
                    let Some(engines) = weak
                        .iter()
                        .map(wasmtime::EngineWeak::upgrade)
                        .collect::<Option<Vec<_>>>()
                    else {
                        break;
                    };
                    if busy {
                        engines.iter().for_each(Engine::increment_epoch);
                    }
                }
            })
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        Ok(Arc::new(Self {
            standard,
            dense,
            cache_dir,
            loaded: Mutex::default(),
            limits,
            activity_pool: ActivityPool::default(),
            entity_pool: EntityPool::default(),
        }))
    }

    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The engine and linker of components compiled `dense` or not.
    fn flavor(&self, dense: bool) -> &Flavor {
        if dense { &self.dense } else { &self.standard }
    }

    /// The engine of a loaded component.
    fn engine_of(&self, loaded: &Loaded) -> &Engine {
        &self.flavor(loaded.dense).engine
    }

    fn cache_path(&self, hash: &str, dense: bool) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&self.flavor(dense).engine.precompile_compatibility_hash(), &mut compat);
        let tag = std::hash::Hasher::finish(&compat);
        Some(dir.join(format!("{hash}-{tag:016x}.cwasm")))
    }

    /// An already loaded component.
    #[must_use]
    pub fn get_loaded(&self, hash: &str) -> Option<Arc<Loaded>> {
        self.loaded.lock().ok().and_then(|m| m.get(hash).cloned())
    }

    /// Compiles (or loads from the compiled cache) a component.
    ///
    /// # Errors
    /// [`SandboxError::InvalidComponent`], [`SandboxError::Instantiate`]
    /// when it imports something this host does not provide.
    pub fn load(&self, hash: &str, bytes: &[u8]) -> Result<Arc<Loaded>, SandboxError> {
        self.load_unless_abandoned(hash, bytes, &AtomicBool::new(false))
    }

    /// [`load`](Self::load) for a caller that may stop waiting: once
    /// `abandoned` is set, a compile that ends afterwards writes nothing to
    /// the compiled cache and is not kept loaded.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_unless_abandoned(
        &self,
        hash: &str,
        bytes: &[u8],
        abandoned: &AtomicBool,
    ) -> Result<Arc<Loaded>, SandboxError> {
        if let Some(l) = self.loaded.lock().ok().and_then(|m| m.get(hash).cloned()) {
            return Ok(l);
        }
        if bytes.len() > self.limits.max_component_bytes {
            return Err(SandboxError::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_component_bytes,
            });
        }
        let dense = dense::suits(bytes);
        let flavor = self.flavor(dense);
        let component = match self.cache_path(hash, dense).filter(|p| p.exists()) {
            Some(path) => match limits::deserialize_cached(&flavor.engine, &path) {
                Ok(c) => c,
                Err(_) => self.compile(hash, bytes, dense, abandoned)?,
            },
            None => self.compile(hash, bytes, dense, abandoned)?,
        };
        let instance_pre = flavor.linker.instantiate_pre(&component);
        let entities = instance_pre
            .as_ref()
            .ok()
            .and_then(|p| AppEntitiesPre::new(p.clone()).ok());
        let pre = instance_pre.and_then(AppPre::new).map_err(|e| format!("{e:#}"));
        let loaded = Arc::new(Loaded {
            hash: hash.to_owned(),
            component,
            dense,
            pre,
            entities,
        });
        if !abandoned.load(Ordering::SeqCst)
            && let Ok(mut m) = self.loaded.lock()
        {
            m.insert(hash.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Drops a component that was loaded but not deployed (a refused
    /// deploy): it leaves the loaded set and the compiled cache.
    pub fn forget(&self, hash: &str) {
        if let Ok(mut m) = self.loaded.lock() {
            m.remove(hash);
        }
        for path in [self.cache_path(hash, false), self.cache_path(hash, true)]
            .into_iter()
            .flatten()
        {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a refused component's compiled code");
            }
        }
    }

    fn compile(
        &self,
        hash: &str,
        bytes: &[u8],
        dense: bool,
        abandoned: &AtomicBool,
    ) -> Result<Component, SandboxError> {
        let component = Component::new(&self.flavor(dense).engine, bytes)
            .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
        if abandoned.load(Ordering::SeqCst) {
            return Ok(component);
        }
        if let (Some(path), Ok(serialized)) = (self.cache_path(hash, dense), component.serialize()) {
            let write = || -> std::io::Result<()> {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, &serialized)?;
                std::fs::rename(&tmp, &path)
            };
            if let Err(e) = write() {
                tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
            }
        }
        Ok(component)
    }

    fn new_store(
        &self,
        loaded: &Loaded,
        role: Role,
        wasi: WasiCtx,
        io: GuestIo,
        budget: Duration,
    ) -> Store<GuestState> {
        let state = GuestState {
            wasi,
            table: ResourceTable::new(),
            limiter: limits::Limiter::new(self.limits.max_memory_bytes),
            role,
            segment_start: Instant::now(),
            cpu: cpu::CpuMeter::new(),
            budget,
            io,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            gate: http::HttpGate::default(),
        };
        let mut store = Store::new(self.engine_of(loaded), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let s = ctx.data();
            // The guest's own CPU time (time spent waiting for a core does
            // not count); wall time only if the call is not metered.
            let used = s.cpu.used().unwrap_or_else(|| s.segment_start.elapsed());
            if used > s.budget {
                Err(wasmtime::Error::new(host::GuestAbort(Failure::new(
                    "Timeout",
                    format!(
                        "guest code ran for more than {} ms of CPU time without yielding; the limit is {} ms (limits.cpu)",
                        used.as_millis(),
                        s.budget.as_millis()
                    ),
                ))))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Deploy-time capability check of a component that exports
    /// orchestrators: every import outside [`ORCHESTRATOR_IMPORTS`] is named.
    ///
    /// # Errors
    /// [`SandboxError::ForbiddenImports`].
    pub fn check_orchestrator_imports(&self, loaded: &Loaded) -> Result<(), SandboxError> {
        let forbidden = forbidden_for_orchestrators(&import_names(self.engine_of(loaded), &loaded.component));
        if forbidden.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::ForbiddenImports(forbidden))
        }
    }

    /// Deploy-time check of a component against the capabilities granted to
    /// it: the HTTP host patterns must parse, and importing outbound HTTP
    /// needs at least one granted host.
    ///
    /// # Errors
    /// [`SandboxError::BadGrant`], [`SandboxError::UngrantedImports`].
    pub fn check_grants(&self, loaded: &Loaded, grants: &Grants) -> Result<(), SandboxError> {
        for pattern in &grants.http {
            HostPattern::parse(pattern).map_err(SandboxError::BadGrant)?;
        }
        let ungranted: Vec<String> = import_names(self.engine_of(loaded), &loaded.component)
            .into_iter()
            .filter(|name| name.starts_with("wasi:http/outgoing-handler") && grants.http.is_empty())
            .collect();
        if ungranted.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::UngrantedImports(ungranted))
        }
    }

    /// Fails when the component imports something this host cannot link.
    ///
    /// # Errors
    /// [`SandboxError::Instantiate`] naming the missing import.
    pub fn check_linkable(&self, loaded: &Loaded) -> Result<(), SandboxError> {
        loaded
            .pre
            .as_ref()
            .map(drop)
            .map_err(|e| SandboxError::Instantiate(e.clone()))
    }

    /// Lists the functions a component exports (used at deploy time).
    ///
    /// # Errors
    /// Instantiation or `list` failures; invalid names.
    pub async fn inspect(&self, loaded: &Loaded) -> Result<Vec<(String, FunctionKind)>, SandboxError> {
        let io = GuestIo::new("(deploy)", true);
        let wasi = io
            .builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = self.new_store(loaded, Role::Inspect, wasi, io, self.limits.orchestrator_cpu);
        // `list` needs no capability. A component the host can link runs
        // with the host's imports and a WASI context that grants nothing
        // (guest runtimes such as componentize-py read their environment, empty
        // here, before the first call); one it cannot link runs with every
        // import trapping, so that it can still be inspected and refused by
        // name.
        let meter = store.data().cpu.clone();
        let (list, entity_names) = cpu::Metered::new(meter, async {
            if let Some(pre) = &loaded.entities {
                let app = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| SandboxError::Instantiate(format!("{e:#}")))?;
                let list = app
                    .cairn_durable_functions()
                    .call_list(&mut store)
                    .await
                    .map_err(|e| SandboxError::List(format!("{e:#}")))?;
                let names = app
                    .cairn_durable_entity()
                    .call_entities(&mut store)
                    .await
                    .map_err(|e| SandboxError::List(format!("{e:#}")))?;
                return Ok((list, names));
            }
            let app = match &loaded.pre {
                Ok(pre) => pre.instantiate_async(&mut store).await,
                Err(_) => {
                    let mut linker: Linker<GuestState> = Linker::new(self.engine_of(loaded));
                    linker
                        .define_unknown_imports_as_traps(&loaded.component)
                        .map_err(|e| SandboxError::Instantiate(format!("{e:#}")))?;
                    App::instantiate_async(&mut store, &loaded.component, &linker).await
                }
            }
            .map_err(|e| SandboxError::Instantiate(format!("{e:#}")))?;
            let list = app
                .cairn_durable_functions()
                .call_list(&mut store)
                .await
                .map_err(|e| SandboxError::List(format!("{e:#}")))?;
            Ok::<_, SandboxError>((list, Vec::new()))
        })
        .await?;
        let mut out = Vec::with_capacity(list.len());
        for f in list {
            crate::ids::validate_name("function name", &f.name)?;
            let kind = match f.kind {
                wit::FunctionKind::Orchestrator => FunctionKind::Orchestrator,
                wit::FunctionKind::Activity => FunctionKind::Activity,
            };
            out.push((f.name, kind));
        }
        for name in entity_names {
            crate::ids::EntityId::new(&name, "")?;
            out.push((name, FunctionKind::Entity));
        }
        if out.is_empty() {
            return Err(SandboxError::NoFunctions);
        }
        Ok(out)
    }

    /// Starts an orchestrator session: instantiates the component, runs the
    /// guest from the beginning against `replay` (already holding the
    /// history and this episode's messages) on a spawned task, and returns
    /// the channels to drive it. The first [`Yielded`] arrives on the
    /// returned receiver.
    pub fn start_session(self: &Arc<Self>, loaded: Arc<Loaded>, replay: Replay) -> Session {
        self.start_session_with(loaded, replay, None)
    }

    /// As [`Sandbox::start_session`], with a probe recording everything
    /// the guest does, replayed episodes included; the guest's output goes
    /// to the probe only, not to the host log. For side runs (time travel)
    /// whose results are never committed.
    pub fn start_probed_session(
        self: &Arc<Self>,
        loaded: Arc<Loaded>,
        replay: Replay,
        probe: Arc<probe::Probe>,
    ) -> Session {
        self.start_session_with(loaded, replay, Some(probe))
    }

    fn start_session_with(
        self: &Arc<Self>,
        loaded: Arc<Loaded>,
        replay: Replay,
        probe: Option<Arc<probe::Probe>>,
    ) -> Session {
        let (resume_tx, resume_rx) = mailbox::channel();
        let (yield_tx, yield_rx) = mailbox::channel();
        let clock = Arc::new(AtomicU64::new(replay.current_time()));
        let io = GuestIo::new(replay.instance_id(), replay.is_replaying());
        if let Some(p) = &probe {
            p.set_position(replay.current_time(), replay.is_replaying());
            io.stdout.set_probe(p.clone());
            io.stderr.set_probe(p.clone());
        }
        let wasi = deterministic_wasi(
            &io,
            &clock,
            &format!("{}\0{}", replay.instance_id(), replay.execution_id()),
        );
        let name = replay.name().to_owned();
        let input = replay.input().to_owned();
        let fallback_tx = yield_tx.clone();
        let max_payload = self.limits.max_payload_bytes;
        let ctx = OrchestratorCtx {
            replay,
            clock,
            resume: resume_rx,
            yielded: yield_tx,
            max_payload: self.limits.max_payload_bytes,
            max_tasks: self.limits.max_tasks_per_execution,
            in_lock: false,
            probe,
        };
        let mut store = self.new_store(
            &loaded,
            Role::Orchestrator(Box::new(ctx)),
            wasi,
            io,
            self.limits.orchestrator_cpu,
        );
        let meter = store.data().cpu.clone();
        let task = tokio::spawn(async move {
            let result = cpu::Metered::new(meter, async {
                match loaded.pre() {
                    Ok(pre) => match pre.instantiate_async(&mut store).await {
                        Ok(app) => app.cairn_durable_functions().call_run(&mut store, &name, &input).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            })
            .await;
            if let Err(e) = &result
                && host_exhausted(e)
            {
                let _ = fallback_tx.send(Yielded::HostExhausted(format!("{e:#}"))).await;
                return;
            }
            let state = store.data_mut();
            let captured = state.io.stderr.tail();
            let Role::Orchestrator(ctx) = &mut state.role else {
                return;
            };
            let guest = match result {
                Ok(Ok(out)) if out.len() > max_payload => Err(output_too_large(out.len(), max_payload)),
                Ok(Ok(out)) => Ok(out),
                Ok(Err(f)) => Err(f.into()),
                Err(trap) => Err(trap_failure(&trap, &captured)),
            };
            let finish = ctx.replay.finish(guest);
            if let Some(p) = &ctx.probe {
                p.stopped(ctx.replay.open_tasks());
            }
            let out = ctx.replay.take_episode(Some(finish));
            let _ = fallback_tx.send(Yielded::Finished(out)).await;
        });
        Session {
            resume: resume_tx,
            yielded: yield_rx,
            task,
        }
    }

    /// Runs one activity call to completion.
    ///
    /// # Errors
    /// The activity's own failure, or a host failure (`Trap`, `Timeout`,
    /// `LimitExceeded`, `Instantiate`) as a [`Failure`].
    pub async fn run_activity(
        &self,
        loaded: &Loaded,
        ctx: ActivityCtx,
        input: &str,
        grants: &Grants,
    ) -> Result<String, Failure> {
        let name = ctx.function_name.clone();
        let budget = self.limits.activity_cpu;
        let (mut store, pooled) = match self.activity_pool.take(&loaded.hash, grants) {
            Some(p) => (p.store, Some(p.app)),
            None => (self.activity_store(loaded, grants, &ctx.instance_id)?, None),
        };
        let state = store.data_mut();
        state.io.reset(&ctx.instance_id);
        state.role = Role::Activity(ctx);
        state.gate = http::HttpGate::new(grants.http_patterns());
        state.segment_start = Instant::now();
        state.cpu.reset();
        let meter = state.cpu.clone();
        store.set_epoch_deadline(1);
        let call = cpu::Metered::new(meter, async {
            let app = match pooled {
                Some(app) => app,
                None => loaded.pre()?.instantiate_async(&mut store).await?,
            };
            let result = app
                .cairn_durable_functions()
                .call_run(&mut store, &name, &input.to_owned())
                .await?;
            Ok::<_, wasmtime::Error>((app, result))
        });
        // Host calls (sleeps, I/O) are not interrupted by epochs: bound the
        // whole call in wall time too.
        let result = tokio::time::timeout(budget + Duration::from_secs(1), call).await;
        if !store.data().gate.denied.is_empty() {
            return Err(http_denied("outbound HTTP", &store.data().gate.denied, grants));
        }
        let stderr = store.data().io.stderr.clone();
        match result {
            Err(_) => Err(Failure::new(
                "Timeout",
                format!(
                    "activity {name:?} ran longer than {} ms (limits.activity_cpu)",
                    budget.as_millis()
                ),
            )),
            // A trap leaves the instance in an unknown state: it is dropped.
            Ok(Err(trap)) => Err(trap_failure(&trap, &stderr.tail())),
            Ok(Ok((app, result))) => {
                // The call returned normally (a value or a typed failure):
                // the instance serves the next call of this component.
                if store.data().limiter.in_use <= self.limits.max_memory_bytes / 2 {
                    self.activity_pool.put(
                        &loaded.hash,
                        PooledActivity {
                            store,
                            app,
                            grants: grants.clone(),
                        },
                    );
                }
                match result {
                    Ok(out) if out.len() > self.limits.max_payload_bytes => {
                        Err(output_too_large(out.len(), self.limits.max_payload_bytes))
                    }
                    Ok(out) => Ok(out),
                    Err(f) => Err(f.into()),
                }
            }
        }
    }

    /// Runs a batch of operations on one entity, one at a time in order,
    /// in one instance of its component, sandboxed like an orchestrator
    /// (virtual clock at `now`, seeded randomness, no I/O). Each operation
    /// starts from the state the previous successful one left; a failed
    /// operation (its own failure, a trap, the CPU limit) leaves the state
    /// as it was and its effects are dropped; after a trap the next
    /// operation gets a fresh instance. Returns the final state and one
    /// result per operation.
    ///
    /// # Errors
    /// [`EntityRunError::NotAnEntity`] when the component exports no
    /// entities; [`EntityRunError::HostExhausted`] when the host ran out of
    /// memory (nothing of the batch counts; it runs again).
    pub async fn run_entity_batch(
        &self,
        loaded: &Loaded,
        entity: &crate::ids::EntityId,
        mut state: Option<String>,
        ops: Vec<EntityOperation>,
        now: Millis,
    ) -> Result<(Option<String>, Vec<OperationDone>), EntityRunError> {
        let Some(pre) = &loaded.entities else {
            return Err(EntityRunError::NotAnEntity(loaded.hash.clone()));
        };
        let max_payload = self.limits.max_payload_bytes;
        let mut done = Vec::with_capacity(ops.len());
        // An idle instance of the component serves the batch when there is
        // one (instantiating costs more than most operations).
        let mut live: Option<(Store<GuestState>, entities::AppEntities)> =
            self.entity_pool.take(&loaded.hash).map(|p| {
                p.clock.store(now, Ordering::Relaxed);
                p.store.data().io.reset(&entity.instance_id());
                (p.store, p.app)
            });
        let mut clock = Arc::new(AtomicU64::new(now));
        for op in ops {
            if live.is_none() {
                let (mut store, c) = self.entity_store(loaded, entity, &op.request_id, now);
                clock = c;
                let meter = store.data().cpu.clone();
                match cpu::Metered::new(meter, pre.instantiate_async(&mut store)).await {
                    Ok(app) => live = Some((store, app)),
                    Err(e) if host_exhausted(&e) => return Err(EntityRunError::HostExhausted(format!("{e:#}"))),
                    Err(e) => {
                        done.push(OperationDone {
                            outcome: Err(trap_failure(&e, &store.data().io.stderr.tail())),
                            effects: Vec::new(),
                        });
                        continue;
                    }
                }
            }
            let Some((store, app)) = live.as_mut() else { continue };
            let data = store.data_mut();
            data.role = Role::Entity(EntityCtx {
                entity: entity.clone(),
                now,
                request_id: op.request_id.clone(),
                effects: Vec::new(),
                max_payload,
            });
            data.segment_start = Instant::now();
            data.cpu.reset();
            let meter = data.cpu.clone();
            store.set_epoch_deadline(1);
            let result = cpu::Metered::new(
                meter,
                app.cairn_durable_entity().call_run_operation(
                    &mut *store,
                    entity.name(),
                    entity.key(),
                    &op.operation,
                    &op.input,
                    state.as_ref(),
                ),
            )
            .await;
            let effects = match &mut store.data_mut().role {
                Role::Entity(ctx) => std::mem::take(&mut ctx.effects),
                _ => Vec::new(),
            };
            let checked = |text: &str, what: &str| -> Result<(), Failure> {
                if text.len() > max_payload {
                    return Err(output_too_large(text.len(), max_payload));
                }
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map(drop)
                    .map_err(|_| Failure::new("InvalidInput", format!("the entity's {what} is not valid JSON")))
            };
            let outcome = match result {
                Ok(Ok(out)) => match checked(&out.output, "operation result")
                    .and_then(|()| out.state.as_deref().map_or(Ok(()), |s| checked(s, "state")))
                {
                    Ok(()) => {
                        state = out.state;
                        Ok(out.output)
                    }
                    Err(f) => Err(f),
                },
                Ok(Err(f)) => Err(f.into()),
                Err(e) if host_exhausted(&e) => return Err(EntityRunError::HostExhausted(format!("{e:#}"))),
                Err(trap) => {
                    let tail = store.data().io.stderr.tail();
                    live = None;
                    Err(trap_failure(&trap, &tail))
                }
            };
            let effects = if outcome.is_ok() { effects } else { Vec::new() };
            done.push(OperationDone { outcome, effects });
        }
        // An instance whose calls all returned serves a later batch.
        if let Some((store, app)) = live
            && store.data().limiter.in_use <= self.limits.max_memory_bytes / 2
        {
            self.entity_pool.put(&loaded.hash, PooledEntity { store, app, clock });
        }
        Ok((state, done))
    }

    /// A store for entity operations: deterministic WASI as an
    /// orchestrator's (virtual clock at `now`, randomness seeded by the
    /// entity and the batch's first request).
    fn entity_store(
        &self,
        loaded: &Loaded,
        entity: &crate::ids::EntityId,
        first_request: &str,
        now: Millis,
    ) -> (Store<GuestState>, Arc<AtomicU64>) {
        let id = entity.instance_id();
        let clock = Arc::new(AtomicU64::new(now));
        let io = GuestIo::new(&id, false);
        let wasi = deterministic_wasi(&io, &clock, &format!("{id}\0{first_request}"));
        (
            self.new_store(loaded, Role::Inspect, wasi, io, self.limits.orchestrator_cpu),
            clock,
        )
    }

    /// A fresh store for an activity of a component with `grants`.
    fn activity_store(
        &self,
        loaded: &Loaded,
        grants: &Grants,
        instance_id: &str,
    ) -> Result<Store<GuestState>, Failure> {
        let io = GuestIo::new(instance_id, false);
        let mut builder = io.builder();
        builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        for name in &grants.env {
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
        for dir in &grants.dirs {
            let perms = if dir.writable {
                wasmtime_wasi::FsPerms::ReadWrite
            } else {
                wasmtime_wasi::FsPerms::ReadOnly
            };
            if let Err(e) = builder.preopened_dir(&dir.host, &dir.guest, perms) {
                return Err(Failure::new(
                    "CapabilityUnavailable",
                    format!("granted directory {} cannot be opened: {e:#}", dir.host.display()),
                ));
            }
        }
        let wasi = builder.build();
        Ok(self.new_store(loaded, Role::Inspect, wasi, io, self.limits.activity_cpu))
    }
}

/// An activity instance between calls.
struct PooledActivity {
    store: Store<GuestState>,
    app: App,
    /// What its WASI context was built with (env, preopens).
    grants: Grants,
}

/// Idle activity instances by component version (and grants). Activities
/// run like warm workers: an instance whose call returned (a value or a
/// typed failure) serves later calls, so a guest's global state may persist
/// between calls; one that trapped or timed out is dropped.
#[derive(Default)]
struct ActivityPool {
    idle: Mutex<HashMap<String, Vec<PooledActivity>>>,
}

/// Idle instances kept per component version.
const MAX_IDLE_PER_COMPONENT: usize = 8;
/// Idle instances kept in all.
const MAX_IDLE_TOTAL: usize = 64;
/// Guest linear memory held by idle instances in all.
const MAX_IDLE_BYTES: usize = 512 << 20;

impl ActivityPool {
    /// An idle instance of component `hash` built with `grants` (a
    /// re-deploy with other grants makes the older instances unusable).
    fn take(&self, hash: &str, grants: &Grants) -> Option<PooledActivity> {
        let mut idle = self.idle.lock().ok()?;
        let slot = idle.get_mut(hash)?;
        slot.retain(|p| p.grants == *grants);
        slot.pop()
    }

    fn put(&self, hash: &str, instance: PooledActivity) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let count: usize = idle.values().map(Vec::len).sum();
        let bytes: usize = idle.values().flatten().map(|p| p.store.data().limiter.in_use).sum();
        let size = instance.store.data().limiter.in_use;
        let slot = idle.entry(hash.to_owned()).or_default();
        if slot.len() < MAX_IDLE_PER_COMPONENT && count < MAX_IDLE_TOTAL && bytes + size <= MAX_IDLE_BYTES {
            slot.push(instance);
        }
    }
}

/// The WASI of a deterministic guest (orchestrators, entities): its clocks
/// read `clock` (the episode's or batch's time), its randomness is seeded
/// from `seed` (e.g. instance and execution id), and it has no network.
fn deterministic_wasi(io: &GuestIo, clock: &Arc<AtomicU64>, seed: &str) -> WasiCtx {
    let digest = Sha256::digest(seed.as_bytes());
    let mut seed_bytes = [0u8; 32];
    seed_bytes.copy_from_slice(&digest);
    let insecure_seed = u128::from_le_bytes(seed_bytes[..16].try_into().unwrap_or([0; 16]));
    io.builder()
        .wall_clock(VirtualClock(clock.clone()))
        .monotonic_clock(VirtualClock(clock.clone()))
        .secure_random(rand::rngs::StdRng::from_seed(seed_bytes))
        .insecure_random(rand::rngs::StdRng::from_seed(seed_bytes))
        .insecure_random_seed(insecure_seed)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// An entity instance between batches, with the clock its WASI reads.
struct PooledEntity {
    store: Store<GuestState>,
    app: entities::AppEntities,
    clock: Arc<AtomicU64>,
}

/// Idle entity instances by component version. Entities run like warm
/// workers, as activities do: a guest's global state may persist between
/// batches (the SDKs keep none); one that trapped is dropped.
#[derive(Default)]
struct EntityPool {
    idle: Mutex<HashMap<String, Vec<PooledEntity>>>,
}

/// Idle entity instances kept per component version.
const MAX_IDLE_ENTITIES_PER_COMPONENT: usize = 32;
/// Idle entity instances kept in all.
const MAX_IDLE_ENTITIES: usize = 128;

impl EntityPool {
    fn take(&self, hash: &str) -> Option<PooledEntity> {
        self.idle.lock().ok()?.get_mut(hash)?.pop()
    }

    fn put(&self, hash: &str, instance: PooledEntity) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let count: usize = idle.values().map(Vec::len).sum();
        let slot = idle.entry(hash.to_owned()).or_default();
        if slot.len() < MAX_IDLE_ENTITIES_PER_COMPONENT && count < MAX_IDLE_ENTITIES {
            slot.push(instance);
        }
    }
}

/// A guest's stdout and stderr, logged under its instance id.
#[derive(Clone)]
struct GuestIo {
    stdout: output::GuestOutput,
    stderr: output::GuestOutput,
    quiet: Arc<AtomicBool>,
}

impl GuestIo {
    fn new(instance: &str, quiet: bool) -> Self {
        let quiet = Arc::new(AtomicBool::new(quiet));
        Self {
            stdout: output::GuestOutput::new("stdout", instance, quiet.clone()),
            stderr: output::GuestOutput::new("stderr", instance, quiet.clone()),
            quiet,
        }
    }

    /// Starts a new call (of a pooled activity instance) for `instance`.
    fn reset(&self, instance: &str) {
        self.stdout.reset(instance);
        self.stderr.reset(instance);
    }

    /// A WASI builder writing to these streams.
    fn builder(&self) -> WasiCtxBuilder {
        let mut b = WasiCtxBuilder::new();
        b.stdout(self.stdout.clone()).stderr(self.stderr.clone());
        b
    }
}

/// A live orchestrator: the engine's end of the channels.
pub struct Session {
    pub resume: mailbox::Sender<Resume>,
    pub yielded: mailbox::Receiver<Yielded>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the guest's future releases its fiber and memory.
        self.task.abort();
    }
}

/// The `CapabilityDenied` failure of `what` (outbound or durable HTTP) to
/// the `denied` targets.
#[must_use]
pub fn http_denied(what: &str, denied: &[String], grants: &Grants) -> Failure {
    let granted = if grants.http.is_empty() {
        "none".to_owned()
    } else {
        grants.http.join(", ")
    };
    Failure::new(
        "CapabilityDenied",
        format!(
            "{what} to {} is not granted to this component (granted hosts: {granted}); grant it at deploy with `cairn deploy --allow-http HOST`",
            denied.join(", ")
        ),
    )
}

fn output_too_large(len: usize, max: usize) -> Failure {
    Failure::new(
        "LimitExceeded",
        format!("output is {len} bytes; the limit is {max} bytes (limits.payload)"),
    )
}

/// Turns a trap into a typed failure, with the guest's last stderr output
/// (a Rust panic message, a Python traceback) when there is some.
fn trap_failure(trap: &wasmtime::Error, stderr: &[u8]) -> Failure {
    let text = format!("{trap:#}");
    let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(4096)..])
        .trim()
        .to_owned();
    if let Some(f) = trap.downcast_ref::<host::GuestAbort>() {
        return f.0.clone();
    }
    let error_type = if text.contains("LimitExceeded:") {
        "LimitExceeded"
    } else if tail.contains("panicked at") {
        "Panic"
    } else {
        "Trap"
    };
    let message = if tail.is_empty() {
        text
    } else {
        format!("{tail}\n({text})")
    };
    Failure::new(error_type, message)
}

/// Default location of the compiled-component cache for a task hub file.
#[must_use]
pub fn default_cache_dir(db: &Path) -> PathBuf {
    if crate::store::is_postgres(db) {
        // A database has no folder beside it: a per-user cache (entries are
        // keyed by content hash and wasmtime version, so hubs may share it).
        return std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("cairn")
            .join("compiled");
    }
    let mut name = db.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".compiled");
    db.with_file_name(name)
}

//! The `cairn` command line. Verbs work directly on the task hub file (as
//! `func durable` works on storage); `serve` runs the workers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::api::ApiConfig;
use crate::engine::{Engine, EngineConfig, wait_for_instance};
use crate::history::Event;
use crate::hub::{Hub, HubError};
use crate::status::{StatusOptions, history_table, status_json};
use crate::store::{Hosting, StoreError};

mod entity;
mod remote;

/// Errors of the command line, one clear line each.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error(transparent)]
    Client(#[from] crate::api::client::ClientError),
    #[error("the server answered {status}: {message}")]
    Remote { status: u16, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the replay of {0} differs from its recorded history (see the report above)")]
    ReplayDiffers(String),
}

/// `cairn` — durable orchestrations of WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Task hub: a SQLite file, or a PostgreSQL database shared by many
    /// hosts (postgres://user:password@host:port/db).
    #[arg(
        long,
        global = true,
        env = "CAIRN_DB",
        default_value = "./cairn.db",
        hide_env_values = true
    )]
    pub db: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr: `text`, or `json` (one object per line).
    /// Guest output is logged under its own target, `cairn::guest`: e.g.
    /// `RUST_LOG=info,cairn::guest=warn` turns it down without hiding the host's.
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Run the verb against a remote `cairn serve` (e.g. http://127.0.0.1:7071)
    /// over its HTTP API instead of on a local task hub file.
    #[arg(long, global = true, env = "CAIRN_URL")]
    pub url: Option<String>,
    /// API key: the one `serve` requires, or the one sent to `--url`.
    #[arg(long, global = true, env = "CAIRN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Guest limits (defaults in `sandbox::Limits`).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Linear memory per guest instance, MiB.
    #[arg(long, global = true, env = "CAIRN_MEMORY_LIMIT_MIB", default_value_t = 256)]
    pub memory_limit_mib: usize,
    /// Uninterrupted CPU time of orchestrator code per episode, ms.
    #[arg(long, global = true, env = "CAIRN_ORCHESTRATOR_CPU_MS", default_value_t = 2000)]
    pub orchestrator_cpu_ms: u64,
    /// Wall time of one activity call, s.
    #[arg(long, global = true, env = "CAIRN_ACTIVITY_TIMEOUT_SECS", default_value_t = 300)]
    pub activity_timeout_secs: u64,
    /// Largest input, output, event payload or custom status, bytes.
    #[arg(long, global = true, env = "CAIRN_MAX_PAYLOAD_BYTES", default_value_t = 2 << 20)]
    pub max_payload_bytes: usize,
    /// Most history events of one execution.
    #[arg(long, global = true, env = "CAIRN_MAX_HISTORY_EVENTS", default_value_t = 1_000_000)]
    pub max_history_events: u64,
    /// Most tasks one execution may create.
    #[arg(long, global = true, env = "CAIRN_MAX_TASKS", default_value_t = 100_000)]
    pub max_tasks: u32,
    /// Largest component accepted at deploy, MiB.
    #[arg(long, global = true, env = "CAIRN_MAX_COMPONENT_MIB", default_value_t = 64)]
    pub max_component_mib: usize,
    /// Longest compile of a component at deploy, s.
    #[arg(long, global = true, env = "CAIRN_COMPILE_TIMEOUT_SECS", default_value_t = 120)]
    pub compile_timeout_secs: u64,
}

impl LimitArgs {
    /// The sandbox limits these flags describe.
    #[must_use]
    pub fn limits(&self) -> crate::sandbox::Limits {
        crate::sandbox::Limits {
            max_memory_bytes: self.memory_limit_mib.saturating_mul(1 << 20),
            orchestrator_cpu: Duration::from_millis(self.orchestrator_cpu_ms.max(1)),
            activity_cpu: Duration::from_secs(self.activity_timeout_secs.max(1)),
            max_payload_bytes: self.max_payload_bytes,
            max_history_events: self.max_history_events,
            max_tasks_per_execution: self.max_tasks.max(1),
            max_component_bytes: self.max_component_mib.saturating_mul(1 << 20),
            max_compile_time: Duration::from_secs(self.compile_timeout_secs.max(1)),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the workers (and the management API) on the task hub.
    Serve {
        /// Address of the management API (a non-loopback address needs --api-key).
        #[arg(long, default_value = "127.0.0.1:7071")]
        listen: String,
        /// Disable the hot instance cache (replay at every episode).
        #[arg(long)]
        no_hot_cache: bool,
        /// Most instances kept hot (parked in memory between episodes).
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        max_hot_instances: usize,
        /// Resident memory of this process, MiB, above which the least
        /// recently used hot instances are evicted (they replay when next needed).
        #[arg(long, value_name = "MIB", default_value_t = 2048)]
        max_hot_memory_mib: usize,
        /// Build the URLs of check-status payloads from X-Forwarded-Host /
        /// X-Forwarded-Proto (only behind a proxy that sets them).
        #[arg(long)]
        trust_forwarded_headers: bool,
        /// Largest request body in bytes (component uploads: 64 MiB).
        #[arg(long, default_value_t = 4 << 20)]
        max_body_bytes: usize,
        /// Connections served at once (at the cap, the one idle longest is closed for a new one).
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Component uploads read and compiled at once; more answer 503 with Retry-After.
        #[arg(long, default_value_t = 2)]
        max_concurrent_deploys: usize,
        /// Let web pages of this origin (e.g. https://app.example) call the API,
        /// with CORS headers (repeatable; other origins get 403).
        #[arg(long = "allow-origin", value_name = "ORIGIN")]
        allow_origin: Vec<String>,
        /// Export traces over OTLP/HTTP to this collector (base URL, e.g.
        /// http://127.0.0.1:4318; `/v1/traces` is appended). Also read from
        /// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (full URL).
        #[arg(long, value_name = "URL")]
        otlp_endpoint: Option<String>,
        /// Lease of an instance this host runs or keeps hot, e.g. 30s, 3s,
        /// 500ms (renewed every third of it while held). On a PostgreSQL
        /// task hub another host takes a dead host's instances over after
        /// it expires (its activities too: their leases are as long).
        #[arg(
            long,
            env = "CAIRN_INSTANCE_LEASE",
            value_name = "DURATION",
            default_value = "30s",
            value_parser = parse_duration
        )]
        instance_lease: Duration,
    },
    /// Deploy components; prints each function's name, kind and version.
    /// A JavaScript or Python project built in two parts deploys as one:
    /// `X.wasm` brings its activity part `X.activities.wasm` along (found
    /// next to it), and environment and directory grants go to that part
    /// only (its orchestrators get the HTTP grant, for durable HTTP).
    Deploy {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Let the component's activities read this host environment variable (repeatable).
        #[arg(long = "allow-env", value_name = "NAME")]
        allow_env: Vec<String>,
        /// Preopen a host directory for its activities: HOST[:GUEST][:ro|:rw], read-only by default (repeatable).
        #[arg(long = "allow-dir", value_name = "SPEC")]
        allow_dir: Vec<String>,
        /// Let its activities send HTTP requests to this host: HOST, HOST:PORT or *.DOMAIN (repeatable).
        #[arg(long = "allow-http", value_name = "HOST")]
        allow_http: Vec<String>,
    },
    /// Start an orchestration; prints the instance id.
    Start {
        name: String,
        /// Input as JSON text, or @file.json.
        #[arg(long)]
        input: Option<String>,
        /// Instance id (generated when absent).
        #[arg(long)]
        id: Option<String>,
        /// Run on this component version (content hash) instead of the newest.
        #[arg(long)]
        version: Option<String>,
        /// Wait for the result (optionally at most SECONDS, default 60) and print the final status.
        #[arg(long, num_args = 0..=1, default_missing_value = "60")]
        wait: Option<u64>,
    },
    /// Show an instance's status as JSON.
    Status {
        id: String,
        #[arg(long)]
        show_input: bool,
        /// Include the output (without it the `output` field is left out).
        #[arg(long)]
        show_output: bool,
        #[arg(long)]
        show_history: bool,
    },
    /// Print an instance's history as a table.
    History { id: String },
    /// Raise an event to an instance.
    RaiseEvent {
        id: String,
        event: String,
        /// Event data as JSON text, or @file.json.
        data: Option<String>,
    },
    /// Terminate an instance.
    Terminate {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Suspend an instance.
    Suspend {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a suspended instance.
    Resume {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// List instances (a page at a time; the next page's token is printed to stderr).
    List {
        /// Only instances created at or after this ISO 8601 time.
        #[arg(long)]
        created_after: Option<String>,
        /// Only instances created at or before this ISO 8601 time.
        #[arg(long)]
        created_before: Option<String>,
        /// Only these statuses (e.g. `Running,Failed`).
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        runtime_status: Vec<String>,
        /// Only ids starting with this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Most instances in this page (at most 1000).
        #[arg(long)]
        top: Option<u32>,
        /// Token of the page to fetch (printed by the previous `list`).
        #[arg(long)]
        continuation_token: Option<String>,
        /// Include each instance's input.
        #[arg(long)]
        show_input: bool,
    },
    /// Print an instance's history as JSON (Durable Functions event shapes).
    GetHistory { id: String },
    /// Rewind a Failed instance: its failed tasks run again.
    Rewind {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Start an instance again with its input; prints the new instance id.
    Restart {
        id: String,
        /// Reuse the instance id (the instance must have finished).
        #[arg(long)]
        same_id: bool,
    },
    /// Purge finished instances: one by id, or by creation time and status.
    Purge {
        /// The instance to purge (otherwise the filters apply).
        id: Option<String>,
        /// Purge instances created at or after this ISO 8601 time.
        #[arg(long, conflicts_with = "id")]
        created_after: Option<String>,
        /// Purge instances created at or before this ISO 8601 time (default now).
        #[arg(long, conflicts_with = "id")]
        created_before: Option<String>,
        /// Only these statuses (Completed, Failed, Terminated, Canceled).
        #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "id")]
        runtime_status: Vec<String>,
    },
    /// Delete every instance, message and component of the task hub.
    DeleteTaskHub {
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Replay every unfinished instance of NAME against a candidate
    /// component and report per instance whether it replays cleanly, its
    /// inputs changed (same actions, other inputs), or it diverges.
    UpgradeCheck {
        name: String,
        component: PathBuf,
        /// Deploy the candidate and move the instances that replay cleanly to it.
        #[arg(long)]
        apply: bool,
        /// With --apply, also move instances whose only difference is a
        /// changed activity, sub-orchestration or timer input (they carry on
        /// with the results recorded for the old inputs).
        #[arg(long, requires = "apply")]
        allow_input_changes: bool,
    },
    /// Replay a finished instance's recorded history from the start against
    /// its own version (or COMPONENT): prints what it reproduced; exits
    /// non-zero unless every action, its input and the outcome are identical.
    Replay {
        id: String,
        /// Replay against this component instead (test new code on old histories).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Time travel: replay only up to this history event (0-based index,
        /// as in `cairn history`) and print the open tasks, the custom status
        /// and the guest's log lines at that point. Works on running instances too.
        #[arg(long, value_name = "EVENT_INDEX")]
        until: Option<usize>,
    },
    /// Delete component versions no unfinished instance uses (the newest
    /// version of every function is kept).
    PruneVersions,
    /// Show critical-section locks: holders and waiters.
    Locks,
    /// Durable entities: signal, get, list, purge.
    Entity {
        #[command(subcommand)]
        verb: entity::EntityVerb,
    },
    /// Measure throughput and latency on a temporary task hub.
    Bench(crate::bench::BenchArgs),
}

/// Format of the log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sets up logging to stderr (`RUST_LOG` overrides the level).
pub fn init_tracing(verbose: u8) {
    init_logging(verbose, LogFormat::Text);
}

/// Sets up logging to stderr in `format` (`RUST_LOG` overrides the level).
pub fn init_logging(verbose: u8, format: LogFormat) {
    if format == LogFormat::Json {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(verbose)));
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .try_init();
        return;
    }
    init_text(verbose);
}

fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn,cairn=info",
        1 => "info,cairn=debug",
        _ => "debug",
    }
}

fn init_text(verbose: u8) {
    let default = default_filter(verbose);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Reads `@file.json` arguments; passes inline JSON through.
fn json_arg(arg: Option<&str>) -> Result<Option<String>, CliError> {
    match arg {
        Some(a) if a.starts_with('@') => {
            let path = PathBuf::from(&a[1..]);
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|source| CliError::Io { path, source })
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// Parses a duration such as `30s`, `500ms`, `2m` or `1h` (a positive
/// whole number and a unit).
///
/// # Errors
/// A message saying what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let expected = || format!("{text:?}: expected a duration such as 30s, 3s or 500ms (units: ms, s, m, h)");
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let ms_per = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(expected()),
    };
    let ms = n.checked_mul(ms_per).ok_or_else(expected)?;
    if ms == 0 {
        return Err(format!("{text:?}: the duration must be more than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// What a file of a `deploy` command line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeployPart {
    /// A component deployed with every grant given.
    Whole,
    /// The orchestrator part of a two-part project: HTTP grants only.
    Orchestrators,
}

/// Suffix of the activity part of a JavaScript or Python project built in
/// two parts (`scripts/build-{js,python}-guests.sh`).
const ACTIVITY_PART_SUFFIX: &str = ".activities.wasm";

/// The files a `deploy` command deploys, in order: each file given, with the
/// activity part `X.activities.wasm` of a given `X.wasm` that has one beside
/// it deployed first (so an orchestrator never starts before its
/// activities exist); the orchestrator part of such a pair gets only the
/// HTTP grant.
pub(crate) fn deploy_plan(files: Vec<PathBuf>) -> Vec<(PathBuf, DeployPart)> {
    let activity_part = |f: &Path| -> Option<PathBuf> {
        let name = f.file_name()?.to_str()?;
        let stem = name
            .strip_suffix(".wasm")
            .filter(|_| !name.ends_with(ACTIVITY_PART_SUFFIX))?;
        Some(f.with_file_name(format!("{stem}{ACTIVITY_PART_SUFFIX}")))
    };
    let mut plan: Vec<(PathBuf, DeployPart)> = Vec::new();
    let push = |plan: &mut Vec<(PathBuf, DeployPart)>, f: PathBuf, part| {
        if let Some(existing) = plan.iter_mut().find(|(p, _)| *p == f) {
            if part == DeployPart::Orchestrators {
                existing.1 = part;
            }
        } else {
            plan.push((f, part));
        }
    };
    for f in &files {
        match activity_part(f).filter(|a| a.is_file()) {
            Some(activities) => {
                push(&mut plan, activities, DeployPart::Whole);
                push(&mut plan, f.clone(), DeployPart::Orchestrators);
            }
            None => push(&mut plan, f.clone(), DeployPart::Whole),
        }
    }
    plan
}

fn print_json(v: &serde_json::Value) {
    print_out(&format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()));
}

/// Writes to stdout; a closed pipe (`cairn … | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Runs a parsed command line.
///
/// # Errors
/// The first error, as one line with its cause.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Bench(args) = cli.command {
        return crate::bench::run(args).await;
    }
    if let Some(url) = cli.url.clone() {
        return remote::run(&url, cli).await;
    }
    let hub = Hub::open_with(
        &cli.db,
        cli.limits.limits(),
        Some(crate::sandbox::default_cache_dir(&cli.db)),
    )?;
    match cli.command {
        Command::Serve {
            listen,
            no_hot_cache,
            max_hot_instances,
            max_hot_memory_mib,
            trust_forwarded_headers,
            max_body_bytes,
            max_connections,
            max_concurrent_deploys,
            allow_origin,
            otlp_endpoint,
            instance_lease,
        } => {
            if let Some(endpoint) = crate::traces::endpoint_from(otlp_endpoint.as_deref()) {
                crate::traces::init(&endpoint).map_err(|e| CliError::Usage(e.to_string()))?;
                tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
            }
            let api = ApiConfig {
                api_key: cli.api_key.clone(),
                allowed_origins: allow_origin,
                trust_forwarded: trust_forwarded_headers,
                max_body_bytes,
                max_connections,
                max_concurrent_deploys,
                ..ApiConfig::default()
            };
            let engine = EngineConfig {
                hot_cache: !no_hot_cache,
                max_hot_instances: max_hot_instances.max(1),
                max_hot_memory: max_hot_memory_mib.saturating_mul(1 << 20),
                instance_lease_ms: u64::try_from(instance_lease.as_millis()).unwrap_or(u64::MAX / 2),
                ..EngineConfig::default()
            };
            serve(&cli.db, hub, &listen, engine, api).await
        }
        Command::Deploy {
            files,
            allow_env,
            allow_dir,
            allow_http,
        } => {
            let grants =
                crate::sandbox::Grants::from_specs(allow_env, &allow_dir, allow_http).map_err(CliError::Usage)?;
            for (f, part) in deploy_plan(files) {
                let bytes = std::fs::read(&f).map_err(|source| CliError::Io {
                    path: f.clone(),
                    source,
                })?;
                eprintln!("deploying {} ({} bytes)…", f.display(), bytes.len());
                let grants = match part {
                    DeployPart::Orchestrators => crate::sandbox::Grants {
                        http: grants.http.clone(),
                        ..Default::default()
                    },
                    DeployPart::Whole => grants.clone(),
                };
                let report = hub
                    .deploy_with(bytes, grants)
                    .await
                    .map_err(|e| CliError::Usage(format!("{}: {e}", f.display())))?;
                for (name, kind) in &report.functions {
                    print_out(&format!("{name}\t{kind}\t{}\n", report.hash));
                }
            }
            Ok(())
        }
        Command::Start {
            name,
            input,
            id,
            version,
            wait,
        } => {
            let input = json_arg(input.as_deref())?;
            let id = hub
                .start(&name, input.as_deref(), id.as_deref(), version.as_deref())
                .await?;
            print_out(&format!("{id}\n"));
            if let Some(secs) = wait {
                let row = wait_here(&hub, id.as_str(), Duration::from_secs(secs)).await?;
                let opts = StatusOptions::default();
                print_json(&status_json(&row, None, opts));
                if !row.status.is_terminal() {
                    return Err(CliError::Usage(format!(
                        "instance {id} is still {} after {secs} s",
                        row.status
                    )));
                }
            }
            Ok(())
        }
        Command::Status {
            id,
            show_input,
            show_output,
            show_history,
        } => {
            let row = hub
                .store
                .get_instance(&id)
                .await?
                .ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
            let history = if show_history {
                Some(hub.store.get_history(&id).await?)
            } else {
                None
            };
            let opts = StatusOptions {
                show_input,
                show_output,
                show_history,
                show_history_output: show_output,
            };
            print_json(&status_json(&row, history.as_deref(), opts));
            Ok(())
        }
        Command::History { id } => {
            let history = hub.store.get_history(&id).await?;
            print_out(&history_table(&id, &history));
            Ok(())
        }
        Command::RaiseEvent { id, event, data } => {
            let data = json_arg(data.as_deref())?;
            hub.raise_event(&id, &event, data.as_deref()).await?;
            eprintln!("event {event:?} raised to {id}");
            Ok(())
        }
        Command::Terminate { id, reason } => {
            hub.control(&id, Event::ExecutionTerminated { reason }).await?;
            eprintln!("termination of {id} requested");
            Ok(())
        }
        Command::Suspend { id, reason } => {
            hub.control(&id, Event::ExecutionSuspended { reason }).await?;
            eprintln!("suspension of {id} requested");
            Ok(())
        }
        Command::Resume { id, reason } => {
            hub.control(&id, Event::ExecutionResumed { reason }).await?;
            eprintln!("resumption of {id} requested");
            Ok(())
        }
        Command::List {
            created_after,
            created_before,
            runtime_status,
            prefix,
            top,
            continuation_token,
            show_input,
        } => {
            let query = crate::store::InstanceQuery {
                created_from: time_arg("--created-after", created_after.as_deref())?,
                created_to: time_arg("--created-before", created_before.as_deref())?,
                statuses: status_args(&runtime_status)?,
                id_prefix: prefix,
                top: None,
                after: None,
            };
            let page = hub.list_page(query, top, continuation_token.as_deref()).await?;
            let opts = StatusOptions {
                show_input,
                ..StatusOptions::default()
            };
            let items: Vec<serde_json::Value> = page.instances.iter().map(|r| status_json(r, None, opts)).collect();
            print_json(&serde_json::Value::Array(items));
            print_continuation(page.continuation.as_deref());
            Ok(())
        }
        Command::GetHistory { id } => {
            let history = hub.store.get_history(&id).await?;
            let events: Vec<serde_json::Value> = history
                .iter()
                .map(|(ts, e)| crate::status::history_event_json(*ts, e, true))
                .collect();
            print_json(&serde_json::Value::Array(events));
            Ok(())
        }
        Command::Rewind { id, reason } => {
            hub.rewind(&id, reason.as_deref()).await?;
            eprintln!("rewind of {id} requested");
            Ok(())
        }
        Command::Restart { id, same_id } => {
            let new_id = hub.restart(&id, !same_id).await?;
            print_out(&format!("{new_id}\n"));
            Ok(())
        }
        Command::Purge {
            id,
            created_after,
            created_before,
            runtime_status,
        } => {
            if let Some(id) = id {
                hub.purge_instance(&id).await?;
                eprintln!("purged 1 instance");
                return Ok(());
            }
            let filter = crate::admin::PurgeFilter {
                created_from: time_arg("--created-after", created_after.as_deref())?.unwrap_or(0),
                created_to: time_arg("--created-before", created_before.as_deref())?,
                statuses: status_args(&runtime_status)?,
            };
            let n = hub.purge_instances(&filter).await?;
            eprintln!("purged {n} instance(s)");
            Ok(())
        }
        Command::DeleteTaskHub { yes } => {
            if !yes {
                return Err(CliError::Usage(
                    "delete-task-hub deletes every instance and component; pass --yes to confirm".into(),
                ));
            }
            // Not under a running server of a one-host task hub.
            hub.store.claim_host()?;
            let n = hub.delete_task_hub().await?;
            eprintln!(
                "deleted task hub {}: {n} instance(s) and every component",
                hub.store.describe()
            );
            Ok(())
        }
        Command::UpgradeCheck {
            name,
            component,
            apply,
            allow_input_changes,
        } => {
            let bytes = std::fs::read(&component).map_err(|source| CliError::Io {
                path: component.clone(),
                source,
            })?;
            eprintln!("replaying unfinished {name} instances against {}…", component.display());
            let options = crate::upgrade::UpgradeOptions {
                apply,
                allow_input_changes,
            };
            let report = crate::upgrade::check(&hub, &name, bytes, options).await?;
            print_json(&serde_json::to_value(&report).unwrap_or_default());
            Ok(())
        }
        Command::Replay { id, component, until } => {
            let candidate = match &component {
                Some(path) => Some(std::fs::read(path).map_err(|source| CliError::Io {
                    path: path.clone(),
                    source,
                })?),
                None => None,
            };
            if let Some(until) = until {
                let travel = crate::timetravel::replay_until(&hub, &id, until, candidate).await?;
                print_json(&serde_json::to_value(&travel).unwrap_or_default());
                return match travel.error {
                    Some(f) => Err(CliError::Usage(format!(
                        "the replay of {id} up to event {until} failed: {f}"
                    ))),
                    None => Ok(()),
                };
            }
            let report = crate::upgrade::replay_finished(&hub, &id, candidate).await?;
            print_json(&serde_json::to_value(&report).unwrap_or_default());
            if report.is_identical() {
                Ok(())
            } else {
                Err(CliError::ReplayDiffers(id))
            }
        }
        Command::PruneVersions => {
            for hash in hub.store.prune_unused_versions().await? {
                print_out(&format!("pruned {hash}\n"));
            }
            Ok(())
        }
        Command::Locks => {
            print_json(&serde_json::to_value(hub.store.list_locks().await?).unwrap_or_default());
            Ok(())
        }
        Command::Entity { verb } => entity::run(entity::Target::Hub(&hub), verb).await,
        Command::Bench(_) => Ok(()),
    }
}

/// Parses an optional ISO 8601 time argument.
fn time_arg(flag: &str, value: Option<&str>) -> Result<Option<crate::history::Millis>, CliError> {
    value
        .map(|v| {
            crate::clock::parse_iso(v).ok_or_else(|| {
                CliError::Usage(format!(
                    "{flag} {v:?}: expected an ISO 8601 time such as 2024-01-31T12:00:00Z"
                ))
            })
        })
        .transpose()
}

/// Parses `--runtime-status` values.
fn status_args(values: &[String]) -> Result<Vec<crate::store::RuntimeStatus>, CliError> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            crate::store::RuntimeStatus::parse(v).ok_or_else(|| {
                CliError::Usage(format!(
                    "--runtime-status {v:?}: expected Pending, Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated or Suspended"
                ))
            })
        })
        .collect()
}

/// Tells how to fetch the next page of a listing (on stderr: stdout stays JSON).
fn print_continuation(token: Option<&str>) {
    if let Some(t) = token {
        eprintln!("more instances: run again with --continuation-token {t}");
    }
}

/// Waits for an instance. When no server runs on the task hub, runs the
/// engine in this process until the instance finishes (on a shared task
/// hub, beside the servers).
async fn wait_here(hub: &Hub, id: &str, timeout: Duration) -> Result<crate::store::InstanceRow, CliError> {
    match hub.store.claim_host() {
        Ok(hosting) => {
            let config = EngineConfig {
                exclusive: hosting == Hosting::Exclusive,
                ..EngineConfig::default()
            };
            let engine = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
            let running = engine.run();
            let row = engine.wait_for(id, timeout).await;
            running.shutdown(&engine, Duration::from_secs(5)).await;
            Ok(row?)
        }
        Err(StoreError::HostBusy(_)) => Ok(wait_for_instance(&hub.store, None, id, timeout).await?),
        Err(e) => Err(e.into()),
    }
}

async fn serve(db: &Path, hub: Hub, listen: &str, engine: EngineConfig, api: ApiConfig) -> Result<(), CliError> {
    // SQLite: the one-host guard, held by the store until it is dropped.
    let hosting = hub.store.claim_host()?;
    let addr = resolve_listen(listen).await?;
    crate::api::check_listen(addr, &api).map_err(|e| CliError::Usage(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let config = EngineConfig {
        // A lease outlives the longest activity call.
        lease_ms: u64::try_from(hub.sandbox.limits().activity_cpu.as_millis()).unwrap_or(u64::MAX / 2) + 60_000,
        // Many hosts may serve a PostgreSQL task hub: no lease is void at
        // start-up, and each episode runs under an instance lease.
        exclusive: hosting == Hosting::Exclusive,
        ..engine
    };
    let engine: Arc<Engine> = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
    let api = crate::api::Api::new(hub, engine.clone(), api).map_err(|e| CliError::Usage(e.to_string()))?;
    let running = engine.run();
    let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::api::serve(listener, api, async {
        let _ = stopped.await;
    }));
    let described = hub_description(db);
    tracing::info!(db = %described, %addr, "cairn serve: workers running");
    eprintln!(
        "cairn serve: task hub {described} — workers running, management API on http://{addr}{} (Ctrl-C to stop)",
        crate::api::BASE_PATH
    );
    shutdown_signal().await;
    eprintln!("cairn serve: stopping…");
    let _ = stop_api.send(());
    let served = server.await;
    running.shutdown(&engine, Duration::from_secs(8)).await;
    let _ = tokio::task::spawn_blocking(crate::traces::shutdown).await;
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CliError::Usage(e.to_string())),
        Err(e) => Err(CliError::Usage(format!("the management API stopped: {e}"))),
    }
}

/// The task hub's name for people: its path, or a PostgreSQL URL without
/// the password.
fn hub_description(db: &Path) -> String {
    if crate::store::is_postgres(db) {
        crate::store::postgres::describe_address(&db.to_string_lossy())
    } else {
        db.display().to_string()
    }
}

/// `host:port` or `[v6]:port`; a host name (e.g. `localhost`) is resolved.
async fn resolve_listen(listen: &str) -> Result<std::net::SocketAddr, CliError> {
    if let Ok(a) = listen.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(listen)
        .await
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--listen {listen:?}: expected an address such as 127.0.0.1:7071"
            ))
        })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit_and_refuse_zero_and_garbage() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "0s",
            "0ms",
            "30",
            "s",
            "3 sec",
            "-1s",
            "1.5s",
            "99999999999999999999h",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("expected a duration") || e.contains("more than zero"),
                "{bad}: {e}"
            );
        }
    }
}

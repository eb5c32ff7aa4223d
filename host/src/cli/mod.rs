//! The `cairn` command line. Verbs work directly on the task hub file (as
//! `func durable` works on storage); `serve` runs the workers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::engine::{Engine, EngineConfig, wait_for_instance};
use crate::history::Event;
use crate::hub::{Hub, HubError};
use crate::status::{StatusOptions, history_table, status_json};
use crate::store::StoreError;

/// Errors of the command line, one clear line each.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "another `cairn serve` is already running on task hub {0} (lock file held); stop it first or use another --db"
    )]
    HubBusy(PathBuf),
}

/// `cairn` — durable orchestrations of WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Task hub file (SQLite).
    #[arg(long, global = true, env = "CAIRN_DB", default_value = "./cairn.db")]
    pub db: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the workers (and the management API) on the task hub.
    Serve {
        /// Address of the management API.
        #[arg(long, default_value = "127.0.0.1:7071")]
        listen: String,
        /// Disable the hot instance cache (replay at every episode).
        #[arg(long)]
        no_hot_cache: bool,
    },
    /// Deploy components; prints each function's name, kind and version.
    Deploy {
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    /// Measure throughput and latency on a temporary task hub.
    Bench(crate::bench::BenchArgs),
}

/// Sets up logging to stderr (`RUST_LOG` overrides the level).
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,cairn=info",
        1 => "info,cairn=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

/// The exclusive lock a running engine holds on a task hub.
pub struct HubLock {
    _file: File,
}

/// Takes the engine lock of the task hub at `db`.
///
/// # Errors
/// [`CliError::HubBusy`] when another process holds it.
pub fn lock_hub(db: &Path) -> Result<HubLock, CliError> {
    let mut name = db.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".lock");
    let path = db.with_file_name(name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(HubLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(CliError::HubBusy(db.to_owned())),
        Err(std::fs::TryLockError::Error(source)) => Err(CliError::Io { path, source }),
    }
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
    let hub = Hub::open(&cli.db)?;
    match cli.command {
        Command::Serve { listen, no_hot_cache } => serve(&cli.db, hub, &listen, no_hot_cache).await,
        Command::Deploy { files } => {
            for f in files {
                let bytes = std::fs::read(&f).map_err(|source| CliError::Io {
                    path: f.clone(),
                    source,
                })?;
                eprintln!("deploying {} ({} bytes)…", f.display(), bytes.len());
                let report = hub
                    .deploy(bytes)
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
                let row = wait_here(&cli.db, &hub, id.as_str(), Duration::from_secs(secs)).await?;
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
        Command::Bench(_) => Ok(()),
    }
}

/// Waits for an instance. When no server runs on the task hub, runs the
/// engine in this process until the instance finishes.
async fn wait_here(db: &Path, hub: &Hub, id: &str, timeout: Duration) -> Result<crate::store::InstanceRow, CliError> {
    match lock_hub(db) {
        Ok(_lock) => {
            let engine = Engine::new(hub.store.clone(), hub.sandbox.clone(), EngineConfig::default());
            let running = engine.run();
            let row = engine.wait_for(id, timeout).await;
            running.shutdown(&engine, Duration::from_secs(5)).await;
            Ok(row?)
        }
        Err(CliError::HubBusy(_)) => Ok(wait_for_instance(&hub.store, None, id, timeout).await?),
        Err(e) => Err(e),
    }
}

async fn serve(db: &Path, hub: Hub, listen: &str, no_hot_cache: bool) -> Result<(), CliError> {
    let _lock = lock_hub(db)?;
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| CliError::Usage(format!("--listen {listen:?}: {e}")))?;
    let config = EngineConfig {
        hot_cache: !no_hot_cache,
        ..EngineConfig::default()
    };
    let engine: Arc<Engine> = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
    let running = engine.run();
    tracing::info!(db = %db.display(), %addr, "cairn serve: workers running");
    eprintln!(
        "cairn serve: task hub {} — workers running (Ctrl-C to stop)",
        db.display()
    );
    shutdown_signal().await;
    eprintln!("cairn serve: stopping…");
    running.shutdown(&engine, Duration::from_secs(8)).await;
    Ok(())
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

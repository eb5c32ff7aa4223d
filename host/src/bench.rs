//! `cairn bench`: throughput and latency on a temporary task hub, with the
//! engine in-process and durable SQLite (WAL, synchronous=FULL).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::CliError;
use crate::engine::{Engine, EngineConfig};
use crate::hub::Hub;
use crate::store::RuntimeStatus;

/// Arguments of `cairn bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// seq | fanout | latency | all
    #[arg(long, default_value = "all")]
    pub mode: String,
    /// Orchestrations (seq), activities (fanout) or samples (latency).
    #[arg(short, long, default_value_t = 1000)]
    pub n: u32,
    /// Component with HelloCities/SayHello.
    #[arg(long, default_value = "target/guests/rust/hello-cities.wasm")]
    pub hello: PathBuf,
    /// Component with FanOutFanIn/Square.
    #[arg(long, default_value = "target/guests/rust/fan-out-fan-in.wasm")]
    pub fanout: PathBuf,
    /// Disable the hot instance cache.
    #[arg(long)]
    pub no_hot_cache: bool,
    /// Runs per mode; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

async fn setup(args: &BenchArgs) -> Result<(tempdir::TempDir, Hub, Arc<Engine>, crate::engine::Running), CliError> {
    let dir = tempdir::TempDir::new()?;
    let hub = Hub::open(&dir.path().join("bench.db"))?;
    for f in [&args.hello, &args.fanout] {
        let bytes = std::fs::read(f).map_err(|source| CliError::Io {
            path: f.clone(),
            source,
        })?;
        hub.deploy(bytes).await?;
    }
    let config = EngineConfig {
        hot_cache: !args.no_hot_cache,
        ..EngineConfig::default()
    };
    let engine = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
    let running = engine.run();
    Ok((dir, hub, engine, running))
}

async fn wait_all(engine: &Engine, ids: &[String]) -> Result<(), CliError> {
    for id in ids {
        let row = engine.wait_for(id, Duration::from_secs(600)).await?;
        if row.status != RuntimeStatus::Completed {
            return Err(CliError::Usage(format!(
                "bench instance {id} ended {}: {:?}",
                row.status, row.output
            )));
        }
    }
    Ok(())
}

/// Runs the selected benchmarks and prints one line each.
///
/// # Errors
/// Setup failures (components missing: run `make guests`).
pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    let modes: Vec<&str> = match args.mode.as_str() {
        "all" => vec!["seq", "fanout", "latency"],
        m @ ("seq" | "fanout" | "latency") => vec![m],
        other => {
            return Err(CliError::Usage(format!(
                "unknown bench mode {other:?}: use seq, fanout, latency or all"
            )));
        }
    };
    let n = args.n.max(1);
    let runs = args.runs.max(1);
    let hot = if args.no_hot_cache {
        "forced replay"
    } else {
        "hot cache"
    };
    eprintln!("cairn bench: {runs} run(s) per mode, N = {n}, durable SQLite (WAL, synchronous=FULL), {hot}");
    for mode in modes {
        let mut values = Vec::with_capacity(runs as usize);
        for run in 1..=runs {
            let (_dir, hub, engine, running) = setup(&args).await?;
            let (value, line) = measure(mode, n, &hub, &engine).await?;
            println!("{mode:<8} run {run}/{runs}: {line}");
            values.push(value);
            running.shutdown(&engine, Duration::from_secs(5)).await;
        }
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        let unit = if mode == "latency" {
            "ms (median latency)"
        } else if mode == "seq" {
            "orchestrations/s"
        } else {
            "activities/s"
        };
        println!("{mode:<8} MEDIAN of {runs}: {median:.2} {unit}");
    }
    Ok(())
}

/// One run of a mode: (headline value, description).
async fn measure(mode: &str, n: u32, hub: &Hub, engine: &Engine) -> Result<(f64, String), CliError> {
    Ok(match mode {
        "seq" => {
            let t = Instant::now();
            // CLIENTS concurrent clients, each starting its share one after
            // another (their starts share group commits with the episodes).
            const CLIENTS: u32 = 16;
            let mut starts = tokio::task::JoinSet::new();
            for c in 0..CLIENTS {
                let hub = hub.clone();
                let share = n / CLIENTS + u32::from(c < n % CLIENTS);
                starts.spawn(async move {
                    let mut ids = Vec::with_capacity(share as usize);
                    for _ in 0..share {
                        ids.push(hub.start("HelloCities", None, None, None).await?.to_string());
                    }
                    Ok::<_, crate::hub::HubError>(ids)
                });
            }
            let mut ids = Vec::with_capacity(n as usize);
            while let Some(r) = starts.join_next().await {
                ids.extend(r.map_err(|e| CliError::Usage(format!("start task failed: {e}")))??);
            }
            wait_all(engine, &ids).await?;
            let s = t.elapsed().as_secs_f64();
            let rate = f64::from(n) / s;
            (
                rate,
                format!(
                    "{n} HelloCities orchestrations (3 sequential activities each) in {s:.3} s = {rate:.0} orchestrations/s"
                ),
            )
        }
        "fanout" => {
            let t = Instant::now();
            let input = format!("{{\"count\":{n}}}");
            let id = hub.start("FanOutFanIn", Some(&input), None, None).await?.to_string();
            wait_all(engine, &[id]).await?;
            let s = t.elapsed().as_secs_f64();
            let rate = f64::from(n) / s;
            (
                rate,
                format!("1 FanOutFanIn over {n} activities in {s:.3} s = {rate:.0} activities/s"),
            )
        }
        _ => {
            let samples = n.min(500);
            let mut lat = Vec::with_capacity(samples as usize);
            for _ in 0..samples {
                let t = Instant::now();
                let id = hub.start("HelloCities", None, None, None).await?.to_string();
                wait_all(engine, &[id]).await?;
                lat.push(t.elapsed());
            }
            lat.sort();
            let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
            (
                pct(0.5),
                format!(
                    "{samples} HelloCities start→completed, one at a time: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
                    pct(0.5),
                    pct(0.9),
                    pct(0.99)
                ),
            )
        }
    })
}

mod tempdir {
    //! A directory removed on drop.
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> Result<Self, super::CliError> {
            let p = std::env::temp_dir().join(format!("cairn-bench-{}", crate::ids::random_hex()));
            std::fs::create_dir_all(&p).map_err(|source| super::CliError::Io {
                path: p.clone(),
                source,
            })?;
            Ok(Self(p))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

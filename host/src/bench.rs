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
    /// seq | fanout | latency | all, or an entity mode: signals (N signals
    /// to one Counter entity) | entities (N signals over 1,000 Counters),
    /// replay (a cold replay of a finished ~1,000-event history, N times),
    /// or parked (N orchestrations parked hot waiting for events: host
    /// memory and memory mappings per parked instance, then every event
    /// raised and each instance checked to complete without a replay).
    #[arg(long, default_value = "all")]
    pub mode: String,
    /// Orchestrations (seq), activities (fanout), samples (latency) or
    /// signals (signals, entities).
    #[arg(short, long, default_value_t = 1000)]
    pub n: u32,
    /// Component with HelloCities/SayHello (default: the Rust example built
    /// by `make guests`, found from the checkout or the binary's location).
    #[arg(long)]
    pub hello: Option<PathBuf>,
    /// Component with FanOutFanIn/Square (default: as --hello).
    #[arg(long)]
    pub fanout: Option<PathBuf>,
    /// Component with the entity Counter (default: the Rust `entities` example).
    #[arg(long)]
    pub entities: Option<PathBuf>,
    /// Component with the orchestrator `TypedEvents` (parked mode; default:
    /// the Rust `features` test guest).
    #[arg(long)]
    pub parked: Option<PathBuf>,
    /// Disable the hot instance cache (every episode replays).
    #[arg(long)]
    pub no_hot_cache: bool,
    /// Runs per mode; the median is reported (parked: always 1, see `run`).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// seq: start all N at the same instant (the default; the workload
    /// other engines are measured on).
    #[arg(long, conflicts_with = "clients")]
    pub burst: bool,
    /// seq: K closed-loop clients instead of a burst, each starting its
    /// share one after another.
    #[arg(long, value_name = "K")]
    pub clients: Option<u32>,
    /// inproc: call the engine in this process; http: drive a `cairn serve`
    /// API (started here on a loopback port) over the Durable Functions
    /// routes, one connection per in-flight start, each waiting for
    /// completion with `?timeout=`.
    #[arg(long, default_value = "inproc", value_parser = ["inproc", "http"])]
    pub via: String,
    /// Task hub to measure on: a `postgres://` address (emptied before
    /// each run: use a database of its own). Default: a fresh temporary
    /// SQLite file per run.
    #[arg(long = "bench-db", value_name = "ADDRESS")]
    pub bench_db: Option<String>,
    /// Drive running `cairn serve` hosts at these base URLs instead of an
    /// engine started here (repeatable: starts go round robin over them,
    /// e.g. two hosts on one PostgreSQL task hub). Needs `--via http` and
    /// `--bench-db` naming the hosts' task hub (emptied and deployed to
    /// before each run).
    #[arg(long = "host-url", value_name = "URL", requires = "bench_db")]
    pub urls: Vec<String>,
}

/// Where `make guests` puts the Rust example `name`: under the current
/// checkout, or the checkout the binary was built in.
fn default_guest(name: &str) -> PathBuf {
    let rel = PathBuf::from("target/guests/rust").join(format!("{name}.wasm"));
    let mut candidates = vec![rel.clone()];
    if let Ok(exe) = std::env::current_exe() {
        // <checkout>/target/release/cairn, or a CARGO_TARGET_DIR elsewhere:
        // walk up looking for target/guests.
        for dir in exe.ancestors().skip(1) {
            candidates.push(dir.join(&rel));
        }
    }
    if let Some(manifest) = option_env!("CARGO_MANIFEST_DIR") {
        candidates.push(PathBuf::from(manifest).join("..").join(&rel));
    }
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or(rel)
}

/// The guest language of a component path (`target/guests/<lang>/...`).
fn lang_of(path: &std::path::Path) -> &'static str {
    let text = path.to_string_lossy();
    if text.contains("/js/") {
        "js"
    } else if text.contains("/python/") {
        "python"
    } else {
        "rust"
    }
}

struct Setup {
    _dir: tempdir::TempDir,
    hub: Hub,
    /// The engine of this process (none when driving `--host-url` hosts).
    engine: Option<(Arc<Engine>, crate::engine::Running)>,
    /// The API server for `--via http`: its base URL and stop signal.
    http: Option<(String, tokio::sync::oneshot::Sender<()>)>,
}

async fn setup(args: &BenchArgs, components: &[&PathBuf]) -> Result<Setup, CliError> {
    let dir = tempdir::TempDir::new()?;
    let hub = match &args.bench_db {
        Some(address) => {
            let hub = Hub::open(std::path::Path::new(address))?;
            hub.store.delete_all().await?;
            hub
        }
        None => Hub::open(&dir.path().join("bench.db"))?,
    };
    for f in components {
        let f = *f;
        let bytes = std::fs::read(f).map_err(|source| CliError::Io {
            path: f.clone(),
            source,
        })?;
        hub.deploy(bytes).await?;
    }
    if !args.urls.is_empty() {
        return Ok(Setup {
            _dir: dir,
            hub,
            engine: None,
            http: None,
        });
    }
    let mut config = EngineConfig {
        hot_cache: !args.no_hot_cache,
        exclusive: args.bench_db.is_none(),
        ..EngineConfig::default()
    };
    if args.mode == "parked" {
        // Room for every instance, within the issue's budget of 8 GiB.
        config.max_hot_instances = config.max_hot_instances.max(args.n as usize);
        config.max_hot_memory = PARKED_BUDGET;
    }
    let engine = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
    let running = engine.run();
    let http = if args.via == "http" {
        let api = crate::api::Api::new(
            hub.clone(),
            engine.clone(),
            crate::api::ApiConfig {
                max_connections: 4096,
                ..crate::api::ApiConfig::default()
            },
        )
        .map_err(|e| CliError::Usage(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| CliError::Io {
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| CliError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(crate::api::serve(listener, api, async move {
            let _ = stopped.await;
        }));
        Some((format!("http://localhost:{}", addr.port()), stop))
    } else {
        None
    };
    Ok(Setup {
        _dir: dir,
        hub,
        engine: Some((engine, running)),
        http,
    })
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

/// Starts `name` with `input` and waits for its completion: in-process, or
/// over HTTP with one connection and `?timeout=`.
async fn start_and_wait(target: &Target, name: &str, input: &str) -> Result<(), CliError> {
    match target {
        Target::InProc(hub, engine) => {
            let id = hub.start(name, Some(input), None, None).await?.to_string();
            wait_all(engine, &[id]).await
        }
        Target::Http(clients, next) => {
            let client = &clients[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % clients.len()];
            let path = format!("{}/orchestrators/{name}?timeout=600", crate::api::BASE_PATH);
            let reply = client
                .send(
                    hyper::Method::POST,
                    &path,
                    &[("content-type", "application/json")],
                    input.as_bytes().to_vec(),
                )
                .await
                .map_err(|e| CliError::Usage(format!("bench request failed: {e}")))?;
            if reply.status != hyper::StatusCode::OK {
                return Err(CliError::Usage(format!(
                    "bench start of {name} answered {}: {}",
                    reply.status,
                    reply.text()
                )));
            }
            Ok(())
        }
    }
}

#[derive(Clone)]
enum Target {
    InProc(Hub, Arc<Engine>),
    /// Hosts' APIs, used round robin.
    Http(
        Arc<Vec<crate::api::client::Client>>,
        Arc<std::sync::atomic::AtomicUsize>,
    ),
}

/// One run's numbers.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    secs: f64,
    orch_per_sec: Option<f64>,
    act_per_sec: Option<f64>,
    /// Entity operations applied per second.
    ops_per_sec: Option<f64>,
    median_ms: Option<f64>,
    p90_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Parked mode: what one more parked instance costs, and how many
    /// stayed hot and were replayed.
    parked: Option<Parked>,
}

impl Sample {
    /// The latency percentiles (median, p90, p99, in ms) of `times`, which
    /// took `secs` in all; returns them too, for the summary line.
    fn latencies(secs: f64, times: &mut [Duration]) -> (Self, [f64; 3]) {
        times.sort();
        let pct = |p: f64| {
            times
                .get(((times.len() as f64 - 1.0) * p) as usize)
                .map_or(0.0, |t| t.as_secs_f64() * 1000.0)
        };
        let p = [pct(0.5), pct(0.9), pct(0.99)];
        (
            Self {
                secs,
                median_ms: Some(p[0]),
                p90_ms: Some(p[1]),
                p99_ms: Some(p[2]),
                ..Self::default()
            },
            p,
        )
    }
}

/// What parked instances cost (one run of `--mode parked`).
#[derive(Debug, Clone, Copy, Default)]
struct Parked {
    /// Resident memory per parked instance, KiB.
    kib_per_instance: f64,
    /// Page tables per parked instance, KiB (not part of RSS).
    pte_kib_per_instance: f64,
    /// Memory mappings of the process with every instance parked.
    maps: u64,
    /// Memory mappings per parked instance.
    maps_per_instance: f64,
    /// Resident memory of the process with every instance parked, MiB.
    rss_mib: f64,
    /// Instances hot when all had parked.
    hot: u64,
    /// Episodes that replayed after the events were raised (0: all hot).
    replays: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the selected benchmarks: one line per run, the median per mode, and
/// one machine-readable `RESULT` line per mode.
///
/// # Errors
/// Setup failures (components missing: run `make guests`).
pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    if !args.urls.is_empty() && args.via != "http" {
        return Err(CliError::Usage(
            "--host-url drives hosts over HTTP: add --via http".into(),
        ));
    }
    let modes: Vec<&str> = match args.mode.as_str() {
        "all" => vec!["seq", "fanout", "latency"],
        m @ ("seq" | "fanout" | "latency" | "signals" | "entities" | "replay" | "parked") => vec![m],
        other => {
            return Err(CliError::Usage(format!(
                "unknown bench mode {other:?}: use seq, fanout, latency, all, signals, entities, replay or parked"
            )));
        }
    };
    let entities = args.entities.clone().unwrap_or_else(|| default_guest("entities"));
    let hello = args.hello.clone().unwrap_or_else(|| default_guest("hello-cities"));
    let fanout = args.fanout.clone().unwrap_or_else(|| default_guest("fan-out-fan-in"));
    let parked = args.parked.clone().unwrap_or_else(|| default_guest("features"));
    let n = args.n.max(1);
    // A parked run measures what the process's memory grows by: memory
    // freed by an earlier run in the same process would hide what the next
    // one costs, so parked mode runs once per process.
    let runs = if args.mode == "parked" { 1 } else { args.runs.max(1) };
    let hot = if args.no_hot_cache { "off" } else { "on" };
    let seq_shape = match args.clients {
        Some(k) => format!("{} closed-loop clients", k.max(1)),
        None => "burst: all starts at once".to_owned(),
    };
    let backend = match &args.bench_db {
        Some(_) => "PostgreSQL (synchronous_commit=on)",
        None => "durable SQLite (WAL, synchronous=FULL)",
    };
    eprintln!(
        "cairn bench: {runs} run(s) per mode, N = {n}, via {}, {backend}, hot cache {hot}, seq = {seq_shape}, components {} and {}",
        args.via,
        hello.display(),
        fanout.display()
    );
    for mode in modes {
        let mut samples = Vec::with_capacity(runs as usize);
        for run in 1..=runs {
            let components: Vec<&PathBuf> = if mode == "replay" {
                vec![&fanout]
            } else if mode == "parked" {
                vec![&parked]
            } else if matches!(mode, "signals" | "entities") {
                vec![&entities]
            } else {
                vec![&hello, &fanout]
            };
            let setup = setup(&args, &components).await?;
            let urls: Vec<String> = match &setup.http {
                Some((url, _)) => vec![url.clone()],
                None => args.urls.clone(),
            };
            let target = match &setup.engine {
                Some((engine, _)) if urls.is_empty() => Target::InProc(setup.hub.clone(), engine.clone()),
                _ => {
                    let clients = urls
                        .iter()
                        .map(|u| crate::api::client::Client::new(u, None).map_err(|e| CliError::Usage(e.to_string())))
                        .collect::<Result<Vec<_>, _>>()?;
                    Target::Http(Arc::new(clients), Arc::default())
                }
            };
            let (sample, line) = if mode == "replay" {
                measure_replay(n, &setup.hub, &target).await?
            } else if mode == "parked" {
                measure_parked(n, &setup.hub, &target).await?
            } else if matches!(mode, "signals" | "entities") {
                let spread = if mode == "signals" { 1 } else { 1000 };
                measure_signals(n, spread, &setup.hub, &target).await?
            } else {
                measure(mode, n, args.clients, &target).await?
            };
            println!("{mode:<8} run {run}/{runs}: {line}");
            samples.push(sample);
            drop(target);
            if let Some((_, stop)) = setup.http {
                let _ = stop.send(());
            }
            if let Some((engine, running)) = setup.engine {
                running.shutdown(&engine, Duration::from_secs(5)).await;
            }
        }
        let pick = |f: fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = samples.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| median(v))
        };
        let secs = median(samples.iter().map(|s| s.secs).collect());
        let mut result = format!("RESULT peer=cairn mode={mode} n={n} secs={secs:.3}");
        for (key, value) in [
            ("orch_per_sec", pick(|s| s.orch_per_sec)),
            ("act_per_sec", pick(|s| s.act_per_sec)),
            ("ops_per_sec", pick(|s| s.ops_per_sec)),
            ("median_ms", pick(|s| s.median_ms)),
            ("p90_ms", pick(|s| s.p90_ms)),
            ("p99_ms", pick(|s| s.p99_ms)),
        ] {
            if let Some(v) = value {
                result.push_str(&format!(" {key}={v:.2}"));
            }
        }
        if mode == "parked" {
            let p = |f: fn(&Parked) -> f64| median(samples.iter().filter_map(|s| s.parked.as_ref().map(f)).collect());
            result.push_str(&format!(
                " kib_per_instance={:.1} pte_kib_per_instance={:.1} maps={:.0} maps_per_instance={:.3} rss_mib={:.0} hot_instances={:.0} replays={:.0}",
                p(|x| x.kib_per_instance),
                p(|x| x.pte_kib_per_instance),
                p(|x| x.maps as f64),
                p(|x| x.maps_per_instance),
                p(|x| x.rss_mib),
                p(|x| x.hot as f64),
                p(|x| x.replays as f64),
            ));
        }
        let lang = lang_of(match mode {
            "parked" => &parked,
            "fanout" | "replay" => &fanout,
            "signals" | "entities" => &entities,
            _ => &hello,
        });
        let store = if args.bench_db.is_some() { "postgres" } else { "sqlite" };
        result.push_str(&format!(" via={} hot={hot} lang={lang} store={store}", args.via));
        if !args.urls.is_empty() {
            result.push_str(&format!(" hosts={}", args.urls.len()));
        }
        if mode == "seq" {
            match args.clients {
                Some(k) => result.push_str(&format!(" clients={}", k.max(1))),
                None => result.push_str(" burst=1"),
            }
        }
        println!("{mode:<8} MEDIAN of {runs}");
        println!("{result}");
    }
    Ok(())
}

/// Runs one FanOutFanIn over 499 activities (a history of about 1,000
/// events), then replays its finished history from the start `n` times
/// (at most 200), as a cold start would: instantiate the component and
/// re-execute the orchestrator against every recorded event. In-process only.
async fn measure_replay(n: u32, hub: &Hub, target: &Target) -> Result<(Sample, String), CliError> {
    let Target::InProc(_, engine) = target else {
        return Err(CliError::Usage("--mode replay runs in-process: drop --via http".into()));
    };
    let id = hub
        .start("FanOutFanIn", Some("{\"count\":499}"), Some("bench-replay"), None)
        .await?
        .to_string();
    wait_all(engine, std::slice::from_ref(&id)).await?;
    let events = hub.store.get_history(&id).await?.len();
    let samples = n.clamp(1, 200);
    let mut times = Vec::with_capacity(samples as usize);
    let t0 = Instant::now();
    for _ in 0..samples {
        let t = Instant::now();
        let report = crate::upgrade::replay_finished(hub, &id, None).await?;
        times.push(t.elapsed());
        if !report.is_identical() {
            return Err(CliError::Usage(format!("the replay diverged: {:?}", report.verdict)));
        }
    }
    let (sample, [median, p90, _]) = Sample::latencies(t0.elapsed().as_secs_f64(), &mut times);
    Ok((
        sample,
        format!("{samples} cold replays of a {events}-event history: median {median:.2} ms, p90 {p90:.2} ms"),
    ))
}

/// The hot cache's memory budget in parked mode: the issue's bound for
/// 100,000 parked instances.
const PARKED_BUDGET: usize = 8 << 30;

/// The process's resident memory and page tables (bytes) and its number
/// of memory mappings, from `/proc/self`.
fn process_memory() -> Result<(u64, u64, u64), CliError> {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|source| CliError::Io {
            path: PathBuf::from(path),
            source,
        })
    };
    let status = read("/proc/self/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    let maps = read("/proc/self/maps")?.lines().count() as u64;
    Ok((field("VmRSS:"), field("VmPTE:"), maps))
}

/// Starts `count` `TypedEvents` orchestrations (256 starts in flight) and
/// returns their ids.
async fn start_parked(hub: &Hub, count: u32) -> Result<Vec<String>, CliError> {
    let mut all = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for _ in 0..count {
        let (hub, gate) = (hub.clone(), gate.clone());
        all.spawn(async move {
            let _slot = gate.acquire_owned().await;
            Ok::<_, CliError>(hub.start("TypedEvents", None, None, None).await?.to_string())
        });
    }
    let mut ids = Vec::with_capacity(count as usize);
    while let Some(r) = all.join_next().await {
        ids.push(r.map_err(|e| CliError::Usage(format!("bench task failed: {e}")))??);
    }
    Ok(ids)
}

/// Waits until `want` instances are hot, or until their number stops
/// changing for 10 s after every started instance ran an episode (the
/// cache holds fewer); returns how many are hot.
async fn wait_parked(engine: &Engine, want: usize, episodes_before: u64) -> Result<usize, CliError> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (mut last, mut since) = (usize::MAX, Instant::now());
    loop {
        let hot = engine.hot_count();
        if hot >= want {
            return Ok(hot);
        }
        if hot != last {
            (last, since) = (hot, Instant::now());
        }
        let ran = engine.metrics.episodes.load(std::sync::atomic::Ordering::Relaxed) - episodes_before;
        if ran >= want as u64 && since.elapsed() > Duration::from_secs(10) {
            return Ok(hot);
        }
        if Instant::now() > deadline {
            return Err(CliError::Usage(format!(
                "only {hot} of {want} instances parked in 1,800 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Parks `n` `TypedEvents` orchestrations, each waiting for its first
/// event, and measures what the process holds per hot parked instance:
/// resident memory, page tables and memory mappings, from the level with
/// the first tenth parked (at most 1,000: the component's code and the
/// engine's fixed costs are in that level) to the level with all parked.
/// Then raises the four events of every instance and checks that each
/// completes, counting the episodes that had to replay (0: all hot).
async fn measure_parked(n: u32, hub: &Hub, target: &Target) -> Result<(Sample, String), CliError> {
    use std::sync::atomic::Ordering;
    let Target::InProc(_, engine) = target else {
        return Err(CliError::Usage("--mode parked runs in-process: drop --via http".into()));
    };
    let t = Instant::now();
    let warm = (n / 10).clamp(1, 1000);
    let mut ids = start_parked(hub, warm).await?;
    let hot0 = wait_parked(engine, warm as usize, 0).await?;
    let (rss0, pte0, maps0) = process_memory()?;
    let episodes = engine.metrics.episodes.load(Ordering::Relaxed);
    ids.extend(start_parked(hub, n - warm).await?);
    let hot1 = wait_parked(engine, n as usize, episodes.saturating_sub(u64::from(warm))).await?;
    let (rss1, pte1, maps1) = process_memory()?;
    let parked_secs = t.elapsed().as_secs_f64();
    // What one more hot instance costs (the cache may hold fewer than n).
    let added = hot1.saturating_sub(hot0).max(1) as f64;
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / added;
    let kib = per(rss1, rss0) / 1024.0;
    let pte_kib = per(pte1, pte0) / 1024.0;
    let maps_each = per(maps1, maps0);
    // Every event, then every completion; a replay means one was not hot.
    let replays0 = engine.metrics.replays.load(Ordering::Relaxed);
    let mut all = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for id in &ids {
        let (hub, gate, id) = (hub.clone(), gate.clone(), id.clone());
        all.spawn(async move {
            let _slot = gate.acquire_owned().await;
            for (name, data) in [
                ("Flag", "true"),
                ("Amount", "1"),
                ("Order", r#"{"sku":"s"}"#),
                ("Note", r#""n""#),
            ] {
                hub.raise_event(&id, name, Some(data)).await?;
            }
            Ok::<_, CliError>(())
        });
    }
    while let Some(r) = all.join_next().await {
        r.map_err(|e| CliError::Usage(format!("bench task failed: {e}")))??;
    }
    wait_all(engine, &ids).await?;
    let replays = engine.metrics.replays.load(Ordering::Relaxed) - replays0;
    let secs = t.elapsed().as_secs_f64();
    let parked = Parked {
        kib_per_instance: kib,
        pte_kib_per_instance: pte_kib,
        maps: maps1,
        maps_per_instance: maps_each,
        rss_mib: rss1 as f64 / f64::from(1 << 20),
        hot: hot1 as u64,
        replays,
    };
    Ok((
        Sample {
            secs,
            parked: Some(parked),
            ..Sample::default()
        },
        format!(
            "{n} TypedEvents parked in {parked_secs:.1} s, {hot1} hot: {kib:.1} KiB resident and {maps_each:.3} mappings per hot instance \
             ({hot0} → {hot1} hot: RSS {} → {} MiB, page tables +{pte_kib:.1} KiB each, mappings {maps0} → {maps1}); \
             all events raised and every instance completed in {secs:.1} s with {replays} replays",
            rss0 >> 20,
            rss1 >> 20
        ),
    ))
}

/// Signals `n` `add 1` operations to `spread` Counter entities (all sent
/// at once: in-process, or over HTTP with up to 256 requests in flight)
/// and measures until every one is applied (the counts sum to `n`).
async fn measure_signals(n: u32, spread: u32, hub: &Hub, target: &Target) -> Result<(Sample, String), CliError> {
    let t = Instant::now();
    let mut all = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for i in 0..n {
        let (target, gate) = (target.clone(), gate.clone());
        let key = format!("k{}", i % spread);
        all.spawn(async move {
            let _slot = gate.acquire_owned().await;
            match &target {
                Target::InProc(hub, _) => {
                    let id = crate::ids::EntityId::new("Counter", &key).map_err(crate::hub::HubError::from)?;
                    hub.signal_entity(&id, "add", Some("1"), None).await?;
                }
                Target::Http(clients, next) => {
                    let client = &clients[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % clients.len()];
                    let path = format!("{}/entities/Counter/{key}?op=add", crate::api::BASE_PATH);
                    let reply = client
                        .send(
                            hyper::Method::POST,
                            &path,
                            &[("content-type", "application/json")],
                            b"1".to_vec(),
                        )
                        .await
                        .map_err(|e| CliError::Usage(format!("bench request failed: {e}")))?;
                    if reply.status != hyper::StatusCode::ACCEPTED {
                        return Err(CliError::Usage(format!(
                            "bench signal answered {}: {}",
                            reply.status,
                            reply.text()
                        )));
                    }
                }
            }
            Ok::<_, CliError>(())
        });
    }
    while let Some(r) = all.join_next().await {
        r.map_err(|e| CliError::Usage(format!("bench task failed: {e}")))??;
    }
    let sent = t.elapsed().as_secs_f64();
    // Applied when the counts sum to n.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut sum: u64 = 0;
        let mut after: Option<String> = None;
        loop {
            let page = hub
                .list_entities(
                    crate::entities::EntityFilter {
                        name: Some("Counter".into()),
                        ..Default::default()
                    },
                    None,
                    after.as_deref(),
                )
                .await?;
            sum += page
                .entities
                .iter()
                .filter_map(|e| e.state.as_deref().and_then(|s| s.parse::<u64>().ok()))
                .sum::<u64>();
            match page.continuation {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        if sum >= u64::from(n) {
            break;
        }
        if Instant::now() > deadline {
            return Err(CliError::Usage(format!(
                "only {sum} of {n} signals were applied in 600 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let s = t.elapsed().as_secs_f64();
    let rate = f64::from(n) / s;
    let what = if spread == 1 {
        "one Counter".to_owned()
    } else {
        format!("{spread} Counters")
    };
    Ok((
        Sample {
            secs: s,
            ops_per_sec: Some(rate),
            ..Sample::default()
        },
        format!("{n} signals to {what} (all sent in {sent:.3} s) applied in {s:.3} s = {rate:.0} operations/s"),
    ))
}

/// One run of a mode.
async fn measure(mode: &str, n: u32, clients: Option<u32>, target: &Target) -> Result<(Sample, String), CliError> {
    Ok(match mode {
        "seq" => {
            // Burst: one task per instance, all released at once. Closed
            // loop: K tasks, each starting its share one after another.
            let tasks = clients.map_or(n, |k| k.clamp(1, n));
            let share_of = |c: u32| n / tasks + u32::from(c < n % tasks);
            let gate = Arc::new(tokio::sync::Barrier::new(tasks as usize + 1));
            let mut all = tokio::task::JoinSet::new();
            for c in 0..tasks {
                let share = share_of(c);
                let (gate, target) = (gate.clone(), target.clone());
                all.spawn(async move {
                    gate.wait().await;
                    for _ in 0..share {
                        start_and_wait(&target, "HelloCities", "null").await?;
                    }
                    Ok::<_, CliError>(())
                });
            }
            // Every task is ready: release them together.
            let t = Instant::now();
            gate.wait().await;
            while let Some(r) = all.join_next().await {
                r.map_err(|e| CliError::Usage(format!("bench task failed: {e}")))??;
            }
            let s = t.elapsed().as_secs_f64();
            let rate = f64::from(n) / s;
            let shape = match clients {
                Some(k) => format!("{k} closed-loop clients"),
                None => "started at once".to_owned(),
            };
            (
                Sample {
                    secs: s,
                    orch_per_sec: Some(rate),
                    act_per_sec: Some(rate * 3.0),
                    ..Sample::default()
                },
                format!(
                    "{n} HelloCities orchestrations (3 sequential activities each, {shape}) in {s:.3} s = {rate:.0} orchestrations/s"
                ),
            )
        }
        "fanout" => {
            let t = Instant::now();
            let input = format!("{{\"count\":{n}}}");
            start_and_wait(target, "FanOutFanIn", &input).await?;
            let s = t.elapsed().as_secs_f64();
            let rate = f64::from(n) / s;
            (
                Sample {
                    secs: s,
                    act_per_sec: Some(rate),
                    ..Sample::default()
                },
                format!("1 FanOutFanIn over {n} activities in {s:.3} s = {rate:.0} activities/s"),
            )
        }
        _ => {
            let samples = n.min(500);
            let mut lat = Vec::with_capacity(samples as usize);
            let t0 = Instant::now();
            for _ in 0..samples {
                let t = Instant::now();
                start_and_wait(target, "HelloCities", "null").await?;
                lat.push(t.elapsed());
            }
            let (sample, [median, p90, p99]) = Sample::latencies(t0.elapsed().as_secs_f64(), &mut lat);
            (
                sample,
                format!(
                    "{samples} HelloCities start→completed, one at a time: median {median:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms"
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

//! Shared fixtures: real guest components, a real engine on a real SQLite
//! task hub in a temporary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pg;
pub mod serve;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn::engine::{Engine, EngineConfig, Running};
use cairn::history::{Event, Millis};
use cairn::hub::Hub;
use cairn::sandbox::Limits;
use cairn::store::{InstanceRow, RuntimeStatus};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Bytes of a built Rust guest component (`make guests` builds them).
pub fn guest(name: &str) -> Vec<u8> {
    guest_in("rust", name)
}

/// Bytes of the guest component `name` written in `lang` (rust, python, js).
pub fn guest_in(lang: &str, name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("target/guests")
        .join(lang)
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make guests` first", path.display()))
}

/// Appends a custom section (id 0, LEB128 size, name, bytes) to a
/// component: component-model custom sections may appear anywhere, so the
/// result is a valid component of the same functions. Returns the bytes up
/// to the padding; `padding` zero bytes follow them.
pub fn with_custom_section(component: &[u8], name: &str, padding: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut name_part = Vec::new();
    leb(name.len(), &mut name_part);
    name_part.extend_from_slice(name.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb(name_part.len() + padding, &mut out);
    out.extend_from_slice(&name_part);
    out
}

/// `bytes` with a custom section appended: another build of the same
/// component (a new content hash, the same functions).
pub fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    with_custom_section(bytes, &format!("cairn-test-{tag}"), 0)
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("cairn-test-{tag}-{}", cairn::ids::random_hex()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiled components are shared between tests (keyed by content hash).
pub fn compiled_cache() -> PathBuf {
    std::env::temp_dir().join("cairn-test-compiled")
}

pub struct TestHub {
    pub dir: TempDir,
    pub hub: Hub,
    pub engine: Arc<Engine>,
    pub running: Option<Running>,
    pub hot: bool,
}

impl TestHub {
    pub fn db(&self) -> PathBuf {
        self.dir.0.join("hub.db")
    }

    /// A hub with an engine running; `hot = false` forces replay at every episode.
    pub async fn new(hot: bool) -> Self {
        Self::with(hot, EngineConfig::default(), true).await
    }

    pub async fn with(hot: bool, config: EngineConfig, run: bool) -> Self {
        Self::with_limits(hot, config, Limits::default(), run).await
    }

    pub async fn with_limits(hot: bool, config: EngineConfig, limits: Limits, run: bool) -> Self {
        let dir = TempDir::new(if hot { "hot" } else { "replay" });
        let hub = Hub::open_with(&dir.0.join("hub.db"), limits, Some(compiled_cache())).unwrap();
        let config = EngineConfig {
            hot_cache: hot,
            poll_interval: Duration::from_millis(10),
            ..config
        };
        let engine = Engine::new(hub.store.clone(), hub.sandbox.clone(), config);
        let running = run.then(|| engine.run());
        Self {
            dir,
            hub,
            engine,
            running,
            hot,
        }
    }

    pub async fn deploy(&self, name: &str) -> String {
        self.deploy_in("rust", name).await
    }

    pub async fn deploy_in(&self, lang: &str, name: &str) -> String {
        self.hub.deploy(guest_in(lang, name)).await.unwrap().hash
    }

    pub async fn start(&self, name: &str, input: &str, id: &str) -> String {
        self.hub
            .start(name, Some(input), Some(id), None)
            .await
            .unwrap()
            .to_string()
    }

    pub async fn wait(&self, id: &str) -> InstanceRow {
        let row = self.engine.wait_for(id, Duration::from_secs(60)).await.unwrap();
        assert!(row.status.is_terminal(), "instance {id} did not finish: {row:?}");
        row
    }

    /// Starts `name` and waits for it to finish.
    pub async fn run(&self, name: &str, input: &str, id: &str) -> InstanceRow {
        let id = self.start(name, input, id).await;
        self.wait(&id).await
    }

    pub async fn history(&self, id: &str) -> Vec<(Millis, Event)> {
        self.hub.store.get_history(id).await.unwrap()
    }

    pub async fn types(&self, id: &str) -> Vec<&'static str> {
        self.history(id).await.iter().map(|(_, e)| e.type_name()).collect()
    }

    /// Stops the engine, keeping the task hub.
    pub async fn halt(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(&self.engine, Duration::from_secs(5)).await;
        }
    }

    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// Waits until the instance shows custom status `want` (JSON text).
    pub async fn wait_custom_status(&self, id: &str, want: &str) {
        for _ in 0..500 {
            let row = self.hub.store.get_instance(id).await.unwrap().unwrap();
            if row.custom_status.as_deref() == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never showed custom status {want}");
    }
}

/// History without timestamps and per-run ids, to compare two runs.
pub fn normalized(history: &[(Millis, Event)]) -> Vec<String> {
    history
        .iter()
        .map(|(_, e)| {
            let mut v = serde_json::to_value(e).unwrap();
            if let Some(m) = v.as_object_mut() {
                m.remove("ExecutionId");
                m.remove("Version");
            }
            v.to_string()
        })
        .collect()
}

pub fn output(row: &InstanceRow) -> serde_json::Value {
    row.output
        .as_deref()
        .map(|o| serde_json::from_str(o).unwrap())
        .unwrap_or_default()
}

pub fn assert_completed(row: &InstanceRow) {
    assert_eq!(row.status, RuntimeStatus::Completed, "{row:?}");
}

/// Checks per-instance history invariants: no task scheduled twice, no
/// task completed twice, exactly one ExecutionCompleted, at the end.
pub fn assert_history_invariants(history: &[(Millis, Event)]) {
    let mut scheduled = std::collections::HashSet::new();
    let mut completed = std::collections::HashSet::new();
    let mut terminal = 0;
    for (_, e) in history {
        match e {
            Event::TaskScheduled { task_id, .. } | Event::TimerCreated { task_id, .. } => {
                assert!(scheduled.insert(*task_id), "task {task_id} scheduled twice");
            }
            Event::TaskCompleted { task_id, .. }
            | Event::TaskFailed { task_id, .. }
            | Event::TimerFired { task_id, .. } => {
                assert!(completed.insert(*task_id), "task {task_id} completed twice");
            }
            Event::ExecutionCompleted { .. } => terminal += 1,
            _ => {}
        }
    }
    assert_eq!(terminal, 1, "exactly one ExecutionCompleted");
    assert!(matches!(history.last(), Some((_, Event::ExecutionCompleted { .. }))));
}

/// Instantiates `async fn name(lang: &str)` scenarios as one test per
/// guest language, so every example is held to the same expectations in
/// Rust, Python and JavaScript.
#[macro_export]
macro_rules! in_every_language {
    ($($test:ident),* $(,)?) => {
        $crate::in_language!(rust, $($test),*);
        $crate::in_language!(python, $($test),*);
        $crate::in_language!(js, $($test),*);
    };
}

#[macro_export]
macro_rules! in_language {
    ($lang:ident, $($test:ident),*) => {
        mod $lang {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(stringify!($lang)).await
                }
            )*
        }
    };
}

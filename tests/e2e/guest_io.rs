//! JavaScript and Python activities doing real I/O under their grants.
//!
//! A project whose `cairn.json` asks for WASI activities is built in two
//! parts (scripts/build-{js,python}-guests.sh): `<name>.wasm`, its
//! orchestrators without WASI, and `<name>.activities.wasm`, its
//! activities with files, environment, clocks, randomness and (when asked
//! for) outgoing HTTP, each limited by the grants given at deploy. The
//! testing project `io` (guests/{js,python}/testing/io) exercises every
//! capability granted and refused; the examples `backup-site-content`
//! (Durable Functions' E2) and `http-call` run as a user would run them,
//! through `cairn deploy`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::*;
use cairn::sandbox::{DirGrant, Grants};
use cairn::store::RuntimeStatus;

fn part(lang: &str, file: &str) -> PathBuf {
    repo_root().join("target/guests").join(lang).join(file)
}

fn read_part(lang: &str, file: &str) -> Vec<u8> {
    let path = part(lang, file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/build-{}-guests.sh first",
            path.display(),
            if lang == "js" { "js" } else { "python" }
        )
    })
}

/// A local HTTP server answering every request with a small JSON document
/// (header `X-Server: cairn-test`); counts the requests that reach it.
struct TestServer {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl TestServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_string();
                let first = head.lines().next().unwrap_or_default().to_owned();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                let start = request
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(request.len(), |p| p + 4);
                let mut body = request[start..].to_vec();
                while body.len() < length {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let name = first
                    .split_once("name=")
                    .map(|(_, rest)| rest.split([' ', '&']).next().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                let reply = json!({
                    "greeting": format!("Hello {name}!"),
                    "request": first,
                    "body": String::from_utf8_lossy(&body),
                })
                .to_string();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-server: cairn-test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Directories of one test: `data` (granted read-only as /data, holds
/// note.txt), `out` (granted read-write as /out) and `secret` (not granted).
struct Dirs {
    _tmp: TempDir,
    data: PathBuf,
    out: PathBuf,
    secret: PathBuf,
}

fn dirs(tag: &str) -> Dirs {
    let tmp = TempDir::new(tag);
    let data = tmp.0.join("data");
    let out = tmp.0.join("out");
    let secret = tmp.0.join("secret");
    for d in [&data, &out, &secret] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(data.join("note.txt"), "granted text").unwrap();
    std::fs::write(secret.join("key.txt"), "not for guests").unwrap();
    Dirs {
        _tmp: tmp,
        data,
        out,
        secret,
    }
}

fn dir_grant(host: &Path, guest: &str, rw: bool) -> DirGrant {
    DirGrant::parse(&format!("{}:{guest}{}", host.display(), if rw { ":rw" } else { "" })).unwrap()
}

/// A variable cargo sets for every test process (so the test need not set one).
const ENV_VAR: &str = "CARGO_PKG_NAME";

/// Deploys the testing project `io` of `lang` as `cairn deploy` does: the
/// activity part with every grant, the orchestrator part with HTTP only.
async fn deploy_io(t: &TestHub, lang: &str, d: &Dirs, http: &[String]) {
    let grants = Grants {
        env: vec![ENV_VAR.into()],
        dirs: vec![dir_grant(&d.data, "/data", false), dir_grant(&d.out, "/out", true)],
        http: http.to_vec(),
    };
    t.hub
        .deploy_with(read_part(lang, "io.activities.wasm"), grants)
        .await
        .unwrap_or_else(|e| panic!("deploying {lang} io.activities.wasm: {e}"));
    t.hub
        .deploy_with(
            read_part(lang, "io.wasm"),
            Grants {
                http: http.to_vec(),
                ..Grants::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("deploying {lang} io.wasm: {e}"));
}

/// Runs activity `name` through the orchestrator `CallsActivity`:
/// `Ok(output)` or `Err((error_type, message))`.
async fn call(t: &TestHub, id: &str, name: &str, input: Value) -> Result<Value, (String, String)> {
    let row = t
        .run("CallsActivity", &json!({"name": name, "input": input}).to_string(), id)
        .await;
    assert_eq!(row.status, RuntimeStatus::Completed, "{row:?}");
    let out = output(&row);
    match out.get("ok") {
        Some(v) => Ok(v.clone()),
        None => Err((
            out["error_type"].as_str().unwrap_or_default().to_owned(),
            out["message"].as_str().unwrap_or_default().to_owned(),
        )),
    }
}

fn denied(result: Result<Value, (String, String)>, naming: &str) {
    match result {
        Err((error_type, message)) => {
            assert_eq!(error_type, "CapabilityDenied", "{message}");
            assert!(message.contains(naming), "{message:?} does not name {naming:?}");
        }
        Ok(v) => panic!("expected CapabilityDenied naming {naming}, got {v}"),
    }
}

async fn files_env_clock_random(lang: &str) {
    let d = dirs(&format!("io-{lang}"));
    let t = TestHub::new(true).await;
    // The project imports wasi:http, which needs some grant to deploy.
    deploy_io(&t, lang, &d, &["127.0.0.1:1".into()]).await;

    // Files: granted directory readable, listable; writable only when :rw.
    assert_eq!(
        call(&t, "read", "ReadFile", json!("/data/note.txt")).await,
        Ok(json!("granted text"))
    );
    assert_eq!(
        call(&t, "list", "ListDir", json!("/data")).await,
        Ok(json!(["note.txt"]))
    );
    let secret = d.secret.join("key.txt");
    denied(
        call(&t, "secret", "ReadFile", json!(secret.display().to_string())).await,
        &secret.display().to_string(),
    );
    denied(call(&t, "etc", "ReadFile", json!("/etc/passwd")).await, "/etc/passwd");
    assert_eq!(
        call(
            &t,
            "write",
            "WriteFile",
            json!({"path": "/out/copy.txt", "text": "written"})
        )
        .await,
        Ok(json!(7))
    );
    assert_eq!(std::fs::read_to_string(d.out.join("copy.txt")).unwrap(), "written");
    denied(
        call(
            &t,
            "write-ro",
            "WriteFile",
            json!({"path": "/data/no.txt", "text": "no"}),
        )
        .await,
        "/data/no.txt",
    );
    assert!(!d.data.join("no.txt").exists());

    // Environment: the granted variable only.
    assert_eq!(
        call(&t, "env", "ReadEnv", json!(ENV_VAR)).await,
        Ok(json!(std::env::var(ENV_VAR).unwrap()))
    );
    assert_eq!(call(&t, "env-home", "ReadEnv", json!("HOME")).await, Ok(Value::Null));
    assert_eq!(call(&t, "env-path", "ReadEnv", json!("PATH")).await, Ok(Value::Null));

    // Clock and randomness: real, and different on every call.
    let before = now_ms() as f64 / 1000.0;
    let a = call(&t, "entropy-1", "Entropy", Value::Null).await.unwrap();
    let b = call(&t, "entropy-2", "Entropy", Value::Null).await.unwrap();
    let after = now_ms() as f64 / 1000.0;
    for e in [&a, &b] {
        let time = e["time"].as_f64().unwrap();
        assert!(
            time >= before - 1.0 && time <= after + 1.0,
            "{e} not within [{before}, {after}]"
        );
    }
    assert!(b["time"].as_f64() > a["time"].as_f64(), "{a} {b}");
    assert_ne!(a["random"], b["random"]);
    assert_ne!(a["token"], b["token"]);
    assert_ne!(a["monotonic"], b["monotonic"]);
    t.stop().await;
}

async fn http_granted_and_refused(lang: &str) {
    let d = dirs(&format!("http-{lang}"));
    let granted = TestServer::start();
    let other = TestServer::start();
    let t = TestHub::new(true).await;
    deploy_io(&t, lang, &d, &[format!("127.0.0.1:{}", granted.port)]).await;

    let url = format!("http://127.0.0.1:{}/hello?name=cairn", granted.port);
    let got = call(&t, "fetch", "Fetch", json!(url)).await.unwrap();
    assert_eq!(got["status"], json!(200), "{got}");
    assert_eq!(got["server"], json!("cairn-test"), "{got}");
    assert_eq!(got["json"]["greeting"], json!("Hello cairn!"), "{got}");
    assert!(got["text"].as_str().unwrap().contains("GET /hello?name=cairn"), "{got}");
    assert_eq!(granted.hits(), 1, "one attempt, one request");

    let posted = call(
        &t,
        "post",
        "Post",
        json!({"url": format!("http://127.0.0.1:{}/items", granted.port), "body": {"n": 1}}),
    )
    .await
    .unwrap();
    assert_eq!(posted["status"], json!(200));
    let reply: Value = serde_json::from_str(posted["text"].as_str().unwrap()).unwrap();
    assert_eq!(reply["request"], json!("POST /items HTTP/1.1"));
    assert_eq!(reply["body"], json!(r#"{"n":1}"#));
    assert_eq!(granted.hits(), 2);

    // One request per attempt: the first attempt GETs and fails, the retry
    // GETs again and succeeds.
    let row = t
        .run(
            "CallsWithRetry",
            &json!({"name": "FetchFailingFirst", "input": url, "attempts": 3}).to_string(),
            "retried",
        )
        .await;
    assert_eq!(output(&row), json!({"ok": {"status": 200, "attempt": 2}}), "{row:?}");
    assert_eq!(granted.hits(), 4, "two attempts, two requests");

    // Another host (another port of the same address) is refused before any
    // byte leaves the process, even when the guest catches the error.
    let target = format!("127.0.0.1:{}", other.port);
    denied(
        call(&t, "other", "Fetch", json!(format!("http://{target}/"))).await,
        &target,
    );
    denied(
        call(&t, "swallowed", "FetchSwallowed", json!(format!("http://{target}/"))).await,
        &target,
    );
    denied(
        call(&t, "named", "Fetch", json!("http://example.invalid/")).await,
        "example.invalid",
    );
    assert_eq!(other.hits(), 0);
    assert_eq!(granted.hits(), 4);
    t.stop().await;
}

/// The orchestrator part has no WASI: every I/O fails the same way on
/// every run and replay (or reads nothing), and the project's activity
/// part, which has I/O imports, exports no orchestrators.
async fn orchestrators_stay_without_io(lang: &str) {
    let d = dirs(&format!("orch-{lang}"));
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_io(&t, lang, &d, &["127.0.0.1:1".into()]).await;
        let mut seen = Vec::new();
        for what in ["time", "open", "listdir", "env", "http", "urandom"] {
            let row = t
                .run("TriesIO", &json!(what).to_string(), &format!("tries-{what}"))
                .await;
            assert_eq!(row.status, RuntimeStatus::Completed, "{what}: {row:?}");
            let out = output(&row);
            assert!(
                out.is_string() || out == json!({"value": null}),
                "{lang} orchestrator did I/O for {what}: {out}"
            );
            seen.push((what, out));
        }
        println!("{lang} orchestrator I/O attempts (hot={hot}): {seen:?}");
        t.stop().await;
    }
    // The activity part really imports I/O, and lists activities only.
    let t = TestHub::new(true).await;
    let report = t
        .hub
        .deploy_with(
            read_part(lang, "io.activities.wasm"),
            Grants {
                http: vec!["127.0.0.1:1".into()],
                ..Grants::default()
            },
        )
        .await
        .unwrap();
    assert!(
        report
            .functions
            .iter()
            .all(|(_, k)| *k == cairn::store::FunctionKind::Activity),
        "{:?}",
        report.functions
    );
    let loaded = t.hub.sandbox.get_loaded(&report.hash).unwrap();
    let err = t
        .hub
        .sandbox
        .check_orchestrator_imports(&loaded)
        .unwrap_err()
        .to_string();
    assert!(err.contains("wasi:filesystem"), "{err}");
    t.stop().await;
}

/// Runs the `cairn` binary on the task hub `db`: whether it succeeded, and
/// its stdout followed by its stderr.
fn cairn(db: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The status JSON `cairn start --wait` prints after the instance id.
fn waited_status(text: &str) -> Value {
    // `start --wait` prints the final status, one JSON document.
    let stdout = text.split("\n--- stderr\n").next().unwrap_or_default();
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A task hub for the CLI whose compiled cache is the tests' shared one.
fn cli_hub(tmp: &TempDir) -> PathBuf {
    let db = tmp.0.join("hub.db");
    #[cfg(unix)]
    std::os::unix::fs::symlink(compiled_cache(), tmp.0.join("hub.db.compiled")).unwrap();
    db
}

/// Durable Functions' E2 BackupSiteContent, deployed with one `cairn
/// deploy` of the project (both parts), the site granted read-only and the
/// backup directory read-write.
async fn backup_site_content(lang: &str) {
    let tmp = TempDir::new(&format!("e2-{lang}"));
    let site = tmp.0.join("site");
    let backups = tmp.0.join("backups");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::create_dir_all(&backups).unwrap();
    let files = [
        ("index.html", "<h1>cairn</h1>".repeat(10)),
        ("css/site.css", "body { color: black }".to_owned()),
        ("about.txt", "x".repeat(5000)),
    ];
    for (name, text) in &files {
        std::fs::write(site.join(name), text).unwrap();
    }
    let total: usize = files.iter().map(|(_, t)| t.len()).sum();
    let db = cli_hub(&tmp);
    let project = part(lang, "backup-site-content.wasm");
    let (ok, text) = cairn(
        &db,
        &[
            "deploy",
            project.to_str().unwrap(),
            "--allow-dir",
            &format!("{}:/site", site.display()),
            "--allow-dir",
            &format!("{}:/backups:rw", backups.display()),
        ],
    );
    assert!(ok, "{text}");
    for f in [
        "E2_BackupSiteContent\torchestrator",
        "E2_GetFileList\tactivity",
        "E2_CopyFileToBlob\tactivity",
    ] {
        assert!(text.contains(f), "deploy did not register {f}:\n{text}");
    }
    let (ok, text) = cairn(
        &db,
        &["start", "E2_BackupSiteContent", "--input", "\"/site\"", "--wait", "120"],
    );
    assert!(ok, "{text}");
    let status = waited_status(&text);
    assert_eq!(status["runtimeStatus"], json!("Completed"), "{status}");
    assert_eq!(status["output"], json!(total), "{status}");
    for (name, text) in &files {
        let copy = backups.join("site").join(name);
        assert_eq!(
            &std::fs::read_to_string(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display())),
            text
        );
    }

    // Without the grants the activity fails with CapabilityDenied naming the directory.
    let tmp2 = TempDir::new(&format!("e2-denied-{lang}"));
    let db2 = cli_hub(&tmp2);
    let (ok, text) = cairn(&db2, &["deploy", project.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (_, text) = cairn(
        &db2,
        &["start", "E2_BackupSiteContent", "--input", "\"/site\"", "--wait", "120"],
    );
    assert!(text.contains("CapabilityDenied") && text.contains("/site"), "{text}");
}

/// The HTTP example: an activity calling a local API, the host granted at deploy.
async fn http_example(lang: &str) {
    let server = TestServer::start();
    let tmp = TempDir::new(&format!("http-example-{lang}"));
    let db = cli_hub(&tmp);
    let project = part(lang, "http-call.wasm");
    let host = format!("127.0.0.1:{}", server.port);
    let (ok, text) = cairn(&db, &["deploy", project.to_str().unwrap(), "--allow-http", &host]);
    assert!(ok, "{text}");
    let input = json!({"url": format!("http://{host}/greet"), "names": ["Tokyo", "Lima"]}).to_string();
    let (ok, text) = cairn(&db, &["start", "CallHttpApi", "--input", &input, "--wait", "120"]);
    assert!(ok, "{text}");
    let status = waited_status(&text);
    assert_eq!(status["output"], json!(["Hello Tokyo!", "Hello Lima!"]), "{status}");
    assert_eq!(server.hits(), 2);
}

fn now_ms() -> u64 {
    cairn::clock::now_ms()
}

/// The parts of two languages' projects combine: functions resolve by name,
/// so a Python orchestrator runs JavaScript activities and the other way
/// round. Deployed by naming both files (`cairn deploy X.wasm Y.activities.wasm`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_io_orchestrators_call_activities_of_the_other_language() {
    for (orchestrators, activities) in [("python", "js"), ("js", "python")] {
        let server = TestServer::start();
        let tmp = TempDir::new(&format!("cross-{orchestrators}-{activities}"));
        let db = cli_hub(&tmp);
        let host = format!("127.0.0.1:{}", server.port);
        let orch = part(orchestrators, "http-call.wasm");
        let acts = part(activities, "http-call.activities.wasm");
        // Naming another language's activity part explicitly: the
        // orchestrator file's own activity part comes along too, and is
        // deployed first, so the named one must be deployed after it.
        let (ok, text) = cairn(
            &db,
            &[
                "deploy",
                orch.to_str().unwrap(),
                acts.to_str().unwrap(),
                "--allow-http",
                &host,
            ],
        );
        assert!(ok, "{text}");
        let input = json!({"url": format!("http://{host}/greet"), "names": ["Oslo"]}).to_string();
        let (ok, text) = cairn(&db, &["start", "CallHttpApi", "--input", &input, "--wait", "120"]);
        assert!(ok, "{text}");
        assert_eq!(waited_status(&text)["output"], json!(["Hello Oslo!"]), "{text}");
        assert_eq!(server.hits(), 1);
        // The activity that ran is the named language's: its component is
        // the newest version of GetGreeting.
        let hub = cairn::hub::Hub::open(&db).unwrap();
        let newest = hub
            .store
            .resolve_function("GetGreeting", cairn::store::FunctionKind::Activity)
            .await
            .unwrap();
        assert_eq!(newest, cairn::sandbox::content_hash(&std::fs::read(&acts).unwrap()));
    }
}

/// A Rust orchestrator (`CallsActivity` of guests/rust/testing/features,
/// the same contract as the testing projects' own) calls the JS and Python
/// I/O activities: files and HTTP, granted and refused.
async fn rust_orchestrator_calls_io_activities(lang: &str) {
    let d = dirs(&format!("rust-orch-{lang}"));
    let server = TestServer::start();
    let t = TestHub::new(false).await;
    let host = format!("127.0.0.1:{}", server.port);
    t.hub
        .deploy_with(
            read_part(lang, "io.activities.wasm"),
            Grants {
                dirs: vec![dir_grant(&d.data, "/data", false)],
                http: vec![host.clone()],
                ..Grants::default()
            },
        )
        .await
        .unwrap();
    t.deploy("features").await;
    assert_eq!(
        call(&t, "read", "ReadFile", json!("/data/note.txt")).await,
        Ok(json!("granted text"))
    );
    denied(
        call(&t, "etc", "ReadFile", json!("/etc/hostname")).await,
        "/etc/hostname",
    );
    let got = call(&t, "fetch", "Fetch", json!(format!("http://{host}/x?name=rust")))
        .await
        .unwrap();
    assert_eq!(got["json"]["greeting"], json!("Hello rust!"), "{got}");
    assert_eq!(server.hits(), 1);
    denied(
        call(&t, "other", "Fetch", json!("http://127.0.0.1:9/")).await,
        "127.0.0.1:9",
    );
    assert_eq!(server.hits(), 1);
    t.stop().await;
}

macro_rules! per_language {
    ($($name:ident => $scenario:ident;)*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn python() {
                    super::$scenario("python").await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn js() {
                    super::$scenario("js").await;
                }
            }
        )*
    };
}

per_language! {
    guest_io_files_env_clock_random => files_env_clock_random;
    guest_io_http_granted_and_refused => http_granted_and_refused;
    guest_io_orchestrators_stay_without_io => orchestrators_stay_without_io;
    guest_io_backup_site_content => backup_site_content;
    guest_io_http_example => http_example;
    guest_io_rust_orchestrator_calls_io_activities => rust_orchestrator_calls_io_activities;
}

/// Numbers for BENCHMARKS.md ("Guest I/O"): per language, the activity
/// component doing one local HTTP GET — its size, its cold compile (no
/// compiled cache), and sequential calls per second through the sandbox
/// (warm instance pool, one GET to a local server per call). Ignored by
/// default: `cargo test --release --test e2e guest_io_measure -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run by hand"]
async fn guest_io_measure_http_get_activity() {
    use cairn::sandbox::{ActivityCtx, Limits, Sandbox, content_hash};
    let calls: usize = std::env::var("CAIRN_MEASURE_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let server = TestServer::start();
    let host = format!("127.0.0.1:{}", server.port);
    let url = format!("http://{host}/greet");
    let cases = [
        ("rust", part("rust", "http-client.wasm"), "HttpGet", json!(url)),
        (
            "js",
            part("js", "http-call.activities.wasm"),
            "GetGreeting",
            json!({"url": url, "name": "x"}),
        ),
        (
            "python",
            part("python", "http-call.activities.wasm"),
            "GetGreeting",
            json!({"url": url, "name": "x"}),
        ),
    ];
    println!("| guest | component | cold compile | first call | calls/s (sequential, {calls} calls) |");
    println!("|---|---|---|---|---|");
    for (lang, path, function, input) in cases {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sandbox = Sandbox::new(None, Limits::default()).unwrap();
        let hash = content_hash(&bytes);
        let started = std::time::Instant::now();
        let loaded = tokio::task::block_in_place(|| sandbox.load(&hash, &bytes)).unwrap();
        let compile = started.elapsed();
        let grants = Grants {
            http: vec![host.clone()],
            ..Grants::default()
        };
        let input = input.to_string();
        let ctx = |i: usize| ActivityCtx {
            instance_id: format!("measure-{i}"),
            function_name: function.to_owned(),
            idempotency_key: format!("measure-{i}:0:0"),
            attempt: 1,
        };
        let started = std::time::Instant::now();
        sandbox
            .run_activity(&loaded, ctx(0), &input, &grants)
            .await
            .unwrap_or_else(|f| panic!("{lang}: {f:?}"));
        let first = started.elapsed();
        let before = server.hits();
        let started = std::time::Instant::now();
        for i in 1..=calls {
            sandbox
                .run_activity(&loaded, ctx(i), &input, &grants)
                .await
                .unwrap_or_else(|f| panic!("{lang}: {f:?}"));
        }
        let elapsed = started.elapsed();
        assert_eq!(server.hits() - before, calls, "one request per call");
        println!(
            "| {lang} | {:.1} MB | {:.2} s | {:.1} ms | {:.0} |",
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64(),
            first.as_secs_f64() * 1e3,
            calls as f64 / elapsed.as_secs_f64()
        );
    }
}

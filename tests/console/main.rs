//! The web console in a real browser: a real `cairn serve` process (with an
//! API key) and headless Chromium driven over WebDriver. Screenshots go to
//! `target/console/*.png` for a reviewer. Fails loudly when Chromium or
//! chromedriver cannot start: install them with
//! `scripts/install-chromium.sh` (`make test` does).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../common/mod.rs"]
mod common;
mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::api::client::Client;
use common::{TempDir, repo_root};
use hyper::Method;
use serde_json::Value;
use webdriver::Browser;

const KEY: &str = "console-test-key-5d2c";
const DF: &str = "/runtime/webhooks/durabletask";

/// A `cairn serve` child process on a temporary task hub.
struct Serve {
    child: Child,
    addr: String,
    db: std::path::PathBuf,
    /// Every line the server wrote to stderr.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cairn(db: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Instances stored before the server starts (the console must stay fast).
const BULK: usize = 100_000;

/// Stores `BULK` finished instances (half Completed, half Failed) of an
/// orchestrator named `Imported`, created in 2023, through the provider.
async fn bulk_instances(db: &Path) {
    let store = cairn::store::open(db).unwrap();
    for chunk in 0..BULK / 2000 {
        let mut tasks = Vec::new();
        for i in chunk * 2000..(chunk + 1) * 2000 {
            let store = store.clone();
            let row = cairn::store::InstanceRow {
                instance_id: format!("bulk-{i:06}"),
                execution_id: format!("e{i}"),
                name: "Imported".into(),
                version: "v-imported".into(),
                status: if i % 2 == 0 {
                    cairn::store::RuntimeStatus::Completed
                } else {
                    cairn::store::RuntimeStatus::Failed
                },
                input: Some("null".into()),
                output: None,
                custom_status: None,
                created_at: 1_700_000_000_000 + i as u64,
                updated_at: 1_700_000_000_000 + i as u64,
                parent_instance: None,
                history_len: 0,
            };
            tasks.push(tokio::spawn(
                async move { store.import_instance(row, Vec::new()).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
}

async fn serve(components: &[&str]) -> Serve {
    let dir = TempDir::new("console");
    let db = dir.0.join("hub.db");
    for c in components {
        let path = repo_root().join(format!("target/guests/rust/{c}.wasm"));
        cairn(&db, &["deploy", path.to_str().unwrap()]);
    }
    bulk_instances(&db).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(&db)
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            KEY,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("management API on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("cairn serve printed its address");
    Serve {
        child,
        addr,
        db,
        log,
        _dir: dir,
    }
}

/// A client of the server with the API key.
fn api(s: &Serve) -> Client {
    Client::new(&format!("http://{}", s.addr), Some(KEY.into())).unwrap()
}

async fn post(c: &Client, path: &str, body: &str) -> (u16, Value) {
    let r = c
        .send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .await
        .unwrap();
    (r.status.as_u16(), r.json())
}

async fn status(c: &Client, id: &str) -> String {
    let r = c
        .send(Method::GET, &format!("{DF}/instances/{id}"), &[], Vec::new())
        .await
        .unwrap();
    r.json()["runtimeStatus"].as_str().unwrap_or_default().to_owned()
}

async fn wait_status(c: &Client, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(c, id).await != want {
        assert!(Instant::now() < deadline, "{id} did not become {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_times_travels_and_acts_in_chromium() {
    let s = serve(&["hello-cities", "human-interaction", "retry"]).await;
    let c = api(&s);
    let base = format!("http://{}", s.addr);
    assert_eq!(
        post(
            &c,
            &format!("{DF}/orchestrators/HelloCities/hello-1?timeout=30"),
            "null"
        )
        .await
        .0,
        200
    );
    let (code, _) = post(
        &c,
        &format!("{DF}/orchestrators/ApprovalWorkflow/approval-1"),
        r#"{"timeout_ms":600000}"#,
    )
    .await;
    assert_eq!(code, 202);
    assert_eq!(
        post(
            &c,
            &format!("{DF}/orchestrators/RetryFlaky/retry-1?timeout=30"),
            r#"{"fail_times":2}"#
        )
        .await
        .0,
        200
    );
    // Every attempt fails: the instance fails with the activity's typed failure.
    let (code, v) = post(
        &c,
        &format!("{DF}/orchestrators/RetryFlaky/retry-fail?timeout=30"),
        r#"{"fail_times":9}"#,
    )
    .await;
    assert_eq!((code, v["runtimeStatus"].as_str()), (200, Some("Failed")), "{v}");
    // The approval waits on its timer and event (its custom status says so).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .send(Method::GET, &format!("{DF}/instances/approval-1"), &[], Vec::new())
            .await
            .unwrap();
        if r.json()["customStatus"]["stage"] == "waiting-for-approval" {
            break;
        }
        assert!(Instant::now() < deadline, "approval-1 did not reach its wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let shots = repo_root().join("target/console");
    let b = Browser::start(&shots).await;

    // Sign in: the key goes in a form, never in the URL; the cookie is
    // HttpOnly (invisible to scripts).
    b.goto(&format!("{base}/")).await;
    b.wait("#api-key", 20).await;
    b.shot("01-sign-in").await;
    b.fill("#api-key", "wrong-key").await;
    b.click("#sign-in").await;
    b.wait_js(
        "document.getElementById('signin-error').textContent.includes('not valid')",
        10,
    )
    .await;
    // Enter submits the form (keyboard use).
    b.fill("#api-key", KEY).await;
    let started = Instant::now();
    b.keys("#api-key", "\u{E007}").await;
    b.wait("tr[data-test=instance-row][data-id=approval-1]", 20).await;
    let list_ms = started.elapsed().as_millis();
    assert!(!b.url().await.contains(KEY), "the key is not in the URL");
    assert_eq!(
        b.js("return document.cookie").await,
        Value::String(String::new()),
        "HttpOnly cookie"
    );
    for id in ["hello-1", "approval-1", "retry-1", "retry-fail"] {
        b.wait(&format!("tr[data-test=instance-row][data-id={id}]"), 10).await;
    }
    let running = b.text("button.chip[data-status=Running] .n").await;
    assert_eq!(running, "1", "one Running instance");
    let completed = (BULK / 2 + 2).to_string();
    assert_eq!(b.text("button.chip[data-status=Completed] .n").await, completed);
    assert_eq!(
        b.text("button.chip[data-status=Failed] .n").await,
        (BULK / 2 + 1).to_string()
    );
    b.shot("02-instances").await;
    // A fresh page load (HTML, script, session, first page with counts).
    let started = Instant::now();
    b.goto(&format!("{base}/?fresh#/instances")).await;
    b.wait("tr[data-test=instance-row][data-id=approval-1]", 20).await;
    let load_ms = started.elapsed().as_millis();
    eprintln!(
        "with {} instances: list shown {list_ms} ms after sign-in; fresh page load {load_ms} ms",
        BULK + 4
    );
    // Paging stays server-side: the next page holds the bulk instances.
    b.click("#page-older").await;
    b.wait("tr[data-test=instance-row][data-id=bulk-099953]", 20).await;
    assert!(b.text("#page-info").await.starts_with("Page 2"));
    b.click("#page-newer").await;
    b.wait("tr[data-test=instance-row][data-id=hello-1]", 20).await;

    // Filters: by orchestrator name, by status chip, by id prefix.
    b.fill("#f-name", "HelloCities").await;
    b.click("#f-apply").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-test=instance-row]').length === 1 && !!document.querySelector('tr[data-id=hello-1]')",
        10,
    )
    .await;
    b.fill("#f-name", "").await;
    b.fill("#f-prefix", "retry-f").await;
    b.click("#f-apply").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-test=instance-row]').length === 1 && !!document.querySelector('tr[data-id=retry-fail]')",
        10,
    )
    .await;
    b.goto(&format!("{base}/#/instances")).await;
    b.click("button.chip[data-status=Running]").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-test=instance-row]').length === 1 && !!document.querySelector('tr[data-id=approval-1]')",
        10,
    )
    .await;

    // HelloCities: three activity bars, all completed.
    b.goto(&format!("{base}/#/instance/hello-1")).await;
    b.wait("#timeline [data-test=bar]", 20).await;
    let bars = b
        .all("#timeline [data-test=bar][data-kind=activity][data-outcome=completed]")
        .await;
    assert_eq!(bars.len(), 3, "three SayHello bars");
    assert!(b.text("#output").await.contains("Hello London!"));
    b.shot("03-hello-timeline").await;

    // The retried activity shows its two failed attempts.
    b.goto(&format!("{base}/#/instance/retry-1")).await;
    b.wait("#timeline [data-test=bar][data-kind=activity][data-retries='2']", 20)
        .await;
    b.shot("04-retry-timeline").await;

    // A failed instance shows its failure's type and message; it can be rewound.
    b.goto(&format!("{base}/#/instance/retry-fail")).await;
    b.wait("#failure", 20).await;
    assert!(b.text("#failure").await.contains("TransientError"));
    assert_eq!(
        b.js("return document.getElementById('act-rewind').disabled").await,
        Value::Bool(false)
    );
    b.wait(
        "#timeline [data-test=bar][data-kind=activity][data-outcome=failed][data-retries='4']",
        10,
    )
    .await;
    b.shot("05a-failed").await;

    // The approval: a pending timer and a pending event wait.
    b.goto(&format!("{base}/#/instance/approval-1")).await;
    b.wait("#timeline [data-test=bar][data-kind=timer][data-outcome=pending]", 20)
        .await;
    b.wait("#timeline [data-test=bar][data-kind=event][data-outcome=pending]", 10)
        .await;
    assert!(b.text("#custom-status").await.contains("waiting-for-approval"));
    b.shot("05-approval-waiting").await;

    // A change without the CSRF token is refused, even with the cookie.
    let code = b
        .js_async(&format!(
            "const done = arguments[0]; fetch('{DF}/instances/approval-1/suspend', {{method: 'POST', credentials: 'same-origin'}}).then(r => done(r.status), e => done(String(e)));"
        ))
        .await;
    assert_eq!(code, Value::from(403), "no CSRF token: 403");
    assert_eq!(status(&c, "approval-1").await, "Running");

    // Raise the approval from the page; the instance completes.
    b.fill("#ev-name", "ApprovalEvent").await;
    b.fill("#ev-data", "true").await;
    b.click("#act-raise").await;
    wait_status(&c, "approval-1", "Completed").await;
    b.wait_js(
        "document.querySelector('[data-test=status]').textContent === 'Completed'",
        20,
    )
    .await;
    b.wait("#timeline [data-test=bar][data-kind=event][data-outcome=received]", 10)
        .await;
    assert!(b.text("#output").await.contains("approved"));
    b.shot("06-approval-completed").await;

    // Time travel from the history table to the event that created the
    // timer: the timer and the event wait were pending, and the custom
    // status was set.
    b.click("#tab-history").await;
    b.wait("#history tr[data-test=history-row]", 10).await;
    let timer_index = b
        .js("return [...document.querySelectorAll('#history tr[data-test=history-row]')].find(r => r.children[1].textContent === 'TimerCreated').dataset.index")
        .await;
    let timer_index = timer_index.as_str().unwrap().to_owned();
    b.shot("07-history").await;
    b.click(&format!("#history tr[data-index='{timer_index}'] button.travel"))
        .await;
    b.wait(&format!("[data-test=travel][data-until='{timer_index}']"), 20)
        .await;
    b.wait("#travel-pending tr[data-test=pending-task][data-kind=timer]", 10)
        .await;
    b.wait("#travel-pending tr[data-test=pending-task][data-kind=event]", 10)
        .await;
    assert_eq!(b.text("#travel-state").await, "waiting");
    assert!(b.text("#travel-custom-status").await.contains("waiting-for-approval"));
    b.js("document.querySelector('.tabs').scrollIntoView()").await;
    b.shot("08-time-travel").await;
    // Step back with the keyboard-usable control: before the timer existed.
    b.fill("#travel-index", "2").await;
    b.click("#travel-go").await;
    b.wait("[data-test=travel][data-until='2']", 20).await;
    b.wait("#travel-pending tr[data-test=pending-task][data-kind=activity]", 10)
        .await;
    assert!(b.all("#travel-pending tr[data-kind=timer]").await.is_empty());

    // The same time travel from the command line, on the task hub file.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(&s.db)
        .args(["replay", "approval-1", "--until", &timer_index])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let travel: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = travel["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["event", "timer"], "{travel}");
    assert_eq!(travel["customStatus"]["stage"], "waiting-for-approval");
    assert_eq!(travel["verdict"], "waiting", "the time travel's state");

    // Purge asks for confirmation; cancelling keeps the instance.
    b.click("#tab-timeline").await;
    b.click("#act-purge").await;
    b.wait("dialog#confirm[open]", 10).await;
    b.click("#confirm-cancel").await;
    assert_eq!(status(&c, "approval-1").await, "Completed");
    b.click("#act-purge").await;
    b.wait("dialog#confirm[open]", 10).await;
    b.click("#confirm-ok").await;
    b.wait("tr[data-test=instance-row]", 20).await;
    let gone = c
        .send(Method::GET, &format!("{DF}/instances/approval-1"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(gone.status.as_u16(), 404, "purged from the page");

    // Components and locks.
    b.goto(&format!("{base}/#/components")).await;
    b.wait("#components tr[data-test=component-row]", 20).await;
    assert_eq!(b.all("#components tr[data-test=component-row]").await.len(), 3);
    assert!(b.page_text().await.contains("ApprovalWorkflow"));
    b.shot("09-components").await;
    b.goto(&format!("{base}/#/locks")).await;
    b.wait_js("document.getElementById('main').dataset.loaded === 'locks'", 20)
        .await;
    b.shot("10-locks").await;

    // Signing out ends the session: the API answers 401 to the cookie.
    b.click("#sign-out").await;
    b.wait("#api-key", 10).await;
    let code = b
        .js_async("const done = arguments[0]; fetch('/api/console/instances').then(r => done(r.status));")
        .await;
    assert_eq!(code, Value::from(401));

    // `--log-format json`: the server's log lines are JSON objects.
    let log = s.log.lock().unwrap().clone();
    let records: Vec<Value> = log.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        records
            .iter()
            .any(|r| r["target"] == "cairn" || r["target"].as_str().is_some_and(|t| t.starts_with("cairn"))),
        "no JSON log record in {log:?}"
    );
}

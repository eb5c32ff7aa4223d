//! Durable Functions' own Python client (`azure-functions-durable` from
//! PyPI) against a real `cairn serve` (the binary this test builds). The
//! client JSON-encodes inputs and event data twice, as it does against
//! Durable Functions itself; every SDK gives the function the value the
//! client meant (see guests/rust/sdk/src/codec.rs for the rule).
//!
//! The client is installed into `target/df-client-venv` (a venv of the
//! machine's `python3`) on first use; later runs reuse it and need no
//! network. The test fails loudly when it cannot be installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TempDir, repo_root};

/// The client release the test drives (PyPI).
const DF_CLIENT: &str = "azure-functions-durable";
const DF_CLIENT_VERSION: &str = "1.7.0";

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The venv's python with the pinned client installed (installed once,
/// idempotently: pip runs only when the pinned version is missing).
fn df_client_python() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = repo_root().join("target/df-client-venv");
    let python = venv.join("bin/python");
    let installed = |python: &Path| {
        python.exists() && {
            let out = run(Command::new(python).args([
                "-c",
                &format!("import importlib.metadata as m, azure.durable_functions; print(m.version({DF_CLIENT:?}))"),
            ]));
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == DF_CLIENT_VERSION
        }
    };
    if installed(&python) {
        return python;
    }
    if !python.exists() {
        let out = run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        assert!(
            out.status.success(),
            "cannot create the venv for Durable Functions' Python client at {} \
             (needs python3 with the venv module):\n{}",
            venv.display(),
            text(&out)
        );
    }
    let out = run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        &format!("{DF_CLIENT}=={DF_CLIENT_VERSION}"),
    ]));
    assert!(
        out.status.success(),
        "cannot install {DF_CLIENT}=={DF_CLIENT_VERSION} from PyPI into {}:\n{}",
        venv.display(),
        text(&out)
    );
    assert!(installed(&python), "{DF_CLIENT} installed but not importable");
    python
}

fn cairn(db: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_cairn")).arg("--db").arg(db).args(args))
}

fn deploy(db: &Path, lang: &str, name: &str) {
    let path = repo_root().join(format!("target/guests/{lang}/{name}.wasm"));
    let out = cairn(db, &["deploy", path.to_str().unwrap()]);
    assert!(out.status.success(), "deploy {lang}/{name}: {}", text(&out));
}

/// `cairn serve` on a free loopback port, killed on drop.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT/runtime/webhooks/durabletask/`.
    rpc_base_url: String,
}

impl Serve {
    fn start(db: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
                let _ = child.kill();
                panic!("cairn serve did not announce its API:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("management API on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        Self {
            child,
            rpc_base_url: format!("{url}/"),
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `start_new("WaitForApproval", None, {"timeout_ms": 60000})` used to fail
/// the Rust orchestrator with `InvalidInput`, and `raise_event(id,
/// "Approval", True)` arrived as the string `"true"`. With the real client:
/// typed Rust functions get the values the client meant, JavaScript and
/// Python functions get them too (the untyped rule), a string sent once
/// stays a string, and a Failed instance's `output` is the failure message.
#[test]
fn durable_functions_python_client_inputs_and_events_reach_every_sdk_as_meant() {
    let python = df_client_python();
    let dir = TempDir::new("df-client");
    let db = dir.0.join("hub.db");
    deploy(&db, "rust", "features");
    deploy(&db, "rust", "failing");
    deploy(&db, "js", "features");
    deploy(&db, "python", "checks");
    deploy(&db, "rust", "entities");
    let server = Serve::start(&db);

    let script = repo_root().join("tests/http/df_client.py");
    let out = run(Command::new(&python).arg(&script).arg(&server.rpc_base_url));
    assert!(out.status.success(), "{}", text(&out));
    let results: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the driver printed no JSON ({e}):\n{}", text(&out)));

    let completed = |name: &str| {
        let r = &results[name];
        assert_eq!(r["status"], "Completed", "{name}: {r}");
        assert_eq!(r["errors"], json!([]), "{name}: {r}");
        r["output"].clone()
    };
    assert_eq!(completed("WaitForApproval"), json!({"approved": true}));
    assert_eq!(
        completed("TypedEvents"),
        json!({"flag": false, "amount": 42, "order": {"sku": "sku-42"}, "note": "true"}),
        "a Rust String parameter gets the string as sent"
    );
    for name in ["JsClientValues", "PyClientValues"] {
        let out = completed(name);
        assert_eq!(out["input"], json!({"timeout_ms": 60000}), "{name}: {out}");
        assert_eq!(out["flag"], json!(false), "{name}: {out}");
        assert_eq!(out["amount"], json!(42), "{name}: {out}");
        assert_eq!(out["order"], json!({"sku": "sku-42"}), "{name}: {out}");
        assert_eq!(out["note"], json!("Tokyo"), "{name}: a plain string stays a string");
    }
    assert_eq!(
        results["JsClientValues"]["output"]["df_input"],
        json!({"timeout_ms": 60000})
    );
    assert_eq!(
        results["PyClientValues"]["output"]["types"],
        json!({"input": "dict", "flag": "bool", "amount": "int", "order": "dict", "note": "str"})
    );

    let failed = &results["UncaughtDetails"];
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert_eq!(
        failed["output"],
        json!("OutOfStock: sku-42 is out of stock"),
        "{failed}"
    );

    // signal_entity and read_entity_state against the entity routes.
    assert_eq!(
        results["Entity"],
        json!({"exists": true, "state": 8, "missing_exists": false})
    );
}

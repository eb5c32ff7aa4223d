//! The client libraries of `clients/` against real `cairn serve` processes
//! (the binary this test builds): the Python client's unittest suite
//! (`clients/python/tests`) and the JavaScript client's `node --test` suite
//! (`clients/js/test`). Two servers on temporary SQLite task hubs, both with
//! hello-cities.wasm, human-interaction.wasm and failing.wasm deployed: one
//! without an API key (`CAIRN_URL`), one with a key (`CAIRN_KEYED_URL`,
//! `CAIRN_API_KEY`).
//! Both suites must exit 0; their output is printed when they do not.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::serve::ServeProcess;
use crate::common::{TempDir, repo_root};

const API_KEY: &str = "clients-test-key";

/// `cairn --db DB ARGS...`, without the caller's `CAIRN_URL` and
/// `CAIRN_API_KEY` (which would send the verbs to another server, or give
/// the server without a key one).
fn cairn(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env_remove("CAIRN_URL")
        .env_remove("CAIRN_API_KEY")
        .arg("--db")
        .arg(db)
        .args(args);
    cmd
}

/// Deploys the Rust guests `names` on the task hub `db`.
fn deploy(db: &Path, names: &[&str]) {
    for name in names {
        let wasm = repo_root().join(format!("target/guests/rust/{name}.wasm"));
        assert!(
            wasm.exists(),
            "{} is missing: run `make guests-rust` first",
            wasm.display()
        );
        let out = cairn(db, &["deploy", wasm.to_str().unwrap()])
            .output()
            .expect("cairn runs");
        assert!(out.status.success(), "deploy {name}: {}", text(&out));
    }
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a client suite from the repository root with the servers' addresses.
fn run_suite(program: &str, args: &[&str], open: &ServeProcess, keyed: &ServeProcess) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .env("CAIRN_URL", open.url())
        .env("CAIRN_KEYED_URL", keyed.url())
        .env("CAIRN_API_KEY", API_KEY)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("NODE_OPTIONS")
        .output()
        .unwrap_or_else(|e| panic!("running {program} (is it installed?): {e}"))
}

#[test]
fn python_and_javascript_clients_pass_their_suites_against_cairn_serve() {
    let guests = ["hello-cities", "human-interaction", "failing"];
    let dir = TempDir::new("clients");
    let open_db = dir.0.join("open.db");
    let keyed_db = dir.0.join("keyed.db");
    deploy(&open_db, &guests);
    deploy(&keyed_db, &guests);
    let open = ServeProcess::spawn(cairn(&open_db, &["serve", "--listen", "127.0.0.1:0"]));
    let keyed = ServeProcess::spawn(cairn(
        &keyed_db,
        &["serve", "--listen", "127.0.0.1:0", "--api-key", API_KEY],
    ));
    // The keyed server refuses requests without the key (what the suites'
    // Unauthorized cases rely on).
    assert_eq!(keyed.get("/runtime/webhooks/durabletask/instances").status, 401);

    let python = run_suite(
        "python3",
        &["-m", "unittest", "discover", "-s", "clients/python/tests", "-v"],
        &open,
        &keyed,
    );
    let node = run_suite(
        "node",
        &["--test", "--test-reporter=spec", "clients/js/test/"],
        &open,
        &keyed,
    );
    let python_ok = python.status.success();
    let node_ok = node.status.success();
    if !python_ok || !node_ok {
        eprintln!("== server log (without key)\n{}", open.log());
        eprintln!("== server log (with key)\n{}", keyed.log());
    }
    assert!(
        python_ok,
        "the Python client's suite failed ({}):\n{}",
        python.status,
        text(&python)
    );
    assert!(
        node_ok,
        "the JavaScript client's suite failed ({}):\n{}",
        node.status,
        text(&node)
    );
    // Both suites ran their tests (an empty discovery also exits 0).
    let py_err = String::from_utf8_lossy(&python.stderr);
    assert!(
        py_err
            .lines()
            .any(|l| l.starts_with("Ran ") && !l.starts_with("Ran 0 ")),
        "{}",
        text(&python)
    );
    let node_out = String::from_utf8_lossy(&node.stdout);
    assert!(
        node_out
            .lines()
            .any(|l| l.trim_start_matches(['#', 'ℹ', ' ']).starts_with("pass ") && !l.ends_with(" 0")),
        "{}",
        text(&node)
    );
    println!("{}\n{}", text(&python), text(&node));
}

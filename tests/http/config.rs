//! `cairn serve --config FILE` on real processes: the listen address, the
//! task hub and the API key come from the file; a flag on the command line
//! and an environment variable win over it; a bad file stops the server
//! before it listens, with a message naming the file and the key.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::TempDir;
use crate::common::serve::{ServeProcess, try_send};

const STATUS: &str = "/runtime/webhooks/durabletask/instances/no-such-instance";

/// A loopback port nobody listens on (the race with other processes is
/// acceptable in tests).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `cairn ARGS...` without the variables of the calling environment that
/// would override the file.
fn cairn(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for var in [
        "CAIRN_DB",
        "CAIRN_API_KEY",
        "CAIRN_CONFIG",
        "CAIRN_URL",
        "CAIRN_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args);
    cmd
}

/// Waits until the server's log holds `needle` (the banner line reaches
/// the log just after its address is read from it).
fn wait_log(server: &ServeProcess, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in the log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn serve_takes_its_settings_from_the_config_file_and_flags_win() {
    let dir = TempDir::new("config-serve");
    let port = free_port();
    let db = dir.0.join("from-file.db");
    let file = write(
        &dir.0.join("cairn.toml"),
        &format!(
            "# a config file\ndb = {db:?}\nlisten = \"127.0.0.1:{port}\"\napi-key = \"key-from-file\"\n\
             max-body-bytes = 1048576\nmax-hot-instances = 50\ninstance-lease = \"10s\"\n",
            db = db.to_string_lossy()
        ),
    );
    // The command line overrides one key: request bodies over 64 bytes are refused.
    let server = ServeProcess::spawn(cairn(&["serve", "--config", &file, "--max-body-bytes", "64"]));
    assert_eq!(server.addr.port(), port, "the listen address comes from the file");
    // The task hub comes from the file.
    wait_log(&server, &format!("task hub {}", db.display()));
    assert!(db.exists(), "{} was created", db.display());
    server.get("/healthz").expect(200);
    // The key comes from the file: no key, 401; the file's key, served.
    server.get(STATUS).expect(401);
    let limit = Duration::from_secs(30);
    let keyed = try_send(
        server.addr,
        "GET",
        STATUS,
        &[("x-functions-key", "key-from-file")],
        b"",
        limit,
    )
    .unwrap();
    keyed.expect(404);
    let wrong = try_send(
        server.addr,
        "GET",
        STATUS,
        &[("x-functions-key", "another-key")],
        b"",
        limit,
    )
    .unwrap();
    wrong.expect(401);
    // The flag's 64 bytes, not the file's 1 MiB.
    let body = format!("{{\"padding\": \"{}\"}}", "x".repeat(200));
    let big = try_send(
        server.addr,
        "POST",
        "/runtime/webhooks/durabletask/orchestrators/HelloCities",
        &[
            ("x-functions-key", "key-from-file"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
        limit,
    )
    .unwrap();
    big.expect(413);
}

#[test]
fn environment_variables_win_over_the_file_and_cairn_config_names_it() {
    let dir = TempDir::new("config-env");
    let file_db = dir.0.join("file.db");
    let env_db = dir.0.join("env.db");
    let file = write(
        &dir.0.join("cairn.toml"),
        &format!(
            "db = {:?}\napi-key = \"file-key\"\nlisten = \"127.0.0.1:0\"\n",
            file_db.to_string_lossy()
        ),
    );
    // The file named by CAIRN_CONFIG; the task hub and the key from the environment.
    let mut cmd = cairn(&["serve"]);
    cmd.env("CAIRN_CONFIG", &file)
        .env("CAIRN_DB", &env_db)
        .env("CAIRN_API_KEY", "env-key");
    let server = ServeProcess::spawn(cmd);
    wait_log(&server, &format!("task hub {}", env_db.display()));
    assert!(!file_db.exists());
    let limit = Duration::from_secs(30);
    let r = try_send(
        server.addr,
        "GET",
        STATUS,
        &[("x-functions-key", "env-key")],
        b"",
        limit,
    )
    .unwrap();
    r.expect(404);
    let r = try_send(
        server.addr,
        "GET",
        STATUS,
        &[("x-functions-key", "file-key")],
        b"",
        limit,
    )
    .unwrap();
    r.expect(401);
    // Other verbs take the global keys (here the task hub) and ignore the
    // serve keys (`listen`): `list` on the file's task hub, which was never
    // created, says so; with the environment's, it lists.
    let out = cairn(&["--config", &file, "list"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&file_db.display().to_string()), "{err}");
    let out = cairn(&["--config", &file, "-o", "json", "list"])
        .env("CAIRN_DB", &env_db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["instances"], serde_json::json!([]), "{listed}");
}

#[test]
fn a_bad_config_file_stops_serve_with_the_file_and_the_key() {
    let dir = TempDir::new("config-bad");
    let cases = [
        (
            "listen = \"127.0.0.1:0\"\nlisten-address = \"127.0.0.1:0\"\n",
            "unknown key `listen-address`",
        ),
        ("api_key = \"k\"\n", "did you mean `api-key`?"),
        (
            "max-hot-instances = \"many\"\n",
            "key `max-hot-instances`: invalid value \"many\"",
        ),
        ("no-hot-cache = 1\n", "key `no-hot-cache`: expected true or false"),
        (
            "instance-lease = \"soon\"\n",
            "key `instance-lease`: invalid value \"soon\"",
        ),
        ("listen = \n", "not valid TOML"),
    ];
    for (i, (text, expected)) in cases.into_iter().enumerate() {
        let file = write(&dir.0.join(format!("bad-{i}.toml")), text);
        let out = cairn(&["serve", "--config", &file]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: exited {:?}", out.status);
        assert!(err.contains(&file), "{text}: the file is not named: {err}");
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!err.contains("management API on"), "{text}: it served: {err}");
    }
    // An unknown key lists the valid ones.
    let file = write(&dir.0.join("unknown.toml"), "bogus = 1\n");
    let out = cairn(&["serve", "--config", &file]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the valid keys are: ") && err.contains("api-key") && err.contains("tls-cert"),
        "{err}"
    );
    // A file that cannot be read.
    let missing = dir.0.join("missing.toml");
    let out = cairn(&["serve", "--config", &missing.to_string_lossy()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("missing.toml"), "{err}");
}

//! `cairn --url`: the management verbs against a running server.

use cairn::api::ApiConfig;
use cairn::cli::{Cli, CliError, exit, run};
use cairn::store::RuntimeStatus;
use clap::Parser;

use crate::Server;
use crate::common::repo_root;

const KEY: &str = "cli-test-key";

async fn cairn(s: &Server, key: &str, args: &[&str]) -> Result<(), CliError> {
    let url = format!("http://{}", s.addr);
    let mut argv = vec!["cairn", "--url", &url, "--api-key", key];
    argv.extend_from_slice(args);
    run(Cli::try_parse_from(argv).unwrap()).await
}

/// The exit code the command line would end with.
fn exit_code(r: Result<(), CliError>) -> Option<u8> {
    r.err().map(|e| e.exit_code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verbs_run_against_a_remote_server() {
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    let s = Server::with(&[], config).await;
    let wasm = repo_root().join("target/guests/rust/hello-cities.wasm");
    cairn(&s, KEY, &["deploy", wasm.to_str().unwrap()]).await.unwrap();
    cairn(
        &s,
        KEY,
        &[
            "start",
            "HelloCities",
            "--id",
            "c1",
            "--input",
            "\"in\"",
            "--wait",
            "20",
        ],
    )
    .await
    .unwrap();
    assert_eq!(s.status("c1").await, Some(RuntimeStatus::Completed));
    cairn(&s, KEY, &["status", "c1"]).await.unwrap();
    cairn(&s, KEY, &["list", "--top", "1", "--runtime-status", "Completed"])
        .await
        .unwrap();
    cairn(&s, KEY, &["get-history", "c1"]).await.unwrap();
    assert_eq!(exit_code(cairn(&s, KEY, &["rewind", "c1"]).await), Some(exit::CONFLICT));
    assert_eq!(
        exit_code(cairn(&s, KEY, &["terminate", "ghost"]).await),
        Some(exit::NOT_FOUND)
    );
    assert_eq!(exit_code(cairn(&s, "wrong", &["list"]).await), Some(exit::UNAUTHORIZED));
    cairn(&s, KEY, &["restart", "c1", "--same-id"]).await.unwrap();
    s.t.wait("c1").await;
    let row = s.t.hub.store.get_instance("c1").await.unwrap().unwrap();
    assert_eq!(row.input.as_deref(), Some("\"in\""));
    cairn(&s, KEY, &["purge", "c1"]).await.unwrap();
    assert_eq!(s.status("c1").await, None);
    cairn(&s, KEY, &["start", "HelloCities", "--id", "c2", "--wait", "20"])
        .await
        .unwrap();
    cairn(
        &s,
        KEY,
        &[
            "purge",
            "--created-after",
            "2000-01-01T00:00:00Z",
            "--runtime-status",
            "Completed",
        ],
    )
    .await
    .unwrap();
    assert_eq!(s.status("c2").await, None);
    assert!(cairn(&s, KEY, &["delete-task-hub"]).await.is_err(), "needs --yes");
    cairn(&s, KEY, &["delete-task-hub", "--yes"]).await.unwrap();
    assert!(s.t.hub.store.list_functions().await.unwrap().is_empty());
    assert!(matches!(cairn(&s, KEY, &["serve"]).await, Err(CliError::Usage(_))));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_waits_out_a_server_busy_with_other_uploads() {
    use tokio::io::AsyncWriteExt;

    let config = ApiConfig {
        api_key: Some(KEY.into()),
        max_concurrent_deploys: 1,
        ..ApiConfig::default()
    };
    let s = Server::with(&[], config).await;
    let path = repo_root().join("target/guests/rust/hello-cities.wasm");
    let wasm = std::fs::read(&path).unwrap();
    // An upload holds the only slot: headers and half of its body sent.
    let len = wasm.len().to_string();
    let head = crate::build(
        "POST",
        "/api/components",
        &[
            ("Content-Type", "application/wasm"),
            ("x-functions-key", KEY),
            ("Content-Length", &len),
        ],
        b"",
    );
    let start_slow = || async {
        let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        slow.write_all(&head).await.unwrap();
        slow.write_all(&wasm[..wasm.len() / 2]).await.unwrap();
        slow
    };
    let mut slow = start_slow().await;
    let refused = || crate::logs().matches("url=/api/components status=503").count();
    // Barrier: a probe upload is refused once the slot is taken.
    let probe = || {
        s.req(
            "POST",
            "/api/components",
            &[("Content-Type", "application/wasm"), ("x-functions-key", KEY)],
            b"\0asm\x0d\0\x01\0",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut probes = 0u32;
    loop {
        let r = probe().await;
        if r.status == 503 {
            assert!(r.header("retry-after").is_some());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow upload never took the slot"
        );
        // A probe holds the slot while it is refused as a component: the
        // slow upload may have found it taken and been refused (503) itself
        // (answered at once, or only after its whole body, which never
        // comes). Then it starts again: when answered, and every 10 probes.
        probes += 1;
        let mut byte = [0u8; 1];
        let answered = tokio::time::timeout(std::time::Duration::from_millis(50), slow.peek(&mut byte)).await;
        if answered.is_ok() || probes.is_multiple_of(10) {
            slow = start_slow().await;
        }
    }
    // The CLI is refused, waits Retry-After, and tries again.
    let before = refused();
    let cli = tokio::spawn({
        let url = format!("http://{}", s.addr);
        let path = path.clone();
        async move {
            let argv = [
                "cairn",
                "--url",
                &url,
                "--api-key",
                KEY,
                "deploy",
                path.to_str().unwrap(),
            ];
            run(Cli::try_parse_from(argv).unwrap()).await
        }
    });
    // (Its own deadline: under a loaded machine the CLI may take a while.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while refused() == before {
        assert!(std::time::Instant::now() < deadline, "the CLI's upload was not refused");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The slow upload finishes; the CLI's next attempt is deployed.
    slow.write_all(&wasm[wasm.len() / 2..]).await.unwrap();
    let reply = crate::parse_reply(&crate::read_all(&mut slow, std::time::Duration::from_secs(30)).await).unwrap();
    reply.expect(200);
    tokio::time::timeout(std::time::Duration::from_secs(30), cli)
        .await
        .expect("the CLI retried within its Retry-After")
        .unwrap()
        .unwrap();
    let functions = s.t.hub.store.list_functions().await.unwrap();
    assert!(functions.iter().any(|f| f.name == "HelloCities"), "{functions:?}");
    s.stop().await;
}

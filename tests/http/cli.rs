//! `cairn --url`: the management verbs against a running server.

use cairn::api::ApiConfig;
use cairn::cli::{Cli, CliError, run};
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

fn remote_status(r: Result<(), CliError>) -> Option<u16> {
    match r {
        Err(CliError::Remote { status, .. }) => Some(status),
        _ => None,
    }
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
    assert_eq!(remote_status(cairn(&s, KEY, &["rewind", "c1"]).await), Some(412));
    assert_eq!(remote_status(cairn(&s, KEY, &["terminate", "ghost"]).await), Some(404));
    assert_eq!(remote_status(cairn(&s, "wrong", &["list"]).await), Some(401));
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

//! The Durable Functions entity routes and `cairn entity`, local and remote.

use std::time::Duration;

use cairn::api::ApiConfig;
use cairn::cli::{Cli, CliError, run};
use clap::Parser;
use serde_json::json;

use crate::{Server, df};

/// Waits until `GET .../entities/{path}` answers 200 with `want`.
async fn wait_entity(s: &Server, path: &str, want: serde_json::Value) {
    let mut last = String::new();
    for _ in 0..2000 {
        let r = s.get(&df(&format!("/entities/{path}"))).await;
        if r.status == 200 && r.json() == want {
            return;
        }
        last = format!("{} {}", r.status, r.text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("entity {path} never became {want}; last answer {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_routes_answer_with_the_durable_functions_codes() {
    let s = Server::new(&["entities"]).await;
    // Signal: 202; the state reads back as the body.
    s.post(&df("/entities/Counter/c1?op=add"), "5").await.expect(202);
    s.post(&df("/entities/Counter/c1?op=add"), "2").await.expect(202);
    wait_entity(&s, "Counter/c1", json!(7)).await;
    // Unknown entity: 404. `$` is the empty key.
    s.get(&df("/entities/Counter/nobody")).await.expect(404);
    s.post(&df("/entities/Counter/$?op=add"), "1").await.expect(202);
    wait_entity(&s, "Counter/$", json!(1)).await;
    // Bad input: 400 (no operation, a bad name or key, a non-UTF-8 body).
    s.post(&df("/entities/Counter/c1"), "1").await.expect(400);
    s.post(&df("/entities/Coun@ter/c1?op=add"), "1").await.expect(400);
    s.post(&df("/entities/Counter/a%3Fb?op=add"), "1").await.expect(400);
    let r = s
        .req(
            "POST",
            &df("/entities/Counter/c1?op=add"),
            &[("Content-Type", "application/json")],
            &[0xff, 0xfe],
        )
        .await;
    r.expect(400);
    // A cross-site form post (text/plain) is refused before the handler.
    let r = s
        .req(
            "POST",
            &df("/entities/Counter/c1?op=add"),
            &[("Content-Type", "text/plain")],
            b"1",
        )
        .await;
    r.expect(415);
    // A body that is not JSON reaches the entity as a string: Counter
    // refuses a string input, so the count stays.
    s.post(&df("/entities/Counter/c1?op=add"), "three").await.expect(202);
    s.post(&df("/entities/Counter/c1?op=add"), "1").await.expect(202);
    wait_entity(&s, "Counter/c1", json!(8)).await;
    // DELETE signals `delete`: the entity is then gone (404).
    s.delete(&df("/entities/Counter/c1")).await.expect(202);
    for _ in 0..2000 {
        if s.get(&df("/entities/Counter/c1")).await.status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.get(&df("/entities/Counter/c1")).await.expect(404);
    // Query: by name, with state, paged by the continuation header.
    for k in ["x", "y", "z"] {
        s.post(&df(&format!("/entities/Account/{k}?op=deposit")), "10")
            .await
            .expect(202);
    }
    for k in ["x", "y", "z"] {
        wait_entity(&s, &format!("Account/{k}"), json!(10)).await;
    }
    let r = s.get(&df("/entities/Account?fetchState=true&top=2")).await;
    r.expect(200);
    assert_eq!(
        r.json(),
        json!([
            {"entityId": {"name": "Account", "key": "x"}, "lastOperationTime": r.json()[0]["lastOperationTime"], "state": 10},
            {"entityId": {"name": "Account", "key": "y"}, "lastOperationTime": r.json()[1]["lastOperationTime"], "state": 10},
        ])
    );
    let token = r
        .header("x-ms-continuation-token")
        .expect("a continuation token")
        .to_owned();
    let r = s
        .req(
            "GET",
            &df("/entities/Account?top=2"),
            &[("x-ms-continuation-token", &token)],
            b"",
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()[0]["entityId"]["key"], json!("z"));
    assert!(r.json()[0].get("state").is_none(), "no state without fetchState");
    assert!(r.header("x-ms-continuation-token").is_none());
    let all = s.get(&df("/entities")).await;
    all.expect(200);
    assert_eq!(all.json().as_array().unwrap().len(), 4, "{}", all.text());
    s.req("GET", &df("/entities"), &[("x-ms-continuation-token", "zz")], b"")
        .await
        .expect(400);
    s.get(&df("/entities?lastOperationTimeFrom=yesterday"))
        .await
        .expect(400);
    // An idempotency key makes a retried signal count once.
    for _ in 0..3 {
        s.req(
            "POST",
            &df("/entities/Account/x?op=deposit"),
            &[("Content-Type", "application/json"), ("Idempotency-Key", "pay-1")],
            b"5",
        )
        .await
        .expect(202);
    }
    s.post(&df("/entities/Account/x?op=deposit"), "1").await.expect(202);
    wait_entity(&s, "Account/x", json!(16)).await;
    // Entities are not orchestration instances.
    let r = s.get(&df("/instances")).await;
    r.expect(200);
    assert_eq!(r.json(), json!([]));
    // /metrics counts operations per entity and outcome.
    let m = s.get("/metrics").await;
    m.expect(200);
    let text = m.text();
    assert!(
        text.contains(r#"cairn_entity_operations_total{name="Counter",outcome="completed"}"#)
            && text.contains(r#"cairn_entity_operations_total{name="Counter",outcome="failed"}"#)
            && text.contains(r#"cairn_entity_operations_total{name="Account",outcome="completed"}"#),
        "{text}"
    );
    s.stop().await;
}

async fn cairn(args: &[&str]) -> Result<(), CliError> {
    let mut argv = vec!["cairn"];
    argv.extend_from_slice(args);
    run(Cli::try_parse_from(argv).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_entity_verbs_work_locally_and_over_http() {
    let s = Server::with(&["entities"], ApiConfig::default()).await;
    let url = format!("http://{}", s.addr);
    let db = s.t.db();
    let db = db.to_str().unwrap();
    cairn(&["--url", &url, "entity", "signal", "Counter@cli", "add", "4"])
        .await
        .unwrap();
    cairn(&[
        "--db",
        db,
        "entity",
        "signal",
        "Counter@cli",
        "add",
        "3",
        "--idempotency-key",
        "k",
    ])
    .await
    .unwrap();
    cairn(&[
        "--url",
        &url,
        "entity",
        "signal",
        "Counter@cli",
        "add",
        "3",
        "--idempotency-key",
        "k",
    ])
    .await
    .unwrap();
    wait_entity(&s, "Counter/cli", json!(7)).await;
    cairn(&["--url", &url, "entity", "get", "Counter@cli"]).await.unwrap();
    cairn(&["--db", db, "entity", "get", "Counter@cli"]).await.unwrap();
    assert_eq!(
        cairn(&["--url", &url, "entity", "get", "Counter@none"])
            .await
            .err()
            .map(|e| e.exit_code()),
        Some(cairn::cli::exit::NOT_FOUND)
    );
    assert!(matches!(
        cairn(&["--db", db, "entity", "signal", "no-at-sign", "add"]).await,
        Err(CliError::Usage(_))
    ));
    cairn(&["--url", &url, "entity", "list", "Counter", "--fetch-state"])
        .await
        .unwrap();
    cairn(&["--db", db, "entity", "list"]).await.unwrap();
    // Purge removes only entities without state.
    cairn(&["--url", &url, "entity", "signal", "Counter@gone", "delete"])
        .await
        .unwrap();
    cairn(&["--url", &url, "entity", "signal", "Counter@cli", "get"])
        .await
        .unwrap();
    for _ in 0..2000 {
        let row = s.t.hub.store.get_instance("@Counter@gone").await.unwrap();
        let queued = s.t.hub.store.queue_depths().await.unwrap().0;
        if row.is_some_and(|r| r.output.is_none()) && queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cairn(&["--url", &url, "entity", "purge", "Counter"]).await.unwrap();
    assert!(s.t.hub.store.get_instance("@Counter@gone").await.unwrap().is_none());
    assert!(s.t.hub.store.get_instance("@Counter@cli").await.unwrap().is_some());
    cairn(&["--db", db, "entity", "purge"]).await.unwrap();
    wait_entity(&s, "Counter/cli", json!(7)).await;
    s.stop().await;
}

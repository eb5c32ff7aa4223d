//! RELIABILITY items 22–23, scaled to a 2-core machine: a raise-event
//! storm on one instance and a same-id start storm; and item 25, a full disk.

use std::time::Duration;

use cairn::history::Event;
use cairn::store::RuntimeStatus;
use cairn::store::sqlite::SqliteStore;

use crate::{Server, df};

const CLIENTS: usize = 100;
const EVENTS_PER_CLIENT: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_event_storm_delivers_every_event_exactly_once() {
    let s = Server::new(&["features"]).await;
    s.start("WaitForApproval", r#"{"timeout_ms":600000}"#, "storm").await;
    s.wait_status("storm", RuntimeStatus::Running).await;
    let addr = s.addr;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        clients.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for e in 0..EVENTS_PER_CLIENT {
                let body = format!("{{\"client\":{c},\"event\":{e}}}");
                let req = crate::build(
                    "POST",
                    &df("/instances/storm/raiseEvent/Noise"),
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                let raw = crate::exchange(addr, &req).await;
                codes.push(crate::parse_reply(&raw).map_or(0, |r| r.status));
            }
            codes
        }));
    }
    for c in clients {
        let codes = c.await.unwrap();
        assert!(codes.iter().all(|&c| c == 202), "{codes:?}");
    }
    let want = CLIENTS * EVENTS_PER_CLIENT;
    let mut raised = 0;
    for _ in 0..400 {
        let history = s.t.history("storm").await;
        raised = history
            .iter()
            .filter(|(_, e)| matches!(e, Event::EventRaised { name, .. } if name == "Noise"))
            .count();
        if raised >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a duplicate a chance to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let history = s.t.history("storm").await;
    let mut seen = std::collections::HashSet::new();
    for (_, e) in &history {
        if let Event::EventRaised { name, input } = e {
            assert_eq!(name, "Noise");
            assert!(seen.insert(input.clone()), "delivered twice: {input}");
        }
    }
    assert_eq!(seen.len(), want, "EventRaised in history (last count {raised})");
    assert_eq!(s.status("storm").await, Some(RuntimeStatus::Running));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_start_storm_creates_exactly_one_instance() {
    let s = Server::new(&["features"]).await;
    let addr = s.addr;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(tokio::spawn(async move {
            let req = crate::build(
                "POST",
                &df("/orchestrators/WaitForApproval/single"),
                &[("Content-Type", "application/json")],
                br#"{"timeout_ms":600000}"#,
            );
            crate::parse_reply(&crate::exchange(addr, &req).await).map_or(0, |r| r.status)
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 202).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 49, "{codes:?}");
    let list = s.get(&df("/instances")).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    s.wait_status("single", RuntimeStatus::Running).await;
    let starts =
        s.t.history("single")
            .await
            .iter()
            .filter(|(_, e)| matches!(e, Event::ExecutionStarted { .. }))
            .count();
    assert_eq!(starts, 1);
    s.stop().await;
}

/// RELIABILITY.md test 25: a full disk (`PRAGMA max_page_count` on the
/// writer) answers 503 with `Retry-After`, never 500; a refused start leaves
/// nothing behind; the file stays intact; work resumes once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_work_resumes_when_space_returns() {
    let s = Server::new(&["hello-cities"]).await;
    let store = s.t.hub.store.clone();
    // Runs on the writer's connection; a batch that shares the full disk's
    // rollback answers a retryable error, so try again.
    let limit = |pages: i64| {
        let store = store.clone();
        async move {
            let sqlite = store.as_any().downcast_ref::<SqliteStore>().unwrap();
            for _ in 0..100 {
                match sqlite.set_max_pages(pages).await {
                    Ok(_) => return,
                    Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(e) => panic!("setting max_page_count: {e}"),
                }
            }
            panic!("max_page_count could not be set");
        }
    };
    let sqlite = store.as_any().downcast_ref::<SqliteStore>().unwrap();
    let used: i64 = sqlite.page_count().await.unwrap();
    limit(used + 64).await;

    // 64 KiB inputs fill the few free pages quickly.
    let input = serde_json::json!("x".repeat(64 << 10)).to_string();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let id = format!("full-{i}");
        let r = s.post(&df(&format!("/orchestrators/HelloCities/{id}")), &input).await;
        match r.status {
            202 => accepted.push(id),
            503 => {
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
                refused.push(id);
            }
            other => panic!("{id}: {other} {}", r.text()),
        }
    }
    assert!(
        !refused.is_empty(),
        "the disk never filled ({} accepted)",
        accepted.len()
    );
    eprintln!(
        "full disk: {} starts accepted, {} refused with 503",
        accepted.len(),
        refused.len()
    );
    for id in &refused {
        assert!(s.status(id).await.is_none(), "{id} was refused but partly stored");
    }
    let check: String = sqlite.integrity_check().await.unwrap();
    assert_eq!(check, "ok");

    // Space returns: new requests succeed and every accepted instance completes.
    limit(1 << 30).await;
    accepted.push(s.start("HelloCities", "null", "after-space").await);
    for id in &accepted {
        let row = s.t.wait(id).await;
        assert_eq!(row.status, RuntimeStatus::Completed, "{id}");
    }
    s.stop().await;
}

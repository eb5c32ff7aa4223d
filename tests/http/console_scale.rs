//! The console's JSON routes on a task hub of 100,000 instances: every
//! page is one indexed query (server-side paging, counts by status), so
//! each answer stays fast. Prints the measured times.

use std::time::{Duration, Instant};

use cairn::store::{InstanceRow, RuntimeStatus};

use crate::Server;

const INSTANCES: usize = 100_000;

/// Stores `INSTANCES` finished and running rows (no history), 2,000 at a
/// time so that the writer groups them into few transactions.
async fn fill(s: &Server) {
    let store = s.t.hub.store.clone();
    let names = ["HelloCities", "ApprovalWorkflow", "RetryFlaky", "FanOut"];
    let statuses = [
        RuntimeStatus::Completed,
        RuntimeStatus::Completed,
        RuntimeStatus::Completed,
        RuntimeStatus::Failed,
        RuntimeStatus::Running,
        RuntimeStatus::Terminated,
    ];
    let base: u64 = 1_700_000_000_000;
    for chunk in 0..INSTANCES / 2000 {
        let mut tasks = Vec::new();
        for i in chunk * 2000..(chunk + 1) * 2000 {
            let store = store.clone();
            let row = InstanceRow {
                instance_id: format!("load-{i:06}"),
                execution_id: format!("e{i}"),
                name: names[i % names.len()].into(),
                version: "v".into(),
                status: statuses[i % statuses.len()],
                input: Some("null".into()),
                output: None,
                custom_status: None,
                created_at: base + i as u64 * 10,
                updated_at: base + i as u64 * 10,
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

async fn timed(s: &Server, path: &str) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let r = s.get(path).await;
    let took = started.elapsed();
    r.expect(200);
    let v = if path.starts_with("/api/") {
        r.json()
    } else {
        serde_json::Value::Null
    };
    (took, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_stay_fast_with_100k_instances() {
    let s = Server::new(&[]).await;
    let started = Instant::now();
    fill(&s).await;
    eprintln!("stored {INSTANCES} instances in {:?}", started.elapsed());

    let mut report = Vec::new();
    let (t, first) = timed(&s, "/api/console/instances?top=50").await;
    report.push(("first page, no filter", t));
    assert_eq!(first["total"], INSTANCES as u64);
    assert_eq!(first["instances"][0]["instanceId"], "load-099999", "newest first");
    assert_eq!(first["instances"].as_array().unwrap().len(), 50);
    let next = first["next"].as_str().unwrap().to_owned();
    let (t, second) = timed(&s, &format!("/api/console/instances?top=50&after={next}")).await;
    report.push(("second page", t));
    assert_eq!(second["instances"][0]["instanceId"], "load-099949");
    let (t, v) = timed(&s, "/api/console/instances?top=50&status=Failed").await;
    report.push(("status = Failed", t));
    assert_eq!(
        v["counts"]["Failed"],
        (0..INSTANCES).filter(|i| i % 6 == 3).count() as u64
    );
    assert!(
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["runtimeStatus"] == "Failed")
    );
    let (t, v) = timed(&s, "/api/console/instances?top=50&name=RetryFlaky").await;
    report.push(("name = RetryFlaky", t));
    assert_eq!(v["total"], (INSTANCES / 4) as u64);
    let (t, v) = timed(&s, "/api/console/instances?top=50&prefix=load-0123").await;
    report.push(("id prefix load-0123", t));
    assert_eq!(v["total"], 100);
    let (t, v) = timed(
        &s,
        "/api/console/instances?top=50&from=2023-11-14T22:13:20Z&to=2023-11-14T22:13:30Z&status=Completed,Running",
    )
    .await;
    report.push(("created between + 2 statuses", t));
    assert_eq!(v["total"], 1001);
    let (t, _) = timed(&s, "/api/console/components").await;
    report.push(("components (instances per version)", t));
    let (t, _) = timed(&s, "/metrics").await;
    report.push(("/metrics", t));
    for (what, t) in &report {
        eprintln!(
            "console with {INSTANCES} instances: {what}: {:.1} ms",
            t.as_secs_f64() * 1000.0
        );
    }
    for (what, t) in report {
        // Generous for a loaded 2-core CI machine; typical answers take a few ms.
        assert!(t < Duration::from_secs(2), "{what} took {t:?}");
    }
    s.stop().await;
}

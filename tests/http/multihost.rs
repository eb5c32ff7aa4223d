//! Two `cairn serve` processes on one PostgreSQL task hub (issue 11): the
//! Durable Functions HTTP routes and the CLI verbs, mixing hosts per call.
//! Needs `CAIRN_TEST_PG` (a fresh database per test); fails without it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::guest;
use crate::common::pg::TestDatabase;
use crate::common::serve::{ServeProcess, cairn_cli};

const DF: &str = "/runtime/webhooks/durabletask";

fn df(path: &str) -> String {
    format!("{DF}{path}")
}

/// Polls `GET /instances/{id}` on `host` until its status is `want` (30 s).
fn wait_status(host: &ServeProcess, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = host.get(&df(&format!("/instances/{id}")));
        if r.status == 200 || r.status == 202 {
            let v = r.json();
            if v["runtimeStatus"] == want {
                return v;
            }
            assert!(Instant::now() < deadline, "{id} never became {want}: {v}");
        } else {
            assert!(Instant::now() < deadline, "{id}: {} {}", r.status, r.text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `id`'s custom status on `host` is `want`.
fn wait_custom(host: &ServeProcess, id: &str, want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = host.get(&df(&format!("/instances/{id}"))).json();
        if v["customStatus"] == *want {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never showed {want}: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ids of `GET /instances?instanceIdPrefix=prefix` on `host`, sorted.
fn listed(host: &ServeProcess, prefix: &str) -> Vec<(String, String)> {
    let r = host.get(&df(&format!("/instances?instanceIdPrefix={prefix}&top=100")));
    r.expect(200);
    let mut out: Vec<(String, String)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["instanceId"].as_str().unwrap().to_owned(),
                v["runtimeStatus"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn metric(host: &ServeProcess, name: &str) -> f64 {
    let text = host.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

#[test]
fn http_routes_and_cli_verbs_work_on_either_host_of_one_postgres_hub() {
    let db = TestDatabase::new("multihost");
    let a = ServeProcess::start(&db.url, &["--instance-lease", "3s"]);
    let b = ServeProcess::start(&db.url, &["--instance-lease", "3s"]);
    for h in [&a, &b] {
        let v = h.get("/healthz").json();
        assert_eq!(v["backend"], "postgres", "{v}");
    }
    // Deployed on A, known to B (one task hub).
    for c in ["hello-cities", "features", "failing"] {
        a.deploy(&guest(c));
    }
    let names: Vec<String> = b.get("/api/components").json()["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == "HelloCities"), "{names:?}");

    // Start on A, status on B.
    a.post(&df("/orchestrators/HelloCities/mh-hello"), "null").expect(202);
    let s = wait_status(&b, "mh-hello", "Completed");
    assert_eq!(
        s["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
        "{s}"
    );

    // Wait for completion on A while the event is raised on B.
    let waiter = {
        let addr = a.addr;
        std::thread::spawn(move || {
            crate::common::serve::request(
                addr,
                "POST",
                &df("/orchestrators/WaitForApproval/mh-event?timeout=60"),
                Some(r#"{"timeout_ms":600000}"#),
            )
        })
    };
    wait_custom(&b, "mh-event", &json!({"waiting_for": "Approval"}));
    b.post(&df("/instances/mh-event/raiseEvent/Approval"), r#"{"by":"ann"}"#)
        .expect(202);
    let done = waiter.join().unwrap();
    done.expect(200);
    assert_eq!(
        done.json(),
        json!({"approved": {"by": "ann"}}),
        "the waiter on A sees the output"
    );

    // Suspend on A, resume on B, raise on A, finish seen on B.
    b.post(
        &df("/orchestrators/WaitForApproval/mh-suspend"),
        r#"{"timeout_ms":600000}"#,
    )
    .expect(202);
    wait_custom(&a, "mh-suspend", &json!({"waiting_for": "Approval"}));
    a.post(&df("/instances/mh-suspend/suspend?reason=maint"), "")
        .expect(202);
    wait_status(&b, "mh-suspend", "Suspended");
    a.post(&df("/instances/mh-suspend/raiseEvent/Approval"), "true")
        .expect(202);
    b.post(&df("/instances/mh-suspend/resume?reason=back"), "").expect(202);
    let s = wait_status(&a, "mh-suspend", "Completed");
    assert_eq!(s["output"], json!({"approved": true}), "{s}");

    // Terminate on the other host.
    a.post(
        &df("/orchestrators/WaitForApproval/mh-term"),
        r#"{"timeout_ms":600000}"#,
    )
    .expect(202);
    wait_custom(&b, "mh-term", &json!({"waiting_for": "Approval"}));
    b.post(&df("/instances/mh-term/terminate?reason=no"), "").expect(202);
    wait_status(&a, "mh-term", "Terminated");
    // Finished: 410 on either host.
    a.post(&df("/instances/mh-term/raiseEvent/Approval"), "true")
        .expect(410);

    // Rewind on the other host: the failed activity runs as attempt 2.
    a.post(
        &df("/orchestrators/RetriesActivity/mh-rewind"),
        r#"{"succeed_on_attempt":2,"max_attempts":1}"#,
    )
    .expect(202);
    wait_status(&b, "mh-rewind", "Failed");
    b.post(&df("/instances/mh-rewind/rewind?reason=fixed"), "").expect(202);
    let s = wait_status(&a, "mh-rewind", "Completed");
    assert_eq!(s["output"]["attempt"], json!(2), "{s}");

    // List and query on both: the same instances, the same statuses.
    let on_a = listed(&a, "mh-");
    assert_eq!(on_a, listed(&b, "mh-"));
    assert_eq!(on_a.len(), 5, "{on_a:?}");
    let completed = b.get(&df("/instances?runtimeStatus=Completed&instanceIdPrefix=mh-"));
    assert_eq!(completed.json().as_array().unwrap().len(), 4);

    // Purge on one host, gone on the other.
    b.req("DELETE", &df("/instances/mh-hello"), None).expect(200);
    a.get(&df("/instances/mh-hello")).expect(404);

    // Both hosts report their leases (none is required to be held now,
    // but the gauge exists on each).
    for h in [&a, &b] {
        assert!(metric(h, "cairn_instance_leases_held") >= 0.0);
    }

    // The CLI on the same task hub, beside both servers.
    let url = db.url.as_str();
    let cli = |args: &[&str]| {
        let mut argv = vec!["--db", url];
        argv.extend_from_slice(args);
        let (ok, out, err) = cairn_cli(&argv);
        assert!(ok, "cairn {args:?}: {err}");
        out
    };
    cli(&["start", "HelloCities", "--id", "cli-hello"]);
    let s = wait_status(&b, "cli-hello", "Completed");
    assert_eq!(s["output"][0], "Hello Tokyo!");
    let out = cli(&["status", "cli-hello", "--show-output"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runtimeStatus"], "Completed", "{v}");
    let table = cli(&["history", "cli-hello"]);
    assert!(table.contains("ExecutionCompleted"), "{table}");
    let events: Value = serde_json::from_str(&cli(&["get-history", "cli-hello", "-o", "json"])).unwrap();
    assert!(events.as_array().unwrap().len() >= 8, "{events}");

    cli(&[
        "start",
        "WaitForApproval",
        "--id",
        "cli-event",
        "--input",
        r#"{"timeout_ms":600000}"#,
    ]);
    wait_custom(&a, "cli-event", &json!({"waiting_for": "Approval"}));
    cli(&["raise-event", "cli-event", "Approval", "42"]);
    let s = wait_status(&a, "cli-event", "Completed");
    assert_eq!(s["output"], json!({"approved": 42}), "{s}");

    cli(&[
        "start",
        "WaitForApproval",
        "--id",
        "cli-term",
        "--input",
        r#"{"timeout_ms":600000}"#,
    ]);
    wait_custom(&b, "cli-term", &json!({"waiting_for": "Approval"}));
    cli(&["terminate", "cli-term", "--reason", "cli"]);
    wait_status(&a, "cli-term", "Terminated");
    // `start --wait` on a shared hub waits (running an engine of its own
    // beside the servers, as one more host).
    let out = cli(&["start", "HelloCities", "--id", "cli-wait", "--wait", "60"]);
    assert!(out.contains("\"Completed\""), "{out}");
    let listed: Value = serde_json::from_str(&cli(&["list", "--prefix", "cli-", "-o", "json"])).unwrap();
    assert_eq!(listed["instances"].as_array().unwrap().len(), 4, "{listed}");
    cli(&["purge", "cli-hello"]);
    b.get(&df("/instances/cli-hello")).expect(404);

    // Every history is valid.
    for id in ["mh-event", "mh-suspend", "mh-rewind", "cli-event", "cli-wait"] {
        let h = a.get(&df(&format!("/instances/{id}?showHistory=true"))).json();
        let events = h["historyEvents"].as_array().unwrap();
        let ends = events.iter().filter(|e| e["EventType"] == "ExecutionCompleted").count();
        assert_eq!(ends, 1, "{id}: {h}");
    }
}

/// A host stopped with SIGTERM releases its leases: the other host runs
/// its instances at once, without waiting for the lease to expire.
#[test]
fn a_graceful_stop_hands_instances_over_without_waiting_for_expiry() {
    let db = TestDatabase::new("handover");
    // A lease far longer than the test: only a release lets B in early.
    let mut a = ServeProcess::start(&db.url, &["--instance-lease", "10m"]);
    a.deploy(&guest("features"));
    for i in 0..5 {
        a.post(
            &df(&format!("/orchestrators/WaitForApproval/ho-{i}")),
            r#"{"timeout_ms":600000}"#,
        )
        .expect(202);
    }
    for i in 0..5 {
        wait_custom(&a, &format!("ho-{i}"), &json!({"waiting_for": "Approval"}));
    }
    // Hot on A, under A's leases.
    assert!(
        metric(&a, "cairn_instance_leases_held") >= 5.0,
        "{}",
        a.get("/metrics").text()
    );
    let status = a.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "SIGTERM: {status:?}\n{}", a.log());
    let b = ServeProcess::start(&db.url, &["--instance-lease", "10m"]);
    for i in 0..5 {
        b.post(&df(&format!("/instances/ho-{i}/raiseEvent/Approval")), "true")
            .expect(202);
    }
    for i in 0..5 {
        wait_status(&b, &format!("ho-{i}"), "Completed");
    }
    assert_eq!(metric(&b, "cairn_instance_leases_held"), 0.0);
}

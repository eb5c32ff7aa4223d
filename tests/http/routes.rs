//! The Durable Functions routes: every status code of `HTTP-API.md`, the
//! response shapes, instance ids, paging, synchronous waits.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn::engine::EngineConfig;
use cairn::store::RuntimeStatus;
use serde_json::{Value, json};

use crate::common::TestHub;
use crate::{Server, df, enc};

const SLOW: &str = r#"{"timeout_ms":600000}"#;

const CHECK_STATUS_KEYS: [&str; 9] = [
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
    "rewindPostUri",
];

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_answers_the_check_status_payload_built_from_the_host() {
    let s = Server::new(&["hello-cities"]).await;
    let path = df("/orchestrators/HelloCities?taskHub=MyHub&connection=Storage&code=xyz");
    let r = s
        .req(
            "POST",
            &path,
            &[
                ("Host", "localhost:8080"),
                ("X-Forwarded-Host", "evil.test"),
                ("Content-Type", "application/json"),
            ],
            b"",
        )
        .await;
    r.expect(202);
    let v = r.json();
    for k in CHECK_STATUS_KEYS {
        assert!(v[k].is_string(), "{k} missing: {v}");
    }
    let id = v["id"].as_str().unwrap();
    assert!(is_generated_id(id), "{id}");
    let inst = format!("http://localhost:8080{}/instances/{id}", crate::BASE);
    let q = "taskHub=MyHub&connection=Storage&code=xyz";
    assert_eq!(v["statusQueryGetUri"], format!("{inst}?{q}"));
    assert_eq!(v["sendEventPostUri"], format!("{inst}/raiseEvent/{{eventName}}?{q}"));
    assert_eq!(v["terminatePostUri"], format!("{inst}/terminate?reason={{text}}&{q}"));
    assert_eq!(v["purgeHistoryDeleteUri"], format!("{inst}?{q}"));
    assert_eq!(v["restartPostUri"], format!("{inst}/restart?{q}"));
    assert_eq!(v["suspendPostUri"], format!("{inst}/suspend?reason={{text}}&{q}"));
    assert_eq!(v["resumePostUri"], format!("{inst}/resume?reason={{text}}&{q}"));
    assert_eq!(v["rewindPostUri"], format!("{inst}/rewind?reason={{text}}&{q}"));
    assert_eq!(r.header("location"), v["statusQueryGetUri"].as_str());
    assert_eq!(r.header("retry-after"), Some("10"));
    s.t.wait(id).await;
    s.stop().await;

    // Behind a trusted proxy, X-Forwarded-Host / -Proto win.
    let config = cairn::api::ApiConfig {
        trust_forwarded: true,
        ..Default::default()
    };
    let s = Server::with(&["hello-cities"], config).await;
    let r = s
        .req(
            "POST",
            &df("/orchestrators/HelloCities/fwd"),
            &[
                ("Host", "127.0.0.1:7071"),
                ("X-Forwarded-Host", "api.example.org"),
                ("X-Forwarded-Proto", "https"),
            ],
            b"",
        )
        .await;
    r.expect(202);
    assert_eq!(
        r.json()["statusQueryGetUri"],
        format!("https://api.example.org{}/instances/fwd", crate::BASE)
    );
    s.t.wait("fwd").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_codes() {
    let s = Server::new(&["hello-cities", "features"]).await;
    let hash =
        s.t.hub
            .store
            .list_functions()
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.name == "HelloCities")
            .unwrap()
            .hash;
    s.start("WaitForApproval", SLOW, "busy").await;
    s.start("HelloCities", "null", "done").await;
    s.t.wait("done").await;
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            df("/orchestrators/HelloCities/a1"),
            "",
            202,
            "empty body is a null input",
        ),
        (df("/orchestrators/HelloCities/a2"), r#"{"x":[1,2]}"#, 202, "JSON input"),
        (df("/orchestrators/HelloCities/a3"), "{", 400, "bad JSON"),
        (df("/orchestrators/HelloCities/a4"), "'x'", 400, "not JSON"),
        (df("/orchestrators/NoSuchOrchestrator"), "", 400, "unknown function"),
        (
            df("/orchestrators/SayHello"),
            "",
            400,
            "an activity is not an orchestrator",
        ),
        (df("/orchestrators/HelloCities/@bad"), "", 400, "invalid id"),
        (df("/orchestrators/WaitForApproval/busy"), SLOW, 409, "running id"),
        (
            df("/orchestrators/HelloCities/done"),
            "",
            202,
            "a finished id is reused",
        ),
        (
            df(&format!("/orchestrators/HelloCities/v1?version={hash}")),
            "",
            202,
            "known version",
        ),
        (
            df("/orchestrators/HelloCities/v2?version=abc"),
            "",
            400,
            "unknown version",
        ),
        (
            df("/orchestrators/HelloCities/t1?timeout=-1"),
            "",
            400,
            "negative timeout",
        ),
        (df("/orchestrators/HelloCities/t2?timeout=abc"), "", 400, "bad timeout"),
        (
            df("/orchestrators/HelloCities/t3?pollingInterval=x"),
            "",
            400,
            "bad polling interval",
        ),
        (
            df("/orchestrators/HelloCities/t4?timeout=1e300"),
            "",
            200,
            "a huge timeout is capped",
        ),
        (
            df("/orchestrators/HelloCities/t5?timeout=inf"),
            "",
            400,
            "infinite timeout",
        ),
    ];
    for (path, body, want, what) in cases {
        let r = s.post(&path, body).await;
        assert_eq!(r.status, want, "{what}: {path}: {}", r.text());
        r.expect(want);
        if want == 202 {
            assert!(r.json()["id"].is_string(), "{what}");
        }
        if want == 200 {
            assert_eq!(r.json()[0], "Hello Tokyo!", "{what}");
        }
    }
    let unknown = s.post(&df("/orchestrators/NoSuchOrchestrator"), "").await;
    assert!(
        unknown.json()["ExceptionMessage"]
            .as_str()
            .unwrap()
            .contains("NoSuchOrchestrator"),
        "clients report ExceptionMessage: {}",
        unknown.text()
    );
    let conflict = s.post(&df("/orchestrators/WaitForApproval/busy"), SLOW).await;
    assert!(conflict.json()["ExceptionMessage"].as_str().unwrap().contains("busy"));
    s.get(&df("/orchestrators/HelloCities")).await.expect(405);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_id_table() {
    let t = TestHub::with(true, EngineConfig::default(), false).await;
    let s = Server::on(t, &["hello-cities"], Default::default()).await;
    let ascii100 = "x".repeat(100);
    let multi100 = "é".repeat(100);
    let long101 = "y".repeat(101);
    // (raw path segment, expected status, expected id when accepted)
    let cases: Vec<(String, u16, Option<&str>)> = vec![
        (ascii100.clone(), 202, Some(&ascii100)),
        (enc(&multi100), 202, Some(&multi100)),
        (enc("a b:c.d-e_f~g"), 202, Some("a b:c.d-e_f~g")),
        (long101.clone(), 400, None),
        (enc(&"é".repeat(101)), 400, None),
        ("@lead".into(), 400, None),
        ("%40lead".into(), 400, None),
        ("a/b".into(), 400, None),
        ("a%2Fb".into(), 400, None),
        ("a%2fb".into(), 400, None),
        ("a%5Cb".into(), 400, None),
        ("a%23b".into(), 400, None),
        ("a%3Fb".into(), 400, None),
        ("a%00b".into(), 400, None),
        ("a%09b".into(), 400, None),
        ("a%1Fb".into(), 400, None),
        ("a%7Fb".into(), 400, None),
        ("a%C2%85b".into(), 400, None),
        ("a%C2%9Fb".into(), 400, None),
        ("a%FFb".into(), 400, None),
        // Dot segments: URL normalisation would drop them from status URLs.
        (".".into(), 400, None),
        ("..".into(), 400, None),
        ("%2E".into(), 400, None),
        ("%2e%2E".into(), 400, None),
        ("...".into(), 202, Some("...")),
        (".x".into(), 202, Some(".x")),
    ];
    for (seg, want, id) in &cases {
        let r = s.post(&df(&format!("/orchestrators/HelloCities/{seg}")), "").await;
        assert_eq!(r.status, *want, "start {seg}: {}", r.text());
        r.expect(*want);
        if let Some(id) = id {
            assert_eq!(r.json()["id"], *id);
            // The status URL round-trips the id.
            let status = s.get(&df(&format!("/instances/{}", enc(id)))).await;
            status.expect(202);
            assert_eq!(status.json()["instanceId"], *id);
        } else {
            // Every route refuses the id the same way.
            s.get(&df(&format!("/instances/{seg}"))).await.expect(400);
            s.delete(&df(&format!("/instances/{seg}"))).await.expect(400);
            s.post(&df(&format!("/instances/{seg}/terminate")), "")
                .await
                .expect(400);
            s.post(&df(&format!("/instances/{seg}/raiseEvent/E")), "1")
                .await
                .expect(400);
        }
    }
    // A raw backslash is refused too (by the id rule or the request parser).
    let raw = crate::exchange(
        s.addr,
        &crate::build("POST", &df("/orchestrators/HelloCities/a\\b"), &[], b""),
    )
    .await;
    let r = crate::parse_reply(&raw).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // Empty id: generated.
    let r = s.post(&df("/orchestrators/HelloCities/"), "").await;
    r.expect(202);
    assert!(is_generated_id(r.json()["id"].as_str().unwrap()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_route_codes_and_shapes() {
    let s = Server::new(&["hello-cities", "features", "failing"]).await;
    // Completed: 200 and the full shape.
    s.start("HelloCities", r#""in""#, "ok").await;
    s.t.wait("ok").await;
    let r = s.get(&df("/instances/ok")).await;
    r.expect(200);
    let v = r.json();
    for k in [
        "name",
        "instanceId",
        "runtimeStatus",
        "input",
        "customStatus",
        "output",
        "createdTime",
        "lastUpdatedTime",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(v["runtimeStatus"], "Completed");
    assert_eq!(v["input"], "in");
    assert_eq!(v["output"], json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]));
    assert!(v.get("historyEvents").is_none());
    let created = v["createdTime"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 20,
        "yyyy-MM-ddTHH:mm:ssZ: {created}"
    );

    let v = s.get(&df("/instances/ok?showInput=False")).await.json();
    assert_eq!(v["input"], Value::Null);
    let v = s.get(&df("/instances/ok?showHistory=TRUE")).await.json();
    let events = v["historyEvents"].as_array().unwrap();
    assert_eq!(events[0]["EventType"], "ExecutionStarted");
    assert!(events.iter().all(|e| e["Timestamp"].is_string()));
    let completed: Vec<&Value> = events.iter().filter(|e| e["EventType"] == "TaskCompleted").collect();
    assert_eq!(completed.len(), 3);
    assert!(
        completed.iter().all(|e| e.get("Result").is_none()),
        "no results without showHistoryOutput"
    );
    let v = s
        .get(&df("/instances/ok?showHistory=true&showHistoryOutput=True"))
        .await
        .json();
    let results: Vec<&Value> = v["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["EventType"] == "TaskCompleted")
        .map(|e| &e["Result"])
        .collect();
    assert_eq!(
        results,
        [
            &json!("Hello Tokyo!"),
            &json!("Hello Seattle!"),
            &json!("Hello London!")
        ]
    );

    // Running: 202 with Location = the request URL and Retry-After: 5.
    s.start("WaitForApproval", SLOW, "run").await;
    s.wait_status("run", RuntimeStatus::Running).await;
    let path = df("/instances/run?showInput=true");
    let r = s.req("GET", &path, &[("Host", "127.0.0.2:1")], b"").await;
    r.expect(202);
    assert_eq!(r.json()["runtimeStatus"], "Running");
    assert_eq!(r.header("location"), Some(format!("http://127.0.0.2:1{path}").as_str()));
    assert_eq!(r.header("retry-after"), Some("5"));

    // Suspended: 202, output = the reason.
    s.post(&df("/instances/run/suspend?reason=maintenance"), "")
        .await
        .expect(202);
    s.wait_status("run", RuntimeStatus::Suspended).await;
    let r = s.get(&df("/instances/run")).await;
    r.expect(202);
    assert_eq!(r.json()["runtimeStatus"], "Suspended");
    assert_eq!(r.json()["output"], "maintenance");

    // Terminated: 200, output = the reason.
    s.post(&df("/instances/run/terminate?reason=stop+it"), "")
        .await
        .expect(202);
    s.wait_status("run", RuntimeStatus::Terminated).await;
    let r = s.get(&df("/instances/run")).await;
    r.expect(200);
    assert_eq!(r.json()["output"], "stop it");

    // Failed: 200, or 500 on request; output carries the failure.
    s.start("ReturnsError", "null", "bad").await;
    s.t.wait("bad").await;
    let r = s.get(&df("/instances/bad")).await;
    r.expect(200);
    assert_eq!(r.json()["runtimeStatus"], "Failed");
    assert!(
        r.json()["output"].to_string().contains("custom failure"),
        "{}",
        r.text()
    );
    let r = s
        .get(&df("/instances/bad?returnInternalServerErrorOnFailure=true"))
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["runtimeStatus"], "Failed");
    s.get(&df("/instances/ok?returnInternalServerErrorOnFailure=true"))
        .await
        .expect(200);

    // Unknown: 404; malformed flags: 400.
    s.get(&df("/instances/nope")).await.expect(404);
    s.get(&df("/instances/ok?showHistory=yes")).await.expect(400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_completion() {
    let s = Server::new(&["hello-cities", "features", "failing"]).await;
    // Fast: 200 with the raw output.
    let r = s.post(&df("/orchestrators/HelloCities/fast?timeout=20"), "").await;
    r.expect(200);
    assert_eq!(r.json(), json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]));
    // Slow: 202 check-status after the timeout.
    let started = Instant::now();
    let r = s
        .post(
            &df("/orchestrators/WaitForApproval/slow?timeout=1&pollingInterval=0.5"),
            SLOW,
        )
        .await;
    let took = started.elapsed();
    r.expect(202);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(r.json()["id"], "slow");
    assert_eq!(r.header("location"), r.json()["statusQueryGetUri"].as_str());
    assert_eq!(r.header("retry-after"), Some("10"));
    // Failed: the status body.
    let r = s.post(&df("/orchestrators/ReturnsError/f?timeout=20"), "").await;
    r.expect(200);
    assert_eq!(r.json()["runtimeStatus"], "Failed");
    let r = s
        .post(
            &df("/orchestrators/ReturnsError/f2?timeout=20&returnInternalServerErrorOnFailure=true"),
            "",
        )
        .await;
    assert_eq!(r.status, 500);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_event_route() {
    let s = Server::new(&["hello-cities", "features"]).await;
    s.start("WaitForApproval", SLOW, "w").await;
    s.start("HelloCities", "null", "done").await;
    s.t.wait("done").await;
    let ev = df("/instances/w/raiseEvent/Approval");
    let cases: Vec<(String, Option<&str>, &str, u16)> = vec![
        (ev.clone(), Some("text/plain"), r#""x""#, 400),
        (ev.clone(), None, r#""x""#, 400),
        (ev.clone(), Some("application/json"), "{nope", 400),
        (
            df("/instances/ghost/raiseEvent/Approval"),
            Some("application/json"),
            "1",
            404,
        ),
        (
            df("/instances/done/raiseEvent/Approval"),
            Some("application/json"),
            "1",
            410,
        ),
        (
            ev.clone(),
            Some("Application/JSON; charset=utf-8"),
            r#"{"by":"ann"}"#,
            202,
        ),
    ];
    for (path, ctype, body, want) in cases {
        let headers: Vec<(&str, &str)> = ctype.map(|c| ("Content-Type", c)).into_iter().collect();
        let r = s.req("POST", &path, &headers, body.as_bytes()).await;
        assert_eq!(r.status, want, "{path} {ctype:?} {body}: {}", r.text());
        r.expect(want);
    }
    let row = s.t.wait("w").await;
    assert_eq!(crate::common::output(&row), json!({"approved": {"by": "ann"}}));
    // Now finished.
    s.post(&ev, "1").await.expect(410);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_suspend_resume_routes() {
    let s = Server::new(&["features"]).await;
    s.start("WaitForApproval", SLOW, "x").await;
    s.wait_status("x", RuntimeStatus::Running).await;
    for action in ["terminate", "suspend", "resume", "rewind", "restart"] {
        s.post(&df(&format!("/instances/ghost/{action}")), "").await.expect(404);
    }
    s.post(&df("/instances/x/suspend"), "").await.expect(202);
    s.wait_status("x", RuntimeStatus::Suspended).await;
    // A suspended instance buffers events.
    s.post(&df("/instances/x/raiseEvent/Noise"), "1").await.expect(202);
    s.post(&df("/instances/x/Resume?reason=go"), "").await.expect(202);
    s.wait_status("x", RuntimeStatus::Running).await;
    s.post(&df("/instances/x/terminate?reason=bye"), "").await.expect(202);
    s.wait_status("x", RuntimeStatus::Terminated).await;
    for action in ["terminate", "suspend", "resume"] {
        s.post(&df(&format!("/instances/x/{action}")), "").await.expect(410);
    }
    s.post(&df("/instances/x/frobnicate"), "").await.expect(404);
    s.req("PUT", &df("/instances/x/terminate"), &[], b"").await.expect(405);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_and_restart_routes() {
    let s = Server::new(&["hello-cities", "features", "failing"]).await;
    s.start("HelloCities", r#""again""#, "ok").await;
    s.t.wait("ok").await;
    s.start("ReturnsError", "null", "bad").await;
    s.t.wait("bad").await;
    s.start("WaitForApproval", SLOW, "run").await;
    s.wait_status("run", RuntimeStatus::Running).await;

    // Rewind: only Failed instances.
    s.post(&df("/instances/ok/rewind"), "").await.expect(412);
    s.post(&df("/instances/run/rewind"), "").await.expect(412);
    s.post(&df("/instances/bad/rewind?reason=fixed"), "").await.expect(202);

    // Restart: a new id by default, with the same input.
    let r = s.post(&df("/instances/ok/restart"), "").await;
    r.expect(202);
    let new_id = r.json()["id"].as_str().unwrap().to_owned();
    assert!(is_generated_id(&new_id));
    assert_eq!(r.header("location"), r.json()["statusQueryGetUri"].as_str());
    let row = s.t.wait(&new_id).await;
    assert_eq!(row.input.as_deref(), Some(r#""again""#));
    // Same id: fine once finished, 409 while running.
    let r = s
        .post(&df("/instances/ok/restart?restartWithNewInstanceId=False"), "")
        .await;
    r.expect(202);
    assert_eq!(r.json()["id"], "ok");
    s.post(&df("/instances/run/restart?restartWithNewInstanceId=false"), "")
        .await
        .expect(409);
    s.post(&df("/instances/run/restart?restartWithNewInstanceId=true"), "")
        .await
        .expect(202);
    s.post(&df("/instances/run/restart?restartWithNewInstanceId=maybe"), "")
        .await
        .expect(400);
    s.t.wait("ok").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_routes() {
    let s = Server::new(&["hello-cities", "features"]).await;
    for i in 0..3 {
        s.start("HelloCities", "null", &format!("p{i}")).await;
    }
    s.start("WaitForApproval", SLOW, "live").await;
    for i in 0..3 {
        s.t.wait(&format!("p{i}")).await;
    }
    // One.
    s.delete(&df("/instances/ghost")).await.expect(404);
    s.delete(&df("/instances/live")).await.expect(412);
    let r = s.delete(&df("/instances/p0")).await;
    r.expect(200);
    assert_eq!(r.json(), json!({"instancesDeleted": 1}));
    s.get(&df("/instances/p0")).await.expect(404);
    s.delete(&df("/instances/p0")).await.expect(404);
    // By filter.
    s.delete(&df("/instances")).await.expect(400);
    s.delete(&df("/instances?createdTimeFrom=yesterday")).await.expect(400);
    s.delete(&df(
        "/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Bogus",
    ))
    .await
    .expect(400);
    s.delete(&df(
        "/instances?createdTimeFrom=2000-01-01T00:00:00Z&createdTimeTo=2000-01-02T00:00:00Z",
    ))
    .await
    .expect(404);
    s.delete(&df(
        "/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Running",
    ))
    .await
    .expect(404);
    let r = s
        .delete(&df(
            "/instances?createdTimeFrom=2000-01-01T00:00:00.0000000Z&runtimeStatus=Completed,Failed",
        ))
        .await;
    r.expect(200);
    assert_eq!(r.json(), json!({"instancesDeleted": 2}));
    s.delete(&df("/instances?createdTimeFrom=2000-01-01T00:00:00Z"))
        .await
        .expect(404);
    assert_eq!(
        s.status("live").await,
        Some(RuntimeStatus::Running),
        "running instances stay"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_route_filters() {
    let s = Server::new(&["hello-cities", "features"]).await;
    s.start("HelloCities", r#""i""#, "job-1").await;
    s.start("HelloCities", r#""i""#, "job-2").await;
    s.start("WaitForApproval", SLOW, "other").await;
    s.t.wait("job-1").await;
    s.t.wait("job-2").await;
    s.wait_status("other", RuntimeStatus::Running).await;
    let ids = |v: Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["instanceId"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let r = s.get(&df("/instances")).await;
    r.expect(200);
    assert_eq!(ids(r.json()), ["job-1", "job-2", "other"]);
    assert!(r.header("x-ms-continuation-token").is_none_or(str::is_empty));
    assert_eq!(
        r.json()[0]["input"],
        Value::Null,
        "showInput defaults to false in queries"
    );
    assert_eq!(s.get(&df("/instances?showInput=true")).await.json()[0]["input"], "i");
    assert_eq!(
        ids(s.get(&df("/instances?instanceIdPrefix=job-")).await.json()),
        ["job-1", "job-2"]
    );
    assert_eq!(
        ids(s.get(&df("/instances?runtimeStatus=Running")).await.json()),
        ["other"]
    );
    assert_eq!(
        ids(s.get(&df("/instances?runtimeStatus=running,COMPLETED")).await.json()).len(),
        3
    );
    assert!(
        ids(s
            .get(&df("/instances?createdTimeFrom=2999-01-01T00:00:00Z"))
            .await
            .json())
        .is_empty()
    );
    assert_eq!(
        ids(s
            .get(&df(
                "/instances?createdTimeFrom=2000-01-01T00:00:00.123Z&createdTimeTo=2999-01-01T00:00:00Z"
            ))
            .await
            .json())
        .len(),
        3
    );
    s.get(&df("/instances?runtimeStatus=Sleeping")).await.expect(400);
    s.get(&df("/instances?top=0")).await.expect(400);
    s.get(&df("/instances?top=ten")).await.expect(400);
    s.get(&df("/instances?createdTimeTo=soon")).await.expect(400);
    s.req("GET", &df("/instances"), &[("x-ms-continuation-token", "garbage")], b"")
        .await
        .expect(400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_250_instances_in_pages_of_100() {
    // The engine is not running: the instances stay Pending.
    let t = TestHub::with(true, EngineConfig::default(), false).await;
    let s = Server::on(t, &["hello-cities"], Default::default()).await;
    let mut started = HashSet::new();
    for chunk in 0..10 {
        let mut tasks = Vec::new();
        for i in 0..25 {
            let id = format!("page-{:03}", chunk * 25 + i);
            let hub = s.t.hub.clone();
            tasks.push(tokio::spawn(async move {
                hub.start("HelloCities", None, Some(&id), None)
                    .await
                    .unwrap()
                    .to_string()
            }));
        }
        for t in tasks {
            started.insert(t.await.unwrap());
        }
    }
    assert_eq!(started.len(), 250);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let headers: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| ("x-ms-continuation-token", t))
            .into_iter()
            .collect();
        let r = s.req("GET", &df("/instances?top=100"), &headers, b"").await;
        r.expect(200);
        pages += 1;
        let items = r.json();
        let items = items.as_array().unwrap();
        assert!(items.len() <= 100);
        seen.extend(items.iter().map(|v| v["instanceId"].as_str().unwrap().to_owned()));
        match r.header("x-ms-continuation-token").filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 250, "no duplicates");
    assert_eq!(unique, started, "none missing");
    s.stop().await;
}

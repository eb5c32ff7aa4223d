//! The Durable Functions samples: HelloCities, fan-out/fan-in, races.

use serde_json::json;

use crate::common::*;

const SEED_HISTORY: [&str; 16] = [
    "ExecutionStarted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "OrchestratorCompleted",
    "ExecutionCompleted",
];

async fn hello_cities_matches_the_seed_history_hot_and_replayed(lang: &str) {
    let mut runs = Vec::new();
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "hello-cities").await;
        let row = t.run("HelloCities", "null", "hello").await;
        assert_completed(&row);
        assert_eq!(output(&row), json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]));
        assert_eq!(t.types("hello").await, SEED_HISTORY, "hot={hot}");
        let h = t.history("hello").await;
        assert_history_invariants(&h);
        let m = &t.engine.metrics;
        let (replays, resumes) = (
            m.replays.load(std::sync::atomic::Ordering::Relaxed),
            m.hot_resumes.load(std::sync::atomic::Ordering::Relaxed),
        );
        if hot {
            assert_eq!((replays, resumes), (1, 3), "one cold start, then hot resumes only");
        } else {
            assert_eq!((replays, resumes), (4, 0), "every episode replays");
        }
        runs.push(normalized(&h));
        t.stop().await;
    }
    assert_eq!(runs[0], runs[1], "hot and replayed histories are identical");
}

async fn fan_out_fan_in_sums_every_square_once(lang: &str) {
    let mut runs = Vec::new();
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "fan-out-fan-in").await;
        let row = t.run("FanOutFanIn", r#"{"count":50}"#, "fan").await;
        assert_completed(&row);
        let expected: i64 = (0..50i64).map(|i| i * i).sum();
        assert_eq!(output(&row), json!(expected));
        let h = t.history("fan").await;
        assert_history_invariants(&h);
        let scheduled = h.iter().filter(|(_, e)| e.type_name() == "TaskScheduled").count();
        let completed = h.iter().filter(|(_, e)| e.type_name() == "TaskCompleted").count();
        assert_eq!((scheduled, completed), (50, 50));
        // All 50 are scheduled in the first episode (fan-out), before any result.
        let first_completion = h.iter().position(|(_, e)| e.type_name() == "TaskCompleted").unwrap();
        let last_schedule = h.iter().rposition(|(_, e)| e.type_name() == "TaskScheduled").unwrap();
        assert!(last_schedule < first_completion);
        runs.push(t.types("fan").await.len());
        t.stop().await;
    }
}

async fn race_returns_the_first_completion_and_replays_it(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "fan-out-fan-in").await;
        let row = t.run("RaceFirst", r#"{"count":5}"#, "race").await;
        assert_completed(&row);
        // The winner is the first TaskCompleted in history.
        let h = t.history("race").await;
        let first = h
            .iter()
            .find_map(|(_, e)| match e {
                cairn::history::Event::TaskCompleted { result, .. } => Some(result.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            output(&row),
            serde_json::from_str::<serde_json::Value>(&first).unwrap(),
            "hot={hot}"
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_time_and_guids_come_from_history() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("determinism").await;
        let row = t.run("Clocks", "null", "clocks").await;
        assert_completed(&row);
        let out = output(&row);
        let h = t.history("clocks").await;
        let starts: Vec<u64> = h
            .iter()
            .filter(|(_, e)| e.type_name() == "OrchestratorStarted")
            .map(|(ts, _)| *ts)
            .collect();
        let exec = &out["execution_id"];
        let guid = |n: u64| {
            uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                format!("clocks/{}/{n}", exec.as_str().unwrap()).as_bytes(),
            )
            .to_string()
        };
        assert_eq!(out["guid1"], json!(guid(1)), "guid = v5(instance/execution/counter)");
        assert_eq!(out["guid2"], json!(guid(2)));
        assert_eq!(out["echo"]["guid"], out["guid1"]);
        assert_eq!(
            out["time1_ms"],
            json!(starts[0]),
            "time before the activity = episode 1"
        );
        assert_eq!(out["time2_ms"], json!(starts[1]), "time after = episode 2");
        // In forced-replay mode the returned values were computed by a
        // replay of episode 1, and still equal the recorded ones.
        assert_eq!(out["replaying_at_start"], json!(!hot));
        assert_eq!(out["replaying_at_end"], json!(false));
        t.stop().await;
    }
}

crate::in_every_language!(
    hello_cities_matches_the_seed_history_hot_and_replayed,
    fan_out_fan_in_sums_every_square_once,
    race_returns_the_first_completion_and_replays_it
);

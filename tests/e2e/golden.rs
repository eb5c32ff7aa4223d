//! RELIABILITY.md test 8: a golden history corpus (tests/golden/<lang>/
//! <example>.json), captured from the examples in every language, replayed
//! in CI against the components built from today's sources: every recorded
//! action is scheduled again in order and the same output comes out.
//! Guest builds are not reproducible, so this also checks that rebuilding a
//! component (new toolchain, new SDK) keeps old histories replayable.
//!
//! Recapture after an intended change of an example's behaviour:
//! `CAIRN_UPDATE_GOLDEN=1 cargo test --release --test e2e golden`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::common::*;
use cairn::store::RuntimeStatus;

/// (component, orchestrator, input) for every language.
const SCENARIOS: &[(&str, &str, &str)] = &[
    ("hello-cities", "HelloCities", "null"),
    ("fan-out-fan-in", "FanOutFanIn", r#"{"count":5}"#),
    ("human-interaction", "ApprovalWorkflow", r#"{"timeout_ms":30}"#),
    ("monitor", "Monitor", r#"{"job_id":"job-1","interval_ms":10}"#),
    ("sub-orchestration", "ProvisionAll", r#"{"devices":["a","b"]}"#),
    ("retry", "RetryFlaky", "null"),
    ("error-handling", "HandleErrors", r#"{"amount":100}"#),
    (
        "critical-section",
        "TransferFunds",
        r#"{"from":"acct-a","to":"acct-b","amount":1}"#,
    ),
];
const LANGS: &[&str] = &["rust", "python", "js"];

fn corpus_file(lang: &str, component: &str) -> PathBuf {
    repo_root()
        .join("tests/golden")
        .join(lang)
        .join(format!("{component}.json"))
}

/// Runs every scenario and writes its final execution to the corpus.
async fn capture() {
    for lang in LANGS {
        let t = TestHub::new(true).await;
        for (component, orchestrator, input) in SCENARIOS {
            t.deploy_in(lang, component).await;
            let id = format!("golden-{component}");
            let row = t.run(orchestrator, input, &id).await;
            assert!(
                matches!(row.status, RuntimeStatus::Completed | RuntimeStatus::Failed),
                "{lang} {component}: {row:?}"
            );
            let history: Vec<Value> = t
                .history(&id)
                .await
                .iter()
                .map(|(ts, e)| json!({"ts": ts, "event": serde_json::from_str::<Value>(&e.encode()).unwrap()}))
                .collect();
            let doc = json!({
                "orchestrator": orchestrator,
                "instance_id": id,
                "execution_id": row.execution_id,
                "status": row.status.as_str(),
                "input": row.input,
                "output": row.output,
                "history": history,
            });
            let path = corpus_file(lang, component);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
            eprintln!("captured {}", path.display());
        }
        t.stop().await;
    }
}

/// Stores a recorded finished instance (row and history) as if it had run here.
async fn import(store: &cairn::store::Store, doc: &Value, version: &str) {
    let history: Vec<(u64, cairn::history::Event)> = doc["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let event = cairn::history::Event::decode(&h["event"].to_string()).unwrap();
            (h["ts"].as_u64().unwrap(), event)
        })
        .collect();
    let row = cairn::store::InstanceRow {
        instance_id: doc["instance_id"].as_str().unwrap().to_owned(),
        execution_id: doc["execution_id"].as_str().unwrap().to_owned(),
        name: doc["orchestrator"].as_str().unwrap().to_owned(),
        version: version.to_owned(),
        status: RuntimeStatus::parse(doc["status"].as_str().unwrap()).unwrap(),
        input: doc["input"].as_str().map(str::to_owned),
        output: doc["output"].as_str().map(str::to_owned),
        custom_status: None,
        created_at: 0,
        updated_at: 0,
        parent_instance: None,
        history_len: history.len() as u64,
    };
    store.import_instance(row, history).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_histories_of_every_example_replay_identically() {
    if std::env::var_os("CAIRN_UPDATE_GOLDEN").is_some() {
        capture().await;
    }
    let mut replayed = 0;
    for lang in LANGS {
        let t = TestHub::with(true, cairn::engine::EngineConfig::default(), false).await;
        for (component, _, _) in SCENARIOS {
            let path = corpus_file(lang, component);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (capture with CAIRN_UPDATE_GOLDEN=1)", path.display()));
            let doc: Value = serde_json::from_str(&text).unwrap();
            let version = t.deploy_in(lang, component).await;
            import(&t.hub.store, &doc, &version).await;
            let id = doc["instance_id"].as_str().unwrap();
            let report = cairn::upgrade::replay_finished(&t.hub, id, None).await.unwrap();
            assert!(report.is_identical(), "{lang} {component}: {report:#?}");
            replayed += 1;
        }
        t.stop().await;
    }
    assert_eq!(replayed, LANGS.len() * SCENARIOS.len());
}

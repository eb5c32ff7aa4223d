//! Failure documents: what a Failed instance looks like through the API.
//!
//! As in Durable Functions, the `output` of a Failed instance is a string,
//! the failure message (`"<ErrorType>: <Message>"`); the structured failure
//! is `failureDetails` (`{"ErrorType", "Message", "Details"}`), the same
//! object as the `Failure` of the history's `TaskFailed` and
//! `ExecutionCompleted` events, with `Details` as JSON (not JSON text in a
//! string), and the same details an SDK hands an orchestrator that catches
//! the failure.

use cairn::api::ApiConfig;
use serde_json::{Value, json};

use crate::common::{TestHub, output};
use crate::{Server, df};

/// Runs `name` with `input` on a server with `lang`'s `component` and
/// returns its status with history and outputs.
async fn failed_status(lang: &str, component: &str, name: &str, input: &str) -> (Server, Value) {
    let t = TestHub::new(true).await;
    t.deploy_in(lang, component).await;
    let s = Server::on(t, &[], ApiConfig::default()).await;
    s.start(name, input, "failed").await;
    s.t.wait("failed").await;
    let r = s
        .get(&df("/instances/failed?showHistory=true&showHistoryOutput=true"))
        .await;
    r.expect(200);
    let v = r.json();
    (s, v)
}

fn events<'a>(status: &'a Value, event_type: &str) -> Vec<&'a Value> {
    status["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["EventType"] == event_type)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_instance_reads_the_same_in_status_history_and_sdks() {
    for (lang, component, name, input, error_type, message, details) in [
        (
            "rust",
            "failing",
            "UncaughtDetails",
            "null".to_owned(),
            "OutOfStock",
            "sku-42 is out of stock",
            json!({"sku": "sku-42"}),
        ),
        (
            "python",
            "checks",
            "UncaughtActivityFailure",
            json!({"type": "OutOfStock", "message": "sku-42 is out of stock", "details": {"sku": "sku-42"}})
                .to_string(),
            "OutOfStock",
            "sku-42 is out of stock",
            json!({"sku": "sku-42"}),
        ),
        (
            "js",
            "features",
            "Uncaught",
            json!({"kind": "Durable", "message": "card declined"}).to_string(),
            "Declined",
            "card declined",
            json!({"code": 42}),
        ),
    ] {
        let (s, v) = failed_status(lang, component, name, &input).await;
        assert_eq!(v["runtimeStatus"], "Failed", "{lang}: {v}");
        let text = format!("{error_type}: {message}");
        assert_eq!(v["output"], json!(text), "{lang}: output is the failure message: {v}");
        let failure = json!({"ErrorType": error_type, "Message": message, "Details": details});
        assert_eq!(v["failureDetails"], failure, "{lang}: {v}");

        let task_failed = events(&v, "TaskFailed");
        assert_eq!(task_failed.len(), 1, "{lang}: {v}");
        assert_eq!(task_failed[0]["Failure"], failure, "{lang}: Details is JSON in history");
        let completed = events(&v, "ExecutionCompleted");
        assert_eq!(completed[0]["OrchestrationStatus"], "Failed");
        assert_eq!(completed[0]["Failure"], failure, "{lang}: {v}");
        assert_eq!(completed[0]["Result"], json!(text), "{lang}: as in the status");

        // A query returns the same document.
        let list = s.get(&df("/instances?runtimeStatus=Failed")).await.json();
        assert_eq!(list[0]["output"], json!(text), "{lang}: {list}");
        assert_eq!(list[0]["failureDetails"], failure, "{lang}: {list}");

        // 500 on request, with the same body.
        let r = s
            .get(&df("/instances/failed?returnInternalServerErrorOnFailure=true"))
            .await;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["failureDetails"], failure);

        // An orchestrator that catches the same failure sees the same details.
        let caught = match lang {
            "python" => {
                s.start("CatchTyped", &input, "caught").await;
                output(&s.t.wait("caught").await)["details"].clone()
            }
            "js" => {
                s.start("CatchTyped", &format!("[{input}]"), "caught").await;
                output(&s.t.wait("caught").await)[0]["details"].clone()
            }
            _ => details.clone(),
        };
        assert_eq!(caught, details, "{lang}: the SDK sees the same details");
        s.stop().await;
    }
}

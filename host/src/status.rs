//! Status and history documents in the shapes Durable Functions clients
//! read (`HTTP-API.md`), and the history table of `cairn history`.
//!
//! # Failures
//!
//! A failure is rendered the same way everywhere: an object
//! `{"ErrorType", "Message", "Details"}` whose `Details` is the JSON value
//! the function attached (the store keeps it as JSON text; it is parsed
//! here, and text that is not JSON stays a string). It appears as
//! `failureDetails` in the status of a Failed instance and as `Failure` in
//! the history events `TaskFailed`, `TaskRetrying`,
//! `SubOrchestrationInstanceFailed` and `ExecutionCompleted`. The `output`
//! of a Failed instance is, as in Durable Functions, a string: the failure
//! message `"<ErrorType>: <Message>"` (the same text is the `Result` of the
//! failed `ExecutionCompleted` event).

use serde_json::{Map, Value, json};

use crate::clock::{iso, iso_seconds};
use crate::history::{Event, Millis};
use crate::store::{InstanceRow, RuntimeStatus};

/// Which optional parts a status document includes.
#[derive(Debug, Clone, Copy)]
pub struct StatusOptions {
    pub show_input: bool,
    pub show_output: bool,
    pub show_history: bool,
    pub show_history_output: bool,
}

impl Default for StatusOptions {
    fn default() -> Self {
        Self {
            show_input: true,
            show_output: true,
            show_history: false,
            show_history_output: false,
        }
    }
}

fn parse_json(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

/// A failure object with `Details` as JSON: text holding JSON is parsed,
/// other text stays a string, and an absent `Details` stays absent.
fn failure_with_json_details(mut failure: Value) -> Value {
    if let Some(Value::String(text)) = failure.get("Details") {
        let details = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
        failure["Details"] = details;
    }
    if failure.get("Details").is_some_and(Value::is_null)
        && let Value::Object(m) = &mut failure
    {
        m.remove("Details");
    }
    failure
}

/// The failure message Durable Functions puts in `output`: `"<ErrorType>: <Message>"`.
fn failure_message(failure: &Value) -> Option<String> {
    let error_type = failure.get("ErrorType")?.as_str()?;
    let message = failure.get("Message").and_then(Value::as_str).unwrap_or_default();
    Some(format!("{error_type}: {message}"))
}

/// The instance status body.
#[must_use]
pub fn status_json(row: &InstanceRow, history: Option<&[(Millis, Event)]>, opts: StatusOptions) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(row.name));
    m.insert("instanceId".into(), json!(row.instance_id));
    m.insert("runtimeStatus".into(), json!(row.status.as_str()));
    m.insert(
        "input".into(),
        if opts.show_input {
            parse_json(row.input.as_deref())
        } else {
            Value::Null
        },
    );
    m.insert("customStatus".into(), parse_json(row.custom_status.as_deref()));
    let mut output = parse_json(row.output.as_deref());
    let mut failure = None;
    if row.status == RuntimeStatus::Failed
        && let Some(message) = failure_message(&output)
    {
        failure = Some(failure_with_json_details(output));
        output = Value::String(message);
    }
    // Without `show_output` the field is left out: `"output": null` would
    // read as "the instance returned null".
    if opts.show_output {
        m.insert("output".into(), output);
    }
    if let Some(failure) = failure
        && opts.show_output
    {
        m.insert("failureDetails".into(), failure);
    }
    m.insert("createdTime".into(), json!(iso_seconds(row.created_at)));
    m.insert("lastUpdatedTime".into(), json!(iso_seconds(row.updated_at)));
    if opts.show_history
        && let Some(h) = history
    {
        m.insert(
            "historyEvents".into(),
            Value::Array(
                h.iter()
                    .map(|(ts, e)| history_event_json(*ts, e, opts.show_history_output))
                    .collect(),
            ),
        );
    }
    Value::Object(m)
}

/// One history event as a JSON object (`EventType`, `Timestamp`, fields).
/// JSON-text fields (`Input`, `Result`, a failure's `Details`) are embedded
/// as JSON values; `Result` only when `show_output`. A failed
/// `ExecutionCompleted` gets the failure message as its `Result`, as the
/// status `output` does.
#[must_use]
pub fn history_event_json(ts: Millis, event: &Event, show_output: bool) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("Timestamp".into(), json!(iso(ts)));
        for key in ["Input", "Result"] {
            if let Some(Value::String(s)) = m.get(key) {
                let parsed = serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()));
                m.insert(key.into(), parsed);
            }
        }
        let message = m.get_mut("Failure").and_then(|failure| {
            let message = failure_message(failure);
            *failure = failure_with_json_details(failure.take());
            message
        });
        if let Some(message) = message
            && matches!(event, Event::ExecutionCompleted { .. })
            && !m.contains_key("Result")
        {
            m.insert("Result".into(), Value::String(message));
        }
        if !show_output {
            m.remove("Result");
        }
    }
    v
}

/// The history as a text table, like the one in the Durable Functions docs.
#[must_use]
pub fn history_table(instance_id: &str, history: &[(Millis, Event)]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "EventType".into(),
        "Timestamp".into(),
        "Input".into(),
        "Name".into(),
        "Result".into(),
        "Status".into(),
    ]];
    for (ts, e) in history {
        let (input, name, result, status) = match e {
            Event::ExecutionStarted { name, input, .. } => (input.clone(), name.clone(), String::new(), String::new()),
            Event::TaskScheduled { name, input, .. } => (input.clone(), name.clone(), String::new(), String::new()),
            Event::SubOrchestrationInstanceCreated { name, input, .. } => {
                (input.clone(), name.clone(), String::new(), String::new())
            }
            Event::TaskCompleted { result, .. } | Event::SubOrchestrationInstanceCompleted { result, .. } => {
                (String::new(), String::new(), result.clone(), String::new())
            }
            Event::TaskFailed { failure, .. } | Event::SubOrchestrationInstanceFailed { failure, .. } => {
                (String::new(), String::new(), failure.to_string(), String::new())
            }
            Event::EventRaised { name, input } => (input.clone(), name.clone(), String::new(), String::new()),
            Event::TimerCreated { fire_at, .. } | Event::TimerFired { fire_at, .. } => {
                (iso(*fire_at), String::new(), String::new(), String::new())
            }
            Event::ExecutionCompleted {
                status,
                result,
                failure,
            } => (
                String::new(),
                String::new(),
                result
                    .clone()
                    .or_else(|| failure.as_ref().map(ToString::to_string))
                    .unwrap_or_default(),
                format!("{status:?}"),
            ),
            _ => Default::default(),
        };
        rows.push([e.type_name().into(), iso(*ts), input, name, result, status]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count().min(60));
        }
    }
    let mut out = format!("Instance {instance_id}\n");
    for (n, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c: String = c.chars().take(60).collect();
                let pad = widths[i].saturating_sub(c.chars().count());
                c.push_str(&" ".repeat(pad));
                c
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if n == 0 {
            let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("|-{}-|\n", sep.join("-|-")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{CompletionStatus, Failure};

    fn row(status: RuntimeStatus, output: &str) -> InstanceRow {
        InstanceRow {
            instance_id: "i".into(),
            execution_id: "e".into(),
            name: "F".into(),
            version: "v".into(),
            status,
            input: None,
            output: Some(output.into()),
            custom_status: None,
            created_at: 0,
            updated_at: 0,
            parent_instance: None,
            history_len: 0,
        }
    }

    #[test]
    fn a_failed_status_has_the_message_as_output_and_the_failure_with_json_details() {
        let stored = r#"{"ErrorType":"OutOfStock","Message":"gone","Details":"{\"sku\":\"sku-42\"}"}"#;
        let v = status_json(&row(RuntimeStatus::Failed, stored), None, StatusOptions::default());
        assert_eq!(v["output"], json!("OutOfStock: gone"));
        assert_eq!(
            v["failureDetails"],
            json!({"ErrorType": "OutOfStock", "Message": "gone", "Details": {"sku": "sku-42"}})
        );

        // Details that are not JSON stay text; none stay absent.
        let stored = r#"{"ErrorType":"X","Message":"m","Details":"not json"}"#;
        let v = status_json(&row(RuntimeStatus::Failed, stored), None, StatusOptions::default());
        assert_eq!(v["failureDetails"]["Details"], json!("not json"));
        let stored = r#"{"ErrorType":"X","Message":"m","Details":null}"#;
        let v = status_json(&row(RuntimeStatus::Failed, stored), None, StatusOptions::default());
        assert_eq!(v["failureDetails"], json!({"ErrorType": "X", "Message": "m"}));

        // Only Failed instances: a completed output that looks like a failure is an output.
        let v = status_json(&row(RuntimeStatus::Completed, stored), None, StatusOptions::default());
        assert_eq!(v["output"]["ErrorType"], json!("X"));
        assert!(v.get("failureDetails").is_none());
    }

    #[test]
    fn history_failures_have_json_details_and_a_failed_completion_has_the_message_as_result() {
        let failure = Failure {
            error_type: "OutOfStock".into(),
            message: "gone".into(),
            details: Some(r#"{"sku":"sku-42"}"#.into()),
        };
        let expected = json!({"ErrorType": "OutOfStock", "Message": "gone", "Details": {"sku": "sku-42"}});
        let failed = Event::TaskFailed {
            task_id: 0,
            failure: failure.clone(),
        };
        assert_eq!(history_event_json(0, &failed, false)["Failure"], expected);
        let completed = Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            result: None,
            failure: Some(failure),
        };
        let v = history_event_json(0, &completed, true);
        assert_eq!(v["Failure"], expected);
        assert_eq!(v["Result"], json!("OutOfStock: gone"));
        assert!(history_event_json(0, &completed, false).get("Result").is_none());
    }
}

//! Status and history documents in the shapes Durable Functions clients
//! read (`HTTP-API.md`), and the history table of `cairn history`.

use serde_json::{Map, Value, json};

use crate::clock::{iso, iso_seconds};
use crate::history::{Event, Millis};
use crate::store::InstanceRow;

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
    // Without `show_output` the field is left out: `"output": null` would
    // read as "the instance returned null".
    if opts.show_output {
        m.insert("output".into(), parse_json(row.output.as_deref()));
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
/// JSON-text fields (`Input`, `Result`) are embedded as JSON values;
/// `Result` only when `show_output`.
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

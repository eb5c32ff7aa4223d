//! Tables of the command line (`-o table`): the same documents the JSON
//! output prints, laid out for people.

use cairn_client::{ComponentVersion, Description, InstanceStatus, Lock, UpgradeReport};
use serde_json::Value;

use crate::clock::{iso, parse_iso};

/// Widest cell, in characters (the last column is never cut).
const MAX_CELL: usize = 60;

fn cut(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut s: String = one_line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A table with a header row, columns padded to their widest cell.
#[must_use]
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let last = n.saturating_sub(1);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            (0..n)
                .map(|i| {
                    let c = r.get(i).map_or("", String::as_str);
                    if i == last {
                        c.replace('\n', " ")
                    } else {
                        cut(c, MAX_CELL)
                    }
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |r: &[String]| -> String {
        let mut out = String::new();
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    for r in &cells {
        out.push_str(&line(r));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `list`: one instance per line.
#[must_use]
pub fn instances(list: &[InstanceStatus]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.instance_id.clone(),
                s.name.clone(),
                s.runtime_status.clone(),
                s.created_time.clone(),
                s.last_updated_time.clone(),
            ]
        })
        .collect();
    table(&["INSTANCE", "NAME", "STATUS", "CREATED", "UPDATED"], &rows)
}

/// `status`: one field per line.
#[must_use]
pub fn status(s: &InstanceStatus) -> String {
    let mut out = format!(
        "Instance:  {}\nName:      {}\nStatus:    {}\nCreated:   {}\nUpdated:   {}\n",
        s.instance_id, s.name, s.runtime_status, s.created_time, s.last_updated_time
    );
    if !s.input.is_null() {
        out.push_str(&format!("Input:     {}\n", s.input));
    }
    if !s.custom_status.is_null() {
        out.push_str(&format!("Custom:    {}\n", s.custom_status));
    }
    if let Some(o) = &s.output {
        out.push_str(&format!("Output:    {o}\n"));
    }
    if let Some(f) = &s.failure_details {
        out.push_str(&format!("Failure:   {f}\n"));
    }
    if let Some(h) = &s.history_events {
        out.push('\n');
        out.push_str(&history(h));
    }
    out
}

/// A duration for people: `840ms`, `2.5s`, `3m04s`, `2h05m`.
#[must_use]
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

fn failure(v: &Value) -> String {
    let t = v.get("ErrorType").map(text).unwrap_or_default();
    let m = v.get("Message").map(text).unwrap_or_default();
    format!("{t}: {m}")
}

/// The task id an event is about (its own, or the one it completes).
fn task_of(e: &Value) -> Option<u64> {
    ["TaskScheduledId", "TimerId", "EventId"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_u64))
}

/// `history`: every event with its task id, the task's name, attempt,
/// how long the task took (on the event that ends it) and the detail
/// (timer fire times in ISO 8601, failure reasons, results).
#[must_use]
pub fn history(events: &[Value]) -> String {
    use std::collections::HashMap;
    // Task id → (name, time scheduled).
    let mut scheduled: HashMap<u64, (String, Option<i64>)> = HashMap::new();
    let mut attempts: HashMap<u64, u64> = HashMap::new();
    let mut rows = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let kind = e.get("EventType").map(text).unwrap_or_default();
        let at = e.get("Timestamp").and_then(Value::as_str).unwrap_or_default();
        let at_ms = parse_iso(at).and_then(|m| i64::try_from(m).ok());
        let task = task_of(e);
        let mut name = e.get("Name").map(text).unwrap_or_default();
        let mut attempt = String::new();
        let mut took = String::new();
        let detail: String;
        let since = |task: Option<u64>| -> String {
            match (task.and_then(|t| scheduled.get(&t)).and_then(|(_, s)| *s), at_ms) {
                (Some(s), Some(a)) => duration(a - s),
                _ => String::new(),
            }
        };
        match kind.as_str() {
            "TaskScheduled" | "SubOrchestrationInstanceCreated" | "LockRequested" | "EntityOperationCalled" => {
                if kind == "LockRequested" {
                    name = e.get("LockNames").map(text).unwrap_or_default();
                }
                if kind == "EntityOperationCalled" {
                    name = format!(
                        "{} {}",
                        e.get("TargetInstanceId").map(text).unwrap_or_default(),
                        e.get("Operation").map(text).unwrap_or_default()
                    );
                }
                if let Some(t) = task {
                    scheduled.insert(t, (name.clone(), at_ms));
                    attempts.insert(t, 1);
                }
                if kind == "TaskScheduled" {
                    attempt = "1".into();
                }
                detail = match e.get("InstanceId") {
                    Some(child) => format!(
                        "instance {}; input {}",
                        text(child),
                        text(e.get("Input").unwrap_or(&Value::Null))
                    ),
                    None => e.get("Input").map(|v| format!("input {}", text(v))).unwrap_or_default(),
                };
            }
            "TimerCreated" => {
                name = "timer".into();
                if let Some(t) = task {
                    scheduled.insert(t, (name.clone(), at_ms));
                }
                detail = format!("fires at {}", fire_at(e));
            }
            "TimerFired" => {
                name = "timer".into();
                took = since(task);
                detail = format!("due at {}", fire_at(e));
            }
            "TaskRetrying" => {
                name = task
                    .and_then(|t| scheduled.get(&t))
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                let n = e.get("Attempt").and_then(Value::as_u64).unwrap_or(1);
                if let Some(t) = task {
                    attempts.insert(t, n + 1);
                }
                attempt = n.to_string();
                took = since(task);
                let next = e
                    .get("NextAttemptAt")
                    .and_then(Value::as_u64)
                    .map(|m| format!("; attempt {} at {}", n + 1, iso(m)))
                    .unwrap_or_default();
                detail = format!("{}{next}", e.get("Failure").map(failure).unwrap_or_default());
            }
            "TaskCompleted"
            | "TaskFailed"
            | "SubOrchestrationInstanceCompleted"
            | "SubOrchestrationInstanceFailed"
            | "EntityOperationCompleted"
            | "EntityOperationFailed"
            | "LockGranted" => {
                name = task
                    .and_then(|t| scheduled.get(&t))
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                if kind.starts_with("Task") {
                    attempt = task
                        .and_then(|t| attempts.get(&t))
                        .map(ToString::to_string)
                        .unwrap_or_default();
                }
                took = since(task);
                detail = match e.get("Failure") {
                    Some(f) => failure(f),
                    None => e.get("Result").map(text).unwrap_or_default(),
                };
            }
            "ExecutionStarted" | "EventRaised" => {
                detail = e.get("Input").map(|v| format!("input {}", text(v))).unwrap_or_default();
            }
            "ExecutionCompleted" => {
                detail = format!(
                    "{} {}",
                    e.get("OrchestrationStatus").map(text).unwrap_or_default(),
                    e.get("Result").map(text).unwrap_or_default()
                )
                .trim()
                .to_owned();
            }
            "ExecutionTerminated" | "ExecutionSuspended" | "ExecutionResumed" => {
                detail = e.get("Reason").map(text).unwrap_or_default();
            }
            _ => {
                detail = String::new();
            }
        }
        rows.push(vec![
            i.to_string(),
            at.to_owned(),
            kind,
            task.map(|t| t.to_string()).unwrap_or_default(),
            name,
            attempt,
            took,
            detail,
        ]);
    }
    table(
        &["#", "TIME", "EVENT", "TASK", "NAME", "ATTEMPT", "TOOK", "DETAIL"],
        &rows,
    )
}

fn fire_at(e: &Value) -> String {
    e.get("FireAt")
        .and_then(Value::as_u64)
        .map(iso)
        .or_else(|| e.get("FireAt").map(text))
        .unwrap_or_default()
}

/// `describe`: what the instance is, then what it waits for.
#[must_use]
pub fn description(d: &Description) -> String {
    let mut out = format!(
        "Instance:  {}\nName:      {}\nStatus:    {}\nVersion:   {}\nCreated:   {}\nUpdated:   {}\nHistory:   {} events\n",
        d.instance_id, d.name, d.runtime_status, d.version, d.created_time, d.last_updated_time, d.history_events
    );
    if !d.custom_status.is_null() {
        out.push_str(&format!("Custom:    {}\n", d.custom_status));
    }
    if !d.locks_held.is_empty() {
        out.push_str(&format!("Holds:     {}\n", d.locks_held.join(", ")));
    }
    if let Some(n) = &d.note {
        out.push_str(&format!("Note:      {n}\n"));
    }
    if d.waiting_for.is_empty() {
        out.push_str("Waiting for: nothing\n");
        return out;
    }
    out.push_str("Waiting for:\n");
    let rows: Vec<Vec<String>> = d
        .waiting_for
        .iter()
        .map(|w| {
            let mut detail = Vec::new();
            if let Some(f) = &w.fire_at {
                detail.push(format!("fires at {f}"));
            }
            if let Some(c) = &w.child {
                detail.push(format!("instance {c}"));
            }
            if let Some(a) = w.attempt {
                detail.push(format!("attempt {a}"));
            }
            vec![
                format!("  {}", w.kind),
                w.name.clone(),
                w.task_id.map(|t| t.to_string()).unwrap_or_default(),
                w.since.clone().unwrap_or_default(),
                detail.join("; "),
            ]
        })
        .collect();
    out.push_str(&table(&["  KIND", "NAME", "TASK", "SINCE", "DETAIL"], &rows));
    out
}

/// `locks`.
#[must_use]
pub fn locks(list: &[Lock]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.holder.clone().unwrap_or_else(|| "-".into()),
                l.held_since.clone().unwrap_or_default(),
                l.waiting.join(", "),
            ]
        })
        .collect();
    table(&["LOCK", "HOLDER", "SINCE", "WAITING"], &rows)
}

/// `components`.
#[must_use]
pub fn components(list: &[ComponentVersion]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| vec![c.name.clone(), c.kind.clone(), c.hash.clone(), c.deployed_at.clone()])
        .collect();
    table(&["NAME", "KIND", "VERSION", "DEPLOYED"], &rows)
}

/// `upgrade-check`.
#[must_use]
pub fn upgrade(r: &UpgradeReport) -> String {
    let rows: Vec<Vec<String>> = r
        .instances
        .iter()
        .map(|i| {
            vec![
                i.instance_id.clone(),
                i.from_version.clone(),
                i.verdict.clone(),
                match (&i.error_type, &i.message) {
                    (Some(t), Some(m)) => format!("{t}: {m}"),
                    (_, Some(m)) => m.clone(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let mut out = format!("{} against candidate {}\n", r.name, r.candidate);
    out.push_str(&table(&["INSTANCE", "FROM", "VERDICT", "WHY"], &rows));
    out.push_str(&format!("moved: {}\n", r.moved));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(840), "840ms");
        assert_eq!(duration(2_500), "2.5s");
        assert_eq!(duration(184_000), "3m04s");
        assert_eq!(duration(7_500_000), "2h05m");
        assert_eq!(duration(-5), "0ms");
    }

    #[test]
    fn history_rows_carry_task_names_attempts_durations_and_fire_times() {
        let events = vec![
            json!({"EventType": "ExecutionStarted", "Timestamp": "2026-01-01T00:00:00.000Z", "Name": "O", "Input": 1}),
            json!({"EventType": "TaskScheduled", "Timestamp": "2026-01-01T00:00:00.000Z", "EventId": 0, "Name": "Pay", "Input": {"sum": 3}}),
            json!({"EventType": "TaskRetrying", "Timestamp": "2026-01-01T00:00:01.000Z", "TaskScheduledId": 0, "Attempt": 1,
                   "Failure": {"ErrorType": "Declined", "Message": "no"}, "NextAttemptAt": 1_767_225_605_000u64}),
            json!({"EventType": "TaskCompleted", "Timestamp": "2026-01-01T00:00:06.500Z", "TaskScheduledId": 0, "Result": "ok"}),
            json!({"EventType": "TimerCreated", "Timestamp": "2026-01-01T00:00:07.000Z", "EventId": 1, "FireAt": 1_767_225_660_000u64}),
        ];
        let t = history(&events);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("#  TIME"), "{t}");
        assert!(
            lines[2].contains("Pay") && lines[2].contains("input {\"sum\":3}"),
            "{t}"
        );
        assert!(
            lines[3].contains("Declined: no") && lines[3].contains("attempt 2 at 2026-01-01T00:00:05.000Z"),
            "{t}"
        );
        // Completed on the second attempt, 6.5 s after it was scheduled.
        assert!(
            lines[4].contains("Pay") && lines[4].contains(" 2 ") && lines[4].contains("6.5s"),
            "{t}"
        );
        assert!(lines[5].contains("fires at 2026-01-01T00:01:00.000Z"), "{t}");
    }
}

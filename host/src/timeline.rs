//! PURE: an execution's history as a timeline (the console's Gantt chart):
//! every activity, durable HTTP call, timer, sub-orchestration, event wait
//! and critical section as a bar from scheduled to done, with retries and
//! failures. No I/O.
//!
//! Event waits leave no trace in history until the event arrives; the
//! caller passes the waits a probed replay saw ([`EventWait`]), and each
//! is matched with the `EventRaised` that satisfied it in the order the
//! replay engine delivers them (per name, first waiting, first served).
//! Without them, each received event is a point on the chart.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::engine::durable_http::HTTP_ACTIVITY;
use crate::history::{Event, Failure, Millis, TaskId};
use crate::sandbox::probe::EventWait;

/// A failed attempt that was retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    pub attempt: u32,
    pub failed_at: Millis,
    pub next_attempt_at: Millis,
    pub failure: Failure,
}

/// One bar of the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bar {
    /// `activity`, `http`, `timer`, `sub-orchestration`, `event` or `lock`.
    pub kind: &'static str,
    pub task_id: Option<TaskId>,
    pub name: String,
    pub start: Millis,
    /// `None`: not done yet.
    pub end: Option<Millis>,
    /// `pending`, `completed`, `failed`, `fired`, `received`, `released`,
    /// or `abandoned` (still open when the execution ended: a timer that
    /// lost a race, an event never raised).
    pub outcome: &'static str,
    /// Index in history of the event that started the bar.
    pub start_index: Option<usize>,
    /// Index in history of the event that ended it.
    pub end_index: Option<usize>,
    /// Failed attempts that were retried, in order.
    pub retries: Vec<Retry>,
    pub failure: Option<Failure>,
    /// Sub-orchestration: the child's instance id.
    pub child: Option<String>,
    /// Lock: when every lock was held (the wait ends, the section begins).
    pub granted: Option<Millis>,
    /// Timer: when it is due.
    pub fire_at: Option<Millis>,
}

impl Bar {
    fn new(kind: &'static str, task_id: Option<TaskId>, name: String, start: Millis, index: usize) -> Self {
        Self {
            kind,
            task_id,
            name,
            start,
            end: None,
            outcome: "pending",
            start_index: Some(index),
            end_index: None,
            retries: Vec::new(),
            failure: None,
            child: None,
            granted: None,
            fire_at: None,
        }
    }

    fn finish(&mut self, at: Millis, index: usize, outcome: &'static str) {
        self.end = Some(at);
        self.end_index = Some(index);
        self.outcome = outcome;
    }
}

/// The chart of one execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// The execution's first event.
    pub start: Millis,
    /// Its last event.
    pub end: Millis,
    /// When it finished (`ExecutionCompleted`), if it did.
    pub finished: Option<Millis>,
    /// Times of its episodes (`OrchestratorStarted`).
    pub episodes: Vec<Millis>,
    pub bars: Vec<Bar>,
}

/// `METHOD url` of a durable HTTP request's input, else the input.
pub(crate) fn http_label(input: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(input).unwrap_or_default();
    let method = v.get("method").and_then(|m| m.as_str()).unwrap_or("GET");
    match v.get("url").or_else(|| v.get("uri")).and_then(|u| u.as_str()) {
        Some(url) => format!("{method} {url}"),
        None => input.chars().take(80).collect(),
    }
}

/// Builds the timeline of `history` (one execution); `waits` are the event
/// waits of a probed replay, when known.
#[must_use]
pub fn build(history: &[(Millis, Event)], waits: Option<&[EventWait]>) -> Timeline {
    let mut t = Timeline {
        start: history.first().map_or(0, |(ts, _)| *ts),
        end: history.last().map_or(0, |(ts, _)| *ts),
        ..Timeline::default()
    };
    // Task bars by task id, in id order; lock sections by their lock task.
    let mut tasks: BTreeMap<TaskId, Bar> = BTreeMap::new();
    let mut events: Vec<Bar> = Vec::new();
    let mut raised: HashMap<&str, VecDeque<(Millis, usize)>> = HashMap::new();
    for (i, (ts, e)) in history.iter().enumerate() {
        let ts = *ts;
        match e {
            Event::OrchestratorStarted => t.episodes.push(ts),
            Event::TaskScheduled {
                task_id, name, input, ..
            } => {
                let (kind, label) = if name == HTTP_ACTIVITY {
                    ("http", http_label(input))
                } else {
                    ("activity", name.clone())
                };
                tasks.insert(*task_id, Bar::new(kind, Some(*task_id), label, ts, i));
            }
            Event::SubOrchestrationInstanceCreated {
                task_id,
                name,
                instance_id,
                ..
            } => {
                let mut b = Bar::new("sub-orchestration", Some(*task_id), name.clone(), ts, i);
                b.child = Some(instance_id.clone());
                tasks.insert(*task_id, b);
            }
            Event::TimerCreated { task_id, fire_at } => {
                let mut b = Bar::new("timer", Some(*task_id), String::new(), ts, i);
                b.fire_at = Some(*fire_at);
                tasks.insert(*task_id, b);
            }
            Event::LockRequested { task_id, names } => {
                tasks.insert(*task_id, Bar::new("lock", Some(*task_id), names.join(", "), ts, i));
            }
            Event::LockGranted { task_id } => {
                if let Some(b) = tasks.get_mut(task_id) {
                    b.granted = Some(ts);
                }
            }
            Event::LockReleased { lock, .. } => {
                if let Some(b) = tasks.get_mut(lock) {
                    b.finish(ts, i, "released");
                }
            }
            Event::TaskCompleted { task_id, .. } | Event::SubOrchestrationInstanceCompleted { task_id, .. } => {
                if let Some(b) = tasks.get_mut(task_id) {
                    b.finish(ts, i, "completed");
                }
            }
            Event::TaskFailed { task_id, failure } | Event::SubOrchestrationInstanceFailed { task_id, failure } => {
                if let Some(b) = tasks.get_mut(task_id) {
                    b.finish(ts, i, "failed");
                    b.failure = Some(failure.clone());
                }
            }
            Event::TaskRetrying {
                task_id,
                attempt,
                failure,
                next_attempt_at,
            } => {
                if let Some(b) = tasks.get_mut(task_id) {
                    b.retries.push(Retry {
                        attempt: *attempt,
                        failed_at: ts,
                        next_attempt_at: *next_attempt_at,
                        failure: failure.clone(),
                    });
                }
            }
            Event::TimerFired { task_id, .. } => {
                if let Some(b) = tasks.get_mut(task_id) {
                    b.finish(ts, i, "fired");
                }
            }
            Event::EventRaised { name, .. } => {
                if waits.is_some() {
                    raised.entry(name.as_str()).or_default().push_back((ts, i));
                } else {
                    let mut b = Bar::new("event", None, name.clone(), ts, i);
                    b.finish(ts, i, "received");
                    events.push(b);
                }
            }
            Event::ExecutionCompleted { .. } => {
                t.finished = Some(ts);
                // Critical sections end with the execution; whatever else
                // is open is abandoned.
                for b in tasks.values_mut().filter(|b| b.end.is_none()) {
                    let held = b.kind == "lock" && b.granted.is_some();
                    b.finish(ts, i, if held { "released" } else { "abandoned" });
                }
            }
            _ => {}
        }
    }
    for w in waits.unwrap_or_default() {
        let mut b = Bar::new("event", Some(w.task_id), w.name.clone(), w.at, 0);
        b.start_index = None;
        if let Some((ts, i)) = raised.get_mut(w.name.as_str()).and_then(VecDeque::pop_front) {
            // A buffered event (raised before the wait) is taken at once.
            b.finish(ts.max(w.at), i, "received");
        } else if let Some(end) = t.finished {
            b.finish(end, history.len().saturating_sub(1), "abandoned");
        }
        tasks.insert(w.task_id, b);
    }
    // Events nobody waited for (yet): points.
    for (name, left) in raised {
        for (ts, i) in left {
            let mut b = Bar::new("event", None, name.to_owned(), ts, i);
            b.finish(ts, i, "received");
            events.push(b);
        }
    }
    t.bars = tasks.into_values().collect();
    events.sort_by_key(|b| b.start);
    t.bars.extend(events);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CompletionStatus;

    fn f(m: &str) -> Failure {
        Failure::new("TransientError", m)
    }

    #[test]
    fn bars_cover_tasks_retries_failures_and_waits() {
        let h = vec![
            (
                0,
                Event::ExecutionStarted {
                    name: "O".into(),
                    input: "null".into(),
                    execution_id: "e".into(),
                    version: "v".into(),
                    parent: None,
                    carried_events: Vec::new(),
                },
            ),
            (1, Event::OrchestratorStarted),
            (
                1,
                Event::TaskScheduled {
                    task_id: 0,
                    name: "A".into(),
                    input: "1".into(),
                    retry: None,
                },
            ),
            (
                1,
                Event::TaskScheduled {
                    task_id: 1,
                    name: HTTP_ACTIVITY.into(),
                    input: r#"{"method":"POST","url":"http://x/y"}"#.into(),
                    retry: None,
                },
            ),
            (
                1,
                Event::TimerCreated {
                    task_id: 3,
                    fire_at: 50,
                },
            ),
            (
                1,
                Event::LockRequested {
                    task_id: 4,
                    names: vec!["a".into(), "b".into()],
                },
            ),
            (1, Event::OrchestratorCompleted),
            (
                5,
                Event::TaskRetrying {
                    task_id: 0,
                    attempt: 1,
                    failure: f("one"),
                    next_attempt_at: 8,
                },
            ),
            (6, Event::LockGranted { task_id: 4 }),
            (
                7,
                Event::EventRaised {
                    name: "Go".into(),
                    input: "true".into(),
                },
            ),
            (
                10,
                Event::TaskFailed {
                    task_id: 0,
                    failure: f("two"),
                },
            ),
            (
                11,
                Event::TaskCompleted {
                    task_id: 1,
                    result: "{}".into(),
                },
            ),
            (12, Event::OrchestratorStarted),
            (12, Event::LockReleased { task_id: 5, lock: 4 }),
            (12, Event::OrchestratorCompleted),
            (
                12,
                Event::ExecutionCompleted {
                    status: CompletionStatus::Completed,
                    result: Some("1".into()),
                    failure: None,
                },
            ),
        ];
        let waits = [EventWait {
            task_id: 2,
            name: "Go".into(),
            at: 1,
        }];
        let t = build(&h, Some(&waits));
        assert_eq!((t.start, t.end, t.finished), (0, 12, Some(12)));
        assert_eq!(t.episodes, vec![1, 12]);
        let kinds: Vec<(&str, Option<TaskId>)> = t.bars.iter().map(|b| (b.kind, b.task_id)).collect();
        assert_eq!(
            kinds,
            vec![
                ("activity", Some(0)),
                ("http", Some(1)),
                ("event", Some(2)),
                ("timer", Some(3)),
                ("lock", Some(4))
            ]
        );
        let a = &t.bars[0];
        assert_eq!((a.start, a.end, a.outcome), (1, Some(10), "failed"));
        assert_eq!(a.retries.len(), 1);
        assert_eq!(a.retries[0].next_attempt_at, 8);
        assert_eq!(a.failure.as_ref().map(|f| f.message.as_str()), Some("two"));
        assert_eq!(t.bars[1].name, "POST http://x/y");
        assert_eq!(
            (t.bars[2].start, t.bars[2].end, t.bars[2].outcome),
            (1, Some(7), "received")
        );
        assert_eq!(
            (t.bars[3].end, t.bars[3].outcome, t.bars[3].fire_at),
            (Some(12), "abandoned", Some(50))
        );
        let l = &t.bars[4];
        assert_eq!(
            (l.name.as_str(), l.granted, l.end, l.outcome),
            ("a, b", Some(6), Some(12), "released")
        );

        // Without the waits, the event is a point.
        let t = build(&h, None);
        let e = t
            .bars
            .iter()
            .find(|b| b.kind == "event")
            .map(|b| (b.start, b.end, b.task_id));
        assert_eq!(e, Some((7, Some(7), None)));
    }
}

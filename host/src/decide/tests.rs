//! Table-driven tests of the decision core on canned histories: no wasm,
//! no SQL, no clock.

use super::*;
use crate::history::RetryPolicy;

const NOW: Millis = 1_000_000;

fn row(status: RuntimeStatus) -> InstanceRow {
    InstanceRow {
        instance_id: "parent".into(),
        execution_id: "e1".into(),
        name: "Orch".into(),
        version: "v1".into(),
        status,
        input: Some("\"in\"".into()),
        output: None,
        custom_status: None,
        created_at: 1,
        updated_at: 1,
        parent_instance: None,
        history_len: 7,
    }
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        first_interval_ms: 1000,
        backoff_coefficient: 2.0,
        max_interval_ms: None,
        retry_timeout_ms: None,
    }
}

fn child_created(task_id: TaskId, name: &str, retry: Option<RetryPolicy>) -> Event {
    Event::SubOrchestrationInstanceCreated {
        task_id,
        name: name.into(),
        instance_id: format!("child-{task_id}"),
        input: "1".into(),
        retry,
    }
}

fn sched(task_id: TaskId, retry: Option<RetryPolicy>) -> Event {
    Event::TaskScheduled {
        task_id,
        name: "Act".into(),
        input: "null".into(),
        retry,
    }
}

/// Runs `f` with deterministic inputs: `Orch` and `Child` deployed at
/// `v2` / `c1`, execution ids `x1`, `x2`, ...
fn with_inputs<T>(f: impl FnOnce(&mut Inputs<'_>) -> T) -> T {
    let versions: HashMap<String, String> = [
        ("Orch".to_owned(), "v2".to_owned()),
        ("Child".to_owned(), "c1".to_owned()),
    ]
    .into_iter()
    .collect();
    let mut n = 0;
    let mut ids = move || {
        n += 1;
        format!("x{n}")
    };
    let mut inputs = Inputs {
        versions: &versions,
        new_execution_id: &mut ids,
    };
    f(&mut inputs)
}

fn episode(events: Vec<Event>, finish: Option<Finish>) -> EpisodeOutput {
    EpisodeOutput {
        events: events.into_iter().map(|e| (NOW, e)).collect(),
        custom_status: None,
        finish,
        ..EpisodeOutput::default()
    }
}

fn parent_ref(retry: Option<RetryPolicy>, attempt: u32) -> ParentRef {
    ParentRef {
        instance_id: "grandparent".into(),
        execution_id: "g1".into(),
        task_id: 4,
        retry,
        attempt,
        first_scheduled: NOW - 10,
    }
}

fn to(instance: &str, execution: &str, at: Millis, event: Event) -> Outbox {
    Outbox::Message(Message {
        instance_id: instance.into(),
        execution_id: Some(execution.into()),
        visible_at: at,
        event,
    })
}

#[test]
fn statuses_terminal_and_may_run_again() {
    // (status, terminal, may run again)
    let table = [
        (RuntimeStatus::Pending, false, true),
        (RuntimeStatus::Running, false, true),
        (RuntimeStatus::Suspended, false, true),
        (RuntimeStatus::ContinuedAsNew, false, true),
        (RuntimeStatus::Failed, true, true),
        (RuntimeStatus::Completed, true, false),
        (RuntimeStatus::Canceled, true, false),
        (RuntimeStatus::Terminated, true, false),
    ];
    assert_eq!(table.len(), RuntimeStatus::ALL.len());
    for (s, terminal, again) in table {
        assert_eq!(s.is_terminal(), terminal, "{s} terminal");
        assert_eq!(s.may_run_again(), again, "{s} may run again");
        assert_eq!(RuntimeStatus::TERMINAL.contains(&s), terminal);
        assert_eq!(RuntimeStatus::NEVER_AGAIN.contains(&s), !again);
    }
}

#[test]
fn each_new_event_schedules_its_outbox_item() {
    let r = row(RuntimeStatus::Running);
    let started_child = |retry: Option<RetryPolicy>| {
        let child = new_execution(
            "child-2",
            "x1".into(),
            "Child",
            "c1",
            "1",
            Some(ParentRef {
                instance_id: "parent".into(),
                execution_id: "e1".into(),
                task_id: 2,
                retry,
                attempt: 1,
                first_scheduled: NOW,
            }),
            Vec::new(),
            NOW,
        );
        Outbox::StartChild {
            child,
            refused: Message {
                instance_id: "parent".into(),
                execution_id: Some("e1".into()),
                visible_at: NOW,
                event: Event::SubOrchestrationInstanceFailed {
                    task_id: 2,
                    failure: Failure::new(
                        "InstanceExists",
                        "sub-orchestration instance \"child-2\" already exists and is not finished",
                    ),
                },
            },
        }
    };
    let table: Vec<(Event, Option<Outbox>)> = vec![
        (
            sched(0, Some(policy(3))),
            Some(Outbox::WorkItem {
                task_id: 0,
                name: "Act".into(),
                input: "null".into(),
                retry: Some(policy(3)),
                attempt: 1,
            }),
        ),
        (
            Event::TimerCreated {
                task_id: 1,
                fire_at: NOW + 5000,
            },
            Some(to(
                "parent",
                "e1",
                NOW + 5000,
                Event::TimerFired {
                    task_id: 1,
                    fire_at: NOW + 5000,
                },
            )),
        ),
        (
            child_created(2, "Child", Some(policy(2))),
            Some(started_child(Some(policy(2)))),
        ),
        (
            child_created(3, "Missing", None),
            Some(to(
                "parent",
                "e1",
                NOW,
                Event::SubOrchestrationInstanceFailed {
                    task_id: 3,
                    failure: Failure::new("NotFound", "no orchestrator named \"Missing\" is deployed"),
                },
            )),
        ),
        (
            Event::LockRequested {
                task_id: 5,
                names: vec!["a".into(), "b".into()],
            },
            Some(Outbox::AcquireLocks {
                task_id: 5,
                names: vec!["a".into(), "b".into()],
                granted: Event::LockGranted { task_id: 5 },
            }),
        ),
        (
            Event::LockReleased { task_id: 6, lock: 5 },
            Some(Outbox::ReleaseLocks { lock: 5 }),
        ),
        (Event::OrchestratorStarted, None),
        (
            Event::EventRaised {
                name: "e".into(),
                input: "null".into(),
            },
            None,
        ),
    ];
    for (event, want) in table {
        let got = with_inputs(|i| outbox_for(&r, &event, 1, NOW, i));
        assert_eq!(got, want, "for {event:?}");
    }
}

#[test]
fn running_episode_checkpoint() {
    let r = row(RuntimeStatus::Running);
    let out = episode(
        vec![Event::OrchestratorStarted, sched(0, None), Event::OrchestratorCompleted],
        None,
    );
    let cp = with_inputs(|i| checkpoint(&r, vec![11, 12], out, None, NOW, i));
    assert_eq!(cp.status, RuntimeStatus::Running);
    assert_eq!(cp.output, None);
    assert_eq!(cp.expected_history_len, 7);
    assert_eq!(cp.consumed, vec![11, 12]);
    assert_eq!(cp.events.len(), 3);
    assert_eq!(cp.outbox.len(), 1);
}

#[test]
fn how_an_execution_ends() {
    let r = row(RuntimeStatus::Running);
    let failure = Failure::new("Boom", "it broke");
    // (finish, parent, status, output, outbox)
    type Case = (
        Finish,
        Option<ParentRef>,
        RuntimeStatus,
        Option<Option<String>>,
        Vec<Outbox>,
    );
    let table: Vec<Case> = vec![
        (
            Finish::Completed("42".into()),
            None,
            RuntimeStatus::Completed,
            Some(Some("42".into())),
            vec![],
        ),
        (
            Finish::Completed("42".into()),
            Some(parent_ref(None, 1)),
            RuntimeStatus::Completed,
            Some(Some("42".into())),
            vec![to(
                "grandparent",
                "g1",
                NOW,
                Event::SubOrchestrationInstanceCompleted {
                    task_id: 4,
                    result: "42".into(),
                },
            )],
        ),
        (
            Finish::Failed(failure.clone()),
            Some(parent_ref(None, 1)),
            RuntimeStatus::Failed,
            Some(Some(failure_json(&failure))),
            vec![to(
                "grandparent",
                "g1",
                NOW,
                Event::SubOrchestrationInstanceFailed {
                    task_id: 4,
                    failure: failure.clone(),
                },
            )],
        ),
        // The parent's policy allows a second attempt: the child runs again
        // (newest version, original input) after the first interval.
        (
            Finish::Failed(failure.clone()),
            Some(parent_ref(Some(policy(2)), 1)),
            RuntimeStatus::Pending,
            Some(None),
            vec![
                to(
                    "grandparent",
                    "g1",
                    NOW,
                    Event::TaskRetrying {
                        task_id: 4,
                        attempt: 1,
                        failure: failure.clone(),
                        next_attempt_at: NOW + 1000,
                    },
                ),
                Outbox::NextExecution(new_execution(
                    "parent",
                    "x1".into(),
                    "Orch",
                    "v2",
                    "\"in\"",
                    Some(parent_ref(Some(policy(2)), 2)),
                    Vec::new(),
                    NOW + 1000,
                )),
            ],
        ),
        // Attempts exhausted: the failure goes to the parent.
        (
            Finish::Failed(failure.clone()),
            Some(parent_ref(Some(policy(2)), 2)),
            RuntimeStatus::Failed,
            Some(Some(failure_json(&failure))),
            vec![to(
                "grandparent",
                "g1",
                NOW,
                Event::SubOrchestrationInstanceFailed {
                    task_id: 4,
                    failure: failure.clone(),
                },
            )],
        ),
        (
            Finish::Terminated(Some("stop".into())),
            Some(parent_ref(None, 1)),
            RuntimeStatus::Terminated,
            Some(Some("\"stop\"".into())),
            vec![to(
                "grandparent",
                "g1",
                NOW,
                Event::SubOrchestrationInstanceFailed {
                    task_id: 4,
                    failure: Failure::new("Terminated", "sub-orchestration parent was terminated"),
                },
            )],
        ),
        (
            Finish::ContinuedAsNew {
                input: "2".into(),
                carried_events: vec![("E".into(), "1".into())],
            },
            Some(parent_ref(None, 1)),
            RuntimeStatus::ContinuedAsNew,
            None,
            vec![Outbox::NextExecution(new_execution(
                "parent",
                "x1".into(),
                "Orch",
                "v2",
                "2",
                Some(parent_ref(None, 1)),
                vec![("E".into(), "1".into())],
                NOW,
            ))],
        ),
    ];
    for (finish, parent, status, output, outbox) in table {
        let label = format!("{finish:?} with parent {parent:?}");
        // Events of an ending episode schedule nothing.
        let out = episode(vec![sched(9, None)], Some(finish));
        let cp = with_inputs(|i| checkpoint(&r, Vec::new(), out, parent.as_ref(), NOW, i));
        assert_eq!(cp.status, status, "{label}");
        assert_eq!(cp.output, output, "{label}");
        assert_eq!(cp.outbox, outbox, "{label}");
    }
}

#[test]
fn continue_as_new_stays_on_its_version_when_the_name_is_gone() {
    let r = row(RuntimeStatus::Running);
    let out = episode(
        vec![],
        Some(Finish::ContinuedAsNew {
            input: "2".into(),
            carried_events: Vec::new(),
        }),
    );
    let versions = HashMap::new();
    let mut ids = || "x".to_owned();
    let mut inputs = Inputs {
        versions: &versions,
        new_execution_id: &mut ids,
    };
    let cp = checkpoint(&r, Vec::new(), out, None, NOW, &mut inputs);
    match &cp.outbox[..] {
        [Outbox::NextExecution(next)] => assert_eq!(next.version, "v1"),
        other => panic!("unexpected outbox {other:?}"),
    }
}

#[test]
fn versions_needed_names_children_and_own_when_starting_anew() {
    let out = episode(
        vec![
            child_created(1, "B", None),
            child_created(2, "A", None),
            child_created(3, "B", None),
        ],
        None,
    );
    assert_eq!(versions_needed(&out, "Orch"), vec!["A", "B"]);
    let out = episode(vec![], Some(Finish::Completed("1".into())));
    assert!(versions_needed(&out, "Orch").is_empty());
    let out = episode(
        vec![],
        Some(Finish::ContinuedAsNew {
            input: "1".into(),
            carried_events: Vec::new(),
        }),
    );
    assert_eq!(versions_needed(&out, "Orch"), vec!["Orch"]);
}

#[test]
fn activity_outcomes() {
    let item = |attempt: u32, retry: Option<RetryPolicy>| WorkItem {
        id: 1,
        instance_id: "i".into(),
        execution_id: "e".into(),
        task_id: 3,
        name: "Act".into(),
        input: "null".into(),
        retry,
        attempt,
        first_scheduled: NOW - 100,
    };
    let boom = Failure::new("Boom", "no");
    // (item, outcome, message, retry_at)
    let table = vec![
        (
            item(1, None),
            Ok("\"ok\"".to_owned()),
            Event::TaskCompleted {
                task_id: 3,
                result: "\"ok\"".into(),
            },
            None,
        ),
        (
            item(1, Some(policy(3))),
            Ok("1".to_owned()),
            Event::TaskCompleted {
                task_id: 3,
                result: "1".into(),
            },
            None,
        ),
        (
            item(1, None),
            Err(boom.clone()),
            Event::TaskFailed {
                task_id: 3,
                failure: boom.clone(),
            },
            None,
        ),
        (
            item(1, Some(policy(3))),
            Err(boom.clone()),
            Event::TaskRetrying {
                task_id: 3,
                attempt: 1,
                failure: boom.clone(),
                next_attempt_at: NOW + 1000,
            },
            Some(NOW + 1000),
        ),
        (
            item(2, Some(policy(3))),
            Err(boom.clone()),
            Event::TaskRetrying {
                task_id: 3,
                attempt: 2,
                failure: boom.clone(),
                next_attempt_at: NOW + 2000,
            },
            Some(NOW + 2000),
        ),
        (
            item(3, Some(policy(3))),
            Err(boom.clone()),
            Event::TaskFailed {
                task_id: 3,
                failure: boom.clone(),
            },
            None,
        ),
        // Delivered more than max_deliveries (10) times: poison, no retry.
        (
            item(11, Some(policy(100))),
            Err(poison(&item(11, None))),
            Event::TaskFailed {
                task_id: 3,
                failure: poison(&item(11, None)),
            },
            None,
        ),
    ];
    for (item, outcome, message, retry_at) in table {
        let got = activity_outcome(&item, outcome, NOW, 10);
        assert_eq!(got, ActivityOutcome { message, retry_at }, "attempt {}", item.attempt);
    }
    assert!(poison(&item(11, None)).message.contains("10 times"));
}

/// A history that failed: Act(0) completed, child(1) with a retry policy
/// failed its last attempt, Act(2) failed after one retry, timer(3)
/// pending when the failure ended the execution.
fn failed_history() -> Vec<(Millis, Event)> {
    let boom = Failure::new("Boom", "no");
    vec![
        (1, Event::OrchestratorStarted),
        (1, sched(0, None)),
        (1, child_created(1, "Child", Some(policy(2)))),
        (1, sched(2, Some(policy(2)))),
        (
            1,
            Event::TimerCreated {
                task_id: 3,
                fire_at: 99,
            },
        ),
        (1, Event::OrchestratorCompleted),
        (
            2,
            Event::TaskCompleted {
                task_id: 0,
                result: "0".into(),
            },
        ),
        (
            3,
            Event::TaskRetrying {
                task_id: 2,
                attempt: 1,
                failure: boom.clone(),
                next_attempt_at: 5,
            },
        ),
        (
            4,
            Event::SubOrchestrationInstanceFailed {
                task_id: 1,
                failure: boom.clone(),
            },
        ),
        (
            5,
            Event::TaskFailed {
                task_id: 2,
                failure: boom.clone(),
            },
        ),
        (5, Event::OrchestratorStarted),
        (
            5,
            Event::ExecutionCompleted {
                status: crate::history::CompletionStatus::Failed,
                result: None,
                failure: Some(boom),
            },
        ),
        (5, Event::OrchestratorCompleted),
    ]
}

#[test]
fn rewind_plan_reschedules_exactly_what_a_checkpoint_did() {
    let mut r = row(RuntimeStatus::Failed);
    let history = failed_history();
    r.history_len = history.len() as u64;
    let plan = with_inputs(|i| rewind(&r, &history, Some("fixed".into()), NOW, i)).unwrap();
    assert_eq!(plan.expected_history_len, history.len() as u64);
    assert!(
        plan.history.iter().all(|(_, e)| !matches!(
            e,
            Event::TaskFailed { .. } | Event::SubOrchestrationInstanceFailed { .. } | Event::ExecutionCompleted { .. }
        )),
        "failures leave the history"
    );
    assert_eq!(plan.history.len(), history.len() - 3);
    assert_eq!(
        plan.message.event,
        Event::ExecutionRewound {
            reason: Some("fixed".into())
        }
    );
    // The rewound child keeps its parent's retry policy (it was lost
    // when the rewind built its own outbox with `retry: None`).
    let child = plan.outbox.iter().find_map(|o| match o {
        Outbox::StartChild { child, .. } => Some(child),
        _ => None,
    });
    match child.map(|c| &c.started) {
        Some(Event::ExecutionStarted { parent: Some(p), .. }) => assert_eq!(p.retry, Some(policy(2))),
        other => panic!("no child start in the plan: {other:?}"),
    }
    // Act(2) comes back with its attempts still counted; Act(0) is done.
    let work: Vec<(TaskId, u32)> = plan
        .outbox
        .iter()
        .filter_map(|o| match o {
            Outbox::WorkItem { task_id, attempt, .. } => Some((*task_id, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(work, vec![(2, 3)]);
    // The pending timer fires again.
    assert!(plan.outbox.iter().any(|o| matches!(
        o,
        Outbox::Message(Message {
            event: Event::TimerFired { task_id: 3, .. },
            ..
        })
    )));
    assert_eq!(plan.outbox.len(), 3);
}

#[test]
fn rewind_refuses_an_instance_that_is_not_failed() {
    for status in RuntimeStatus::ALL.into_iter().filter(|s| *s != RuntimeStatus::Failed) {
        let r = row(status);
        let got = with_inputs(|i| rewind(&r, &failed_history(), None, NOW, i));
        assert!(matches!(got, Err(StoreError::NotFailed { .. })), "{status}");
    }
}

fn msg(id: i64, execution: Option<&str>, event: Event) -> InboxMessage {
    InboxMessage {
        id,
        execution_id: execution.map(str::to_owned),
        timestamp: 100 + id as Millis,
        event,
    }
}

fn raised(name: &str) -> Event {
    Event::EventRaised {
        name: name.into(),
        input: "null".into(),
    }
}

fn types(messages: &[(Millis, Event)]) -> Vec<&'static str> {
    messages.iter().map(|(_, e)| e.type_name()).collect()
}

#[test]
fn inbox_plans_terminate_suspend_resume() {
    let suspend = Event::ExecutionSuspended { reason: None };
    let resume = Event::ExecutionResumed { reason: None };
    let terminate = Event::ExecutionTerminated {
        reason: Some("stop".into()),
    };

    // Terminate wins over everything in the batch, suspended or not.
    for status in [RuntimeStatus::Running, RuntimeStatus::Suspended] {
        let inbox = [msg(1, None, raised("A")), msg(2, Some("e1"), terminate.clone())];
        assert_eq!(
            plan_inbox(&row(status), &inbox),
            InboxPlan::Terminate {
                reason: Some("stop".into())
            }
        );
    }
    // A terminate addressed to an earlier execution is stale: no effect.
    let inbox = [msg(1, Some("e0"), terminate.clone()), msg(2, None, raised("A"))];
    let InboxPlan::Run { messages, consumed } = plan_inbox(&row(RuntimeStatus::Running), &inbox) else {
        panic!("runs");
    };
    assert_eq!(types(&messages), ["EventRaised"]);
    assert_eq!(consumed, [1, 2], "the stale message is consumed too");

    // Suspended: suspend/resume are recorded, stale ones dropped, the rest wait.
    let inbox = [
        msg(1, None, raised("A")),
        msg(2, None, suspend.clone()),
        msg(3, Some("e0"), raised("old")),
    ];
    let InboxPlan::Suspended { messages, consumed } = plan_inbox(&row(RuntimeStatus::Running), &inbox) else {
        panic!("suspends");
    };
    assert_eq!(types(&messages), ["ExecutionSuspended"]);
    assert_eq!(consumed, [2, 3], "EventRaised A waits in the inbox");

    // Resumed: what waited runs after the resume that released it.
    let inbox = [msg(1, None, raised("A")), msg(2, None, resume.clone())];
    let InboxPlan::Run { messages, consumed } = plan_inbox(&row(RuntimeStatus::Suspended), &inbox) else {
        panic!("runs");
    };
    assert_eq!(types(&messages), ["ExecutionResumed", "EventRaised"]);
    assert_eq!(consumed, [1, 2]);

    // Suspended and resumed in one batch: runs; suspended again: records only.
    let inbox = [
        msg(1, None, suspend.clone()),
        msg(2, None, resume.clone()),
        msg(3, None, raised("A")),
    ];
    assert!(matches!(
        plan_inbox(&row(RuntimeStatus::Running), &inbox),
        InboxPlan::Run { .. }
    ));
    let inbox = [msg(1, None, resume), msg(2, None, suspend), msg(3, None, raised("A"))];
    let InboxPlan::Suspended { consumed, .. } = plan_inbox(&row(RuntimeStatus::Suspended), &inbox) else {
        panic!("stays suspended");
    };
    assert_eq!(consumed, [1, 2]);
}

#[test]
fn wakes_suspended_names_the_resume_and_terminate_events() {
    assert_eq!(
        WAKES_SUSPENDED,
        [
            Event::ExecutionResumed { reason: None }.type_name(),
            Event::ExecutionTerminated { reason: None }.type_name()
        ]
    );
}

mod entities {
    use crate::decide::entity::{EntityEffect, OperationDone, entity_commit, plan_entity, request_for};
    use crate::history::{EntityReply, Event, Failure};
    use crate::ids::EntityId;
    use crate::store::{InboxMessage, Outbox};

    fn request(id: i64, op: &str, from: Option<&str>) -> InboxMessage {
        InboxMessage {
            id,
            execution_id: None,
            timestamp: 0,
            event: Event::EntityRequest {
                request_id: format!("r{id}"),
                operation: op.into(),
                input: "1".into(),
                from: from.map(str::to_owned),
                reply: from.map(|f| EntityReply {
                    instance_id: f.into(),
                    execution_id: "e".into(),
                    task_id: u32::try_from(id).unwrap(),
                }),
            },
        }
    }

    #[test]
    fn a_plan_runs_in_order_parks_behind_the_holder_and_drops_strays() {
        let stray = InboxMessage {
            id: 9,
            execution_id: None,
            timestamp: 0,
            event: Event::EventRaised {
                name: "x".into(),
                input: "null".into(),
            },
        };
        let inbox = [
            request(1, "a", None),
            request(2, "b", Some("o")),
            stray.clone(),
            request(3, "c", Some("p")),
        ];
        // No holder: everything runs, in order.
        let plan = plan_entity(&inbox, None, 10);
        let ran: Vec<i64> = plan.run.iter().map(|r| r.message_id).collect();
        assert_eq!((ran, plan.parked, plan.dropped), (vec![1, 2, 3], vec![], vec![9]));
        // Holder "o": only its request runs; the others wait, in order.
        let plan = plan_entity(&inbox, Some("o"), 10);
        let ran: Vec<i64> = plan.run.iter().map(|r| r.message_id).collect();
        assert_eq!(
            (ran, plan.parked, plan.holder.as_deref()),
            (vec![2], vec![1, 3], Some("o"))
        );
        // A batch limit leaves the rest queued, in order.
        let plan = plan_entity(&inbox, None, 2);
        let ran: Vec<i64> = plan.run.iter().map(|r| r.message_id).collect();
        assert_eq!((ran, plan.dropped), (vec![1, 2], vec![9]));
    }

    #[test]
    fn a_commit_replies_to_callers_and_sends_what_succeeded_operations_sent() {
        let e = EntityId::new("Counter", "k").unwrap();
        let inbox = [request(1, "a", Some("o")), request(2, "b", Some("o"))];
        let plan = plan_entity(&inbox, None, 10);
        let other = EntityId::new("Log", "").unwrap();
        let done = vec![
            OperationDone {
                outcome: Ok("7".into()),
                effects: vec![
                    EntityEffect::Signal {
                        entity: other.clone(),
                        operation: "note".into(),
                        input: "1".into(),
                        scheduled_at: Some(50),
                    },
                    EntityEffect::Start {
                        name: "Missing".into(),
                        input: "null".into(),
                        instance_id: "i".into(),
                    },
                ],
            },
            OperationDone {
                outcome: Err(Failure::new("Boom", "no")),
                effects: Vec::new(),
            },
        ];
        let mut ids = || "x".to_owned();
        let (c, skipped) = entity_commit(&e, plan, Some("7".into()), done, 10, &Default::default(), &mut ids);
        assert_eq!(c.consumed, vec![1, 2]);
        assert_eq!(c.state.as_deref(), Some("7"));
        assert_eq!(
            skipped.len(),
            1,
            "a start of an orchestrator that is not deployed is left out"
        );
        let replies: Vec<&Event> = c
            .outbox
            .iter()
            .filter_map(|o| match o {
                Outbox::Message(m) => Some(&m.event),
                _ => None,
            })
            .collect();
        assert_eq!(
            replies,
            [
                &Event::EntityOperationCompleted {
                    task_id: 1,
                    result: "7".into()
                },
                &Event::EntityOperationFailed {
                    task_id: 2,
                    failure: Failure::new("Boom", "no")
                }
            ]
        );
        let signals: Vec<(&str, u64)> = c
            .outbox
            .iter()
            .filter_map(|o| match o {
                Outbox::ToEntity { name, message } => Some((name.as_str(), message.visible_at)),
                _ => None,
            })
            .collect();
        assert_eq!(signals, [("Log", 50)]);
    }

    #[test]
    fn an_orchestration_call_becomes_a_request_with_its_reply_address() {
        let call = Event::EntityOperationCalled {
            task_id: 4,
            entity: "Counter@k".into(),
            operation: "get".into(),
            input: "null".into(),
        };
        let Some(Outbox::ToEntity { name, message }) = request_for("o", "e1", &call, 5) else {
            panic!("a call is a request to the entity");
        };
        assert_eq!(
            (name.as_str(), message.instance_id.as_str(), message.visible_at),
            ("Counter", "@Counter@k", 5)
        );
        let Event::EntityRequest {
            from,
            reply,
            request_id,
            ..
        } = message.event
        else {
            panic!("not a request")
        };
        assert_eq!(from.as_deref(), Some("o"));
        assert_eq!(request_id, "o:e1:4");
        assert_eq!(
            reply,
            Some(EntityReply {
                instance_id: "o".into(),
                execution_id: "e1".into(),
                task_id: 4
            })
        );
        let bad = Event::EntityOperationCalled {
            task_id: 4,
            entity: "no-at".into(),
            operation: "get".into(),
            input: "null".into(),
        };
        assert!(request_for("o", "e1", &bad, 5).is_none());
    }
}

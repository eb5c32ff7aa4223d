//! Table-driven tests of the pure replay engine.

use super::*;

fn started(name: &str) -> Event {
    Event::ExecutionStarted {
        name: name.into(),
        input: "null".into(),
        execution_id: "e1".into(),
        version: "v1".into(),
        parent: None,
        carried_events: Vec::new(),
    }
}

fn sched(task_id: TaskId, name: &str) -> Event {
    Event::TaskScheduled {
        task_id,
        name: name.into(),
        input: "null".into(),
        retry: None,
    }
}

fn done(task_id: TaskId, result: &str) -> Event {
    Event::TaskCompleted {
        task_id,
        result: result.into(),
    }
}

/// Runs a "hello cities" style guest (sequential activities) against the
/// state until it blocks or returns; returns the results it saw.
fn run_sequence(r: &mut Replay, names: &[&str]) -> Result<Option<Vec<String>>, Failure> {
    let mut out = Vec::new();
    for n in names {
        let t = r.schedule_activity(n, "null", None)?;
        match r.await_task(t)? {
            Wait::Ready(v) => out.push(v?),
            Wait::Blocked => {
                r.check_blocked()?;
                return Ok(None);
            }
        }
    }
    Ok(Some(out))
}

fn history_of(events: Vec<(Millis, Event)>) -> Vec<(Millis, Event)> {
    events
}

/// A history in which SayHello(0) completed and SayHello(1) is pending.
fn partial_history() -> Vec<(Millis, Event)> {
    history_of(vec![
        (1, started("HelloCities")),
        (2, Event::OrchestratorStarted),
        (2, sched(0, "SayHello")),
        (2, Event::OrchestratorCompleted),
        (3, done(0, "\"Hello Tokyo!\"")),
        (4, Event::OrchestratorStarted),
        (4, sched(1, "SayHello")),
        (4, Event::OrchestratorCompleted),
    ])
}

#[test]
fn fresh_start_schedules_first_activity_and_blocks() {
    let mut r = Replay::from_history("i", &[]);
    r.begin_episode(10, [(9, started("HelloCities"))]);
    assert!(r.is_started());
    assert_eq!(run_sequence(&mut r, &["SayHello", "SayHello"]), Ok(None));
    let out = r.take_episode(None);
    let types: Vec<_> = out.events.iter().map(|(_, e)| e.type_name()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "OrchestratorStarted",
            "TaskScheduled",
            "OrchestratorCompleted"
        ]
    );
    assert_eq!(r.history_len(), 4);
}

#[test]
fn replay_of_partial_history_appends_only_new_events() {
    let h = partial_history();
    let mut r = Replay::from_history("i", &h);
    r.begin_episode(20, [(19, done(1, "\"Hello Seattle!\""))]);
    assert!(r.is_replaying());
    let seen = run_sequence(&mut r, &["SayHello", "SayHello", "SayHello"]);
    assert_eq!(seen, Ok(None));
    assert!(!r.is_replaying());
    let out = r.take_episode(None);
    let types: Vec<_> = out.events.iter().map(|(_, e)| e.type_name()).collect();
    assert_eq!(
        types,
        [
            "TaskCompleted",
            "OrchestratorStarted",
            "TaskScheduled",
            "OrchestratorCompleted"
        ]
    );
    assert_eq!(r.history_len(), h.len() as u64 + 4);
}

#[test]
fn duplicate_and_stray_completions_are_filtered() {
    let h = partial_history();
    let r = Replay::from_history("i", &h);
    let cases = [
        (done(0, "\"again\""), false, "duplicate completion of task 0"),
        (done(7, "\"x\""), false, "completion of a task never scheduled"),
        (
            Event::TimerFired { task_id: 1, fire_at: 0 },
            false,
            "timer fired for an activity task",
        ),
        (done(1, "\"Hello Seattle!\""), true, "completion of the pending task"),
        (started("Again"), false, "second ExecutionStarted"),
    ];
    for (event, accepted, why) in cases {
        assert_eq!(r.accepts(&event), accepted, "{why}");
    }
    let mut r = Replay::from_history("i", &h);
    r.begin_episode(20, [(19, done(0, "\"dup\"")), (19, done(1, "\"ok\""))]);
    let out = r.take_episode(None);
    assert_eq!(
        out.events.len(),
        3,
        "the duplicate never reaches history: {:?}",
        out.events
    );
}

#[test]
fn non_determinism_of_each_kind_names_both_sides() {
    let h = partial_history();
    type Guest = fn(&mut Replay) -> Result<(), Failure>;
    let cases: [(&str, Guest, &[&str]); 5] = [
        (
            "renamed activity",
            |r| run_sequence(r, &["SayHi"]).map(drop),
            &["task 0", "activity \"SayHello\"", "activity \"SayHi\""],
        ),
        (
            "timer instead of activity",
            |r| r.create_timer(5).map(drop),
            &["task 0", "activity \"SayHello\"", "a timer"],
        ),
        (
            "event wait instead of activity",
            |r| r.wait_for_event("Approval").map(drop),
            &["task 0", "waits for event \"Approval\""],
        ),
        (
            "removed await: stops early",
            |r| {
                let t = r.create_timer(1_000)?;
                let _ = t;
                Ok(())
            },
            &["a timer"],
        ),
        (
            "skipped second call",
            |r| {
                let t = r.schedule_activity("SayHello", "null", None)?;
                assert!(matches!(r.await_task(t)?, Wait::Ready(_)));
                let t2 = r.wait_for_event("x")?;
                assert_eq!(r.await_task(t2)?, Wait::Blocked);
                r.check_blocked()
            },
            &["task 1", "activity \"SayHello\""],
        ),
    ];
    for (why, guest, needles) in cases {
        let mut r = Replay::from_history("i", &h);
        r.begin_episode(20, []);
        let err = guest(&mut r).err().or_else(|| r.check_blocked().err());
        let err = err.unwrap_or_else(|| panic!("{why}: no non-determinism detected"));
        assert_eq!(err.error_type, NON_DETERMINISM, "{why}");
        for n in needles {
            assert!(err.message.contains(n), "{why}: {:?} lacks {n:?}", err.message);
        }
        match r.finish(Ok("null".into())) {
            Finish::Failed(f) => assert_eq!(f.error_type, NON_DETERMINISM, "{why}"),
            other => panic!("{why}: {other:?}"),
        }
    }
}

#[test]
fn current_time_follows_the_episode_that_delivered_the_result() {
    let h = partial_history();
    let mut r = Replay::from_history("i", &h);
    r.begin_episode(50, [(45, done(1, "\"Hello Seattle!\""))]);
    assert_eq!(r.current_time(), 2, "first episode");
    let t0 = r.schedule_activity("SayHello", "null", None).ok();
    assert_eq!(t0, Some(0));
    assert!(matches!(r.await_task(0), Ok(Wait::Ready(_))));
    assert_eq!(r.current_time(), 4, "result of task 0 arrived before episode 2");
    assert!(r.is_replaying());
    assert!(r.schedule_activity("SayHello", "null", None).is_ok());
    assert!(matches!(r.await_task(1), Ok(Wait::Ready(_))));
    assert_eq!(r.current_time(), 50);
    assert!(!r.is_replaying());
}

#[test]
fn await_any_picks_the_first_completion_in_history_order() {
    let mut r = Replay::from_history("i", &[]);
    r.begin_episode(1, [(1, started("Race"))]);
    let a = r.schedule_activity("A", "1", None).unwrap_or(99);
    let b = r.create_timer(100).unwrap_or(99);
    assert_eq!(r.await_any(&[a, b]), Ok(Wait::Blocked));
    let first = r.take_episode(None);
    r.begin_episode(
        200,
        [
            (
                150,
                Event::TimerFired {
                    task_id: b,
                    fire_at: 100,
                },
            ),
            (160, done(a, "\"late\"")),
        ],
    );
    assert_eq!(r.await_any(&[a, b]), Ok(Wait::Ready(b)));
    let second = r.take_episode(None);

    // The same decision on cold replay of that history.
    let history: Vec<_> = first.events.into_iter().chain(second.events).collect();
    let mut cold = Replay::from_history("i", &history);
    cold.begin_episode(300, []);
    let a2 = cold.schedule_activity("A", "1", None).unwrap_or(99);
    let b2 = cold.create_timer(100).unwrap_or(99);
    assert_eq!(cold.await_any(&[a2, b2]), Ok(Wait::Ready(b2)));
    assert!(cold.is_replaying());
}

#[test]
fn events_raised_before_the_wait_are_buffered_in_order() {
    let mut r = Replay::from_history("i", &[]);
    let raise = |p: &str| Event::EventRaised {
        name: "Approval".into(),
        input: p.into(),
    };
    r.begin_episode(1, [(1, started("Human")), (1, raise("1")), (1, raise("2"))]);
    let t1 = r.wait_for_event("Approval").unwrap_or(99);
    let t2 = r.wait_for_event("Approval").unwrap_or(99);
    let t3 = r.wait_for_event("Approval").unwrap_or(99);
    assert_eq!(r.await_task(t1), Ok(Wait::Ready(Ok("1".into()))));
    assert_eq!(r.await_task(t2), Ok(Wait::Ready(Ok("2".into()))));
    assert_eq!(r.await_task(t3), Ok(Wait::Blocked));
    r.take_episode(None);
    r.begin_episode(5, [(4, raise("3"))]);
    assert_eq!(r.await_task(t3), Ok(Wait::Ready(Ok("3".into()))));
}

#[test]
fn guids_are_stable_per_instance_and_execution() {
    let mut a = Replay::from_history("i", &[(0, started("X"))]);
    let mut b = Replay::from_history("i", &[(0, started("X"))]);
    let ga = (a.new_guid(), a.new_guid());
    assert_eq!(ga, (b.new_guid(), b.new_guid()));
    assert_ne!(ga.0, ga.1);
    let mut c = Replay::from_history("j", &[(0, started("X"))]);
    assert_ne!(c.new_guid(), ga.0);
}

#[test]
fn continue_as_new_carries_unprocessed_events_when_asked() {
    let mut r = Replay::from_history("i", &[]);
    r.begin_episode(
        1,
        [
            (1, started("Monitor")),
            (
                1,
                Event::EventRaised {
                    name: "poke".into(),
                    input: "7".into(),
                },
            ),
        ],
    );
    r.continue_as_new("{\"n\":1}".into(), true);
    let finish = r.finish(Ok("null".into()));
    assert_eq!(
        finish,
        Finish::ContinuedAsNew {
            input: "{\"n\":1}".into(),
            carried_events: vec![("poke".into(), "7".into())]
        }
    );
    let out = r.take_episode(Some(finish));
    let types: Vec<_> = out.events.iter().map(|(_, e)| e.type_name()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "EventRaised",
            "OrchestratorStarted",
            "OrchestratorCompleted",
            "ExecutionCompleted"
        ]
    );
}

fn sched_with(task_id: TaskId, name: &str, input: &str) -> Event {
    Event::TaskScheduled {
        task_id,
        name: name.into(),
        input: input.into(),
        retry: None,
    }
}

#[test]
fn a_changed_activity_input_is_noted_but_not_fatal() {
    let history = vec![
        (1, started("HelloCities")),
        (2, Event::OrchestratorStarted),
        (2, sched_with(0, "SayHello", "\"Tokyo\"")),
        (2, Event::OrchestratorCompleted),
        (3, done(0, "\"Hello Tokyo!\"")),
        (4, Event::OrchestratorStarted),
        (4, sched_with(1, "SayHello", "{\"city\":\"Seattle\",\"n\":1}")),
        (4, Event::OrchestratorCompleted),
    ];
    // Same inputs (an object with its keys in another order is the same
    // JSON value): nothing noted.
    let mut r = Replay::from_history("i", &history);
    r.begin_episode(5, []);
    let t0 = r.schedule_activity("SayHello", "\"Tokyo\"", None).unwrap();
    assert_eq!(r.await_task(t0).unwrap(), Wait::Ready(Ok("\"Hello Tokyo!\"".into())));
    r.schedule_activity("SayHello", "{ \"n\": 1, \"city\": \"Seattle\" }", None)
        .unwrap();
    r.check_blocked().unwrap();
    assert_eq!(r.input_change(), None);

    // Cities reordered: the recorded result is still returned (the engine
    // tolerates it), and the first change is described.
    let mut r = Replay::from_history("i", &history);
    r.begin_episode(5, []);
    let t0 = r.schedule_activity("SayHello", "\"Seattle\"", None).unwrap();
    assert_eq!(r.await_task(t0).unwrap(), Wait::Ready(Ok("\"Hello Tokyo!\"".into())));
    r.schedule_activity("SayHello", "\"Tokyo\"", None).unwrap();
    r.check_blocked().unwrap();
    assert_eq!(r.fatal(), None);
    let change = r.input_change().unwrap();
    assert_eq!(change.task_id, 0);
    assert_eq!(change.recorded, "\"Tokyo\"");
    assert_eq!(change.replayed, "\"Seattle\"");
    let msg = change.message();
    for needle in ["task 0", "activity \"SayHello\"", "\"Tokyo\"", "\"Seattle\""] {
        assert!(msg.contains(needle), "{msg}");
    }
}

#[test]
fn changed_timer_and_sub_orchestration_inputs_are_noted() {
    let history = vec![
        (1, started("Parent")),
        (2, Event::OrchestratorStarted),
        (
            2,
            Event::TimerCreated {
                task_id: 0,
                fire_at: 1002,
            },
        ),
        (
            2,
            Event::SubOrchestrationInstanceCreated {
                task_id: 1,
                name: "Child".into(),
                instance_id: "i:1".into(),
                input: "1".into(),
                retry: None,
            },
        ),
        (2, Event::OrchestratorCompleted),
    ];
    let mut r = Replay::from_history("i", &history);
    r.begin_episode(5, []);
    r.create_timer(1002).unwrap();
    r.schedule_sub_orchestration("Child", "2", None, None).unwrap();
    assert_eq!(r.input_change().unwrap().task_id, 1);

    let mut r = Replay::from_history("i", &history);
    r.begin_episode(5, []);
    r.create_timer(1500).unwrap();
    let change = r.input_change().unwrap().clone();
    assert_eq!(
        (change.task_id, change.recorded.as_str(), change.replayed.as_str()),
        (0, "1002", "1500")
    );
}

#[test]
fn timer_fired_is_stamped_when_it_is_delivered_not_when_it_was_created() {
    let mut r = Replay::from_history("i", &[]);
    r.begin_episode(1000, [(1000, started("Sleeps"))]);
    let t = r.create_timer(2000).unwrap();
    assert_eq!(r.await_task(t).unwrap(), Wait::Blocked);
    r.take_episode(None);
    // The message was written at 1000 (with the TimerCreated); the host
    // delivers it at 2040.
    r.begin_episode(
        2040,
        [(
            1000,
            Event::TimerFired {
                task_id: t,
                fire_at: 2000,
            },
        )],
    );
    let out = r.take_episode(None);
    let fired = out
        .events
        .iter()
        .find(|(_, e)| e.type_name() == "TimerFired")
        .map(|(ts, _)| *ts);
    assert_eq!(fired, Some(2040));
}

//! Multi-row statements for a group commit: the common jobs of a batch
//! (checkpoints that only schedule work and send messages, activity
//! results, starts of new ids) are written with one statement per table
//! for the whole batch, their rows passed as arrays (`unnest`), instead of
//! one statement per job. The server's cost is per statement (parse, bind,
//! executor set-up, index descents), so a batch of 256 checkpoints costs a
//! handful of statements instead of several per checkpoint.
//!
//! Each job keeps its own guard and its own result:
//! - a checkpoint's guard (execution, history length, lease) is the
//!   instance row's UPDATE; every other write of the checkpoint (history,
//!   consumed messages, cleanup, work items, messages) is gated on that
//!   UPDATE having changed the row, so a refused checkpoint writes nothing;
//! - an activity result is written only if its item is still leased to its
//!   owner;
//! - a start whose id exists is not written here: it is left to the
//!   one-job path ([`super::ops::insert_start`]), which replaces a finished
//!   instance or refuses.
//!
//! A job whose instance (or work item, or new id) already appears in the
//! batch is left to the one-job path too, so that one statement never
//! touches a row twice.

use deadpool_postgres::Transaction;

use super::{col, query, to_i64};
use crate::history::Millis;
use crate::store::{
    ActivityOutcome, Checkpoint, Lease, NewExecution, Notes, Outbox, RuntimeStatus, StoreError, WorkItem,
};

/// Whether a checkpoint can be written by [`checkpoints`]: no child
/// starts, lock requests or releases, no next execution (those need their
/// own statements and savepoints), and no work scheduled by a checkpoint
/// that also ends the execution (its pending work is deleted first).
pub(super) fn batchable(cp: &Checkpoint) -> bool {
    let simple = cp
        .outbox
        .iter()
        .all(|o| matches!(o, Outbox::WorkItem { .. } | Outbox::Message(_)));
    let schedules = cp.outbox.iter().any(|o| matches!(o, Outbox::WorkItem { .. }));
    simple && !(cp.status.is_terminal() && schedules)
}

/// Applies checkpoints (each of a different instance, each [`batchable`])
/// in one statement for their guards, history, consumed messages and
/// cleanup, one for their work items, and one probe of the lock queues of
/// the executions they end. Returns, per checkpoint in order, whether its
/// guard held (`false`: nothing of it was written). The messages of their
/// outboxes are left to the caller ([`super::ops::deliver`]), as are the
/// lock queues of ended executions that have requests (returned second).
pub(super) async fn checkpoints(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    jobs: &[(&Checkpoint, &Lease)],
) -> Result<(Vec<bool>, Vec<String>), StoreError> {
    if jobs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let n = jobs.len();
    let mut ids: Vec<&str> = Vec::with_capacity(n);
    let mut execs: Vec<&str> = Vec::with_capacity(n);
    let mut statuses: Vec<&str> = Vec::with_capacity(n);
    let mut expected: Vec<i64> = Vec::with_capacity(n);
    let mut new_len: Vec<i64> = Vec::with_capacity(n);
    let mut nows: Vec<i64> = Vec::with_capacity(n);
    let mut set_out: Vec<bool> = Vec::with_capacity(n);
    let mut outs: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut set_cs: Vec<bool> = Vec::with_capacity(n);
    let mut css: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut owners: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut untils: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut guards: Vec<&str> = Vec::with_capacity(n);
    // History rows, consumed messages, ended executions.
    let (mut h_id, mut h_exec, mut h_seq, mut h_type, mut h_ts, mut h_data) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut c_id, mut c_msg): (Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut ended: Vec<&str> = Vec::new();
    for (cp, lease) in jobs {
        let until = cp.lease_until.filter(|_| !cp.status.is_terminal());
        ids.push(&cp.instance_id);
        execs.push(&cp.execution_id);
        statuses.push(cp.status.as_str());
        expected.push(to_i64(cp.expected_history_len));
        new_len.push(to_i64(cp.expected_history_len + cp.events.len() as u64));
        nows.push(to_i64(cp.now));
        set_out.push(cp.output.is_some());
        outs.push(cp.output.as_ref().and_then(|o| o.as_deref()));
        set_cs.push(cp.custom_status.is_some());
        css.push(cp.custom_status.as_ref().and_then(|o| o.as_deref()));
        owners.push(until.map(|_| lease.owner.as_str()));
        untils.push(until.map(to_i64));
        guards.push(&lease.owner);
        for (i, (ts, e)) in cp.events.iter().enumerate() {
            h_id.push(cp.instance_id.as_str());
            h_exec.push(cp.execution_id.as_str());
            h_seq.push(to_i64(cp.expected_history_len + i as u64));
            h_type.push(e.type_name());
            h_ts.push(to_i64(*ts));
            h_data.push(e.encode());
        }
        for m in &cp.consumed {
            c_id.push(&cp.instance_id);
            c_msg.push(*m);
        }
        if cp.status.is_terminal() {
            ended.push(&cp.instance_id);
        }
    }
    // The guard is the instance row's UPDATE; the other writes act only on
    // the instances it changed (data-modifying CTEs all run, each gated on
    // its RETURNING rows).
    let rows = query(
        tx,
        "WITH j AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                                $7::bool[], $8::text[], $9::bool[], $10::text[], $11::text[], $12::bigint[], $13::text[])
                      AS j(id, exec, status, expected, new_len, now, set_out, out, set_cs, cs, owner, until, guard)),
         g AS (
           UPDATE instances i SET status = j.status, history_len = j.new_len, updated_at = j.now,
                  output = CASE WHEN j.set_out THEN j.out ELSE i.output END,
                  custom_status = CASE WHEN j.set_cs THEN j.cs ELSE i.custom_status END,
                  lease_owner = j.owner, lease_expires = j.until
             FROM j
            WHERE i.instance_id = j.id AND i.execution_id = j.exec AND i.history_len = j.expected
              AND (i.lease_owner IS NULL OR i.lease_owner = j.guard OR i.lease_expires IS NULL OR i.lease_expires <= j.now)
            RETURNING i.instance_id),
         h AS (
           INSERT INTO history (instance_id, execution_id, seq, event_type, timestamp, data)
           SELECT h.id, h.exec, h.seq, h.t, h.ts, h.d
             FROM unnest($14::text[], $15::text[], $16::bigint[], $17::text[], $18::bigint[], $19::text[]) AS h(id, exec, seq, t, ts, d)
            WHERE h.id IN (SELECT instance_id FROM g)),
         d AS (
           DELETE FROM inbox WHERE id IN (
             SELECT c.m FROM unnest($20::text[], $21::bigint[]) AS c(id, m) WHERE c.id IN (SELECT instance_id FROM g))),
         w AS (
           DELETE FROM work_items WHERE instance_id IN (
             SELECT e.id FROM unnest($22::text[]) AS e(id) WHERE e.id IN (SELECT instance_id FROM g)))
         SELECT instance_id FROM g",
        &[
            &ids, &execs, &statuses, &expected, &new_len, &nows, &set_out, &outs, &set_cs, &css, &owners, &untils,
            &guards, &h_id, &h_exec, &h_seq, &h_type, &h_ts, &h_data, &c_id, &c_msg, &ended,
        ],
    )
    .await?;
    let applied: std::collections::HashSet<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?;
    let ok: Vec<bool> = jobs.iter().map(|(cp, _)| applied.contains(&cp.instance_id)).collect();
    // Work items of the applied checkpoints, leased to their committers.
    let (mut w_id, mut w_exec, mut w_task, mut w_name, mut w_input, mut w_retry, mut w_attempt) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut w_now, mut w_owner, mut w_expires) = (Vec::new(), Vec::new(), Vec::new());
    let mut ended_applied: Vec<String> = Vec::new();
    for ((cp, lease), _) in jobs.iter().zip(&ok).filter(|(_, ok)| **ok) {
        if cp.status.is_terminal() {
            notes.finished.push(cp.instance_id.clone());
        }
        if cp.status.is_terminal() || cp.status == RuntimeStatus::ContinuedAsNew {
            ended_applied.push(cp.instance_id.clone());
        }
        for item in &cp.outbox {
            if let Outbox::WorkItem {
                task_id,
                name,
                input,
                retry,
                attempt,
            } = item
            {
                w_id.push(cp.instance_id.as_str());
                w_exec.push(cp.execution_id.as_str());
                w_task.push(i64::from(*task_id));
                w_name.push(name.as_str());
                w_input.push(input.as_str());
                w_retry.push(retry.as_ref().and_then(|r| serde_json::to_string(r).ok()));
                w_attempt.push(i64::from(*attempt));
                w_now.push(to_i64(cp.now));
                w_owner.push(lease.owner.as_str());
                w_expires.push(to_i64(cp.now.saturating_add(lease.duration_ms)));
            }
        }
    }
    if !w_id.is_empty() {
        let rows = query(
            tx,
            &format!(
                "INSERT INTO work_items (instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled, visible_at, lease_owner, lease_expires)
                 SELECT u.id, u.exec, u.t, u.n, u.i, u.r, u.a, u.now, u.now, u.owner, u.exp
                   FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                               $8::bigint[], $9::text[], $10::bigint[])
                        WITH ORDINALITY AS u(id, exec, t, n, i, r, a, now, owner, exp, o)
                  ORDER BY u.o
                 ON CONFLICT DO NOTHING RETURNING {}",
                super::ops::WORK_COLS
            ),
            &[
                &w_id, &w_exec, &w_task, &w_name, &w_input, &w_retry, &w_attempt, &w_now, &w_owner, &w_expires,
            ],
        )
        .await?;
        let mut items: Vec<WorkItem> = rows.iter().map(super::ops::work_from_row).collect::<Result<_, _>>()?;
        items.sort_by_key(|i| i.id);
        notes.work.extend(items);
    }
    // Which ended executions have lock requests (most have none): only
    // those go through the lock queues.
    let with_locks = if ended_applied.is_empty() {
        Vec::new()
    } else {
        query(
            tx,
            "SELECT DISTINCT instance_id FROM lock_requests WHERE instance_id = ANY($1::text[])",
            &[&ended_applied],
        )
        .await?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<Vec<String>, _>>()?
    };
    Ok((ok, with_locks))
}

/// Commits activity results (each of a different work item) in one
/// statement: each item is deleted (or kept with attempt + 1 for its retry)
/// if still leased to its owner, and then only its message delivered.
/// Returns, per result in order, whether it was kept.
pub(super) async fn completions(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    jobs: &[(&WorkItem, &str, &ActivityOutcome, Millis)],
) -> Result<Vec<bool>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let n = jobs.len();
    let mut ids: Vec<i64> = Vec::with_capacity(n);
    let mut owners: Vec<&str> = Vec::with_capacity(n);
    let mut retry_at: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut insts: Vec<&str> = Vec::with_capacity(n);
    let mut execs: Vec<&str> = Vec::with_capacity(n);
    let mut kinds: Vec<&str> = Vec::with_capacity(n);
    let mut nows: Vec<i64> = Vec::with_capacity(n);
    let mut data: Vec<String> = Vec::with_capacity(n);
    for (item, owner, outcome, now) in jobs {
        ids.push(item.id);
        owners.push(owner);
        retry_at.push(outcome.retry_at.map(to_i64));
        insts.push(&item.instance_id);
        execs.push(&item.execution_id);
        kinds.push(outcome.message.type_name());
        nows.push(to_i64(*now));
        data.push(outcome.message.encode());
    }
    let rows = query(
        tx,
        "WITH j AS (
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])
                    WITH ORDINALITY AS j(id, owner, retry_at, inst, exec, kind, now, data, o)),
         k AS (
           DELETE FROM work_items w USING j
            WHERE w.id = j.id AND w.lease_owner = j.owner AND j.retry_at IS NULL
            RETURNING w.id),
         r AS (
           UPDATE work_items w SET attempt = w.attempt + 1, visible_at = j.retry_at, lease_owner = NULL, lease_expires = NULL
             FROM j
            WHERE w.id = j.id AND w.lease_owner = j.owner AND j.retry_at IS NOT NULL
            RETURNING w.id),
         m AS (
           INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data)
           SELECT j.inst, j.exec, j.kind, j.now, j.now, j.data FROM j
            WHERE j.id IN (SELECT id FROM k UNION ALL SELECT id FROM r)
            ORDER BY j.o)
         SELECT id FROM k UNION ALL SELECT id FROM r",
        &[&ids, &owners, &retry_at, &insts, &execs, &kinds, &nows, &data],
    )
    .await?;
    let kept: std::collections::HashSet<i64> = rows.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?;
    let out: Vec<bool> = jobs.iter().map(|(item, ..)| kept.contains(&item.id)).collect();
    for ((item, ..), _) in jobs.iter().zip(&out).filter(|(_, k)| **k) {
        notes.inbox.push(item.instance_id.clone());
    }
    Ok(out)
}

/// Creates instances with new ids (each different) and their
/// ExecutionStarted messages in one statement. Returns, per start in
/// order, whether it was created; an id that exists is left untouched
/// (the caller runs [`super::ops::insert_start`] for it).
pub(super) async fn creates(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    jobs: &[(&NewExecution, Millis)],
) -> Result<Vec<bool>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let n = jobs.len();
    let mut ids: Vec<&str> = Vec::with_capacity(n);
    let mut execs: Vec<&str> = Vec::with_capacity(n);
    let mut names: Vec<&str> = Vec::with_capacity(n);
    let mut versions: Vec<&str> = Vec::with_capacity(n);
    let mut inputs: Vec<&str> = Vec::with_capacity(n);
    let mut nows: Vec<i64> = Vec::with_capacity(n);
    let mut parents: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut kinds: Vec<&str> = Vec::with_capacity(n);
    let mut visible: Vec<i64> = Vec::with_capacity(n);
    let mut data: Vec<String> = Vec::with_capacity(n);
    for (new, now) in jobs {
        ids.push(&new.instance_id);
        execs.push(&new.execution_id);
        names.push(&new.name);
        versions.push(&new.version);
        inputs.push(&new.input);
        nows.push(to_i64(*now));
        parents.push(new.parent_instance.as_deref());
        kinds.push(new.started.type_name());
        visible.push(to_i64(new.visible_at));
        data.push(new.started.encode());
    }
    let rows = query(
        tx,
        "WITH j AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                                $8::text[], $9::bigint[], $10::text[])
                    WITH ORDINALITY AS j(id, exec, name, version, input, now, parent, kind, visible, data, o)),
         i AS (
           INSERT INTO instances (instance_id, execution_id, name, version, status, input, created_at, updated_at, parent_instance, history_len)
           SELECT j.id, j.exec, j.name, j.version, 'Pending', j.input, j.now, j.now, j.parent, 0 FROM j ORDER BY j.o
           ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id),
         m AS (
           INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data)
           SELECT j.id, j.exec, j.kind, j.visible, j.now, j.data FROM j
            WHERE j.id IN (SELECT instance_id FROM i) ORDER BY j.o)
         SELECT instance_id FROM i",
        &[
            &ids, &execs, &names, &versions, &inputs, &nows, &parents, &kinds, &visible, &data,
        ],
    )
    .await?;
    let created: std::collections::HashSet<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?;
    let out: Vec<bool> = jobs.iter().map(|(new, _)| created.contains(&new.instance_id)).collect();
    for ((new, now), _) in jobs.iter().zip(&out).filter(|(_, c)| **c) {
        if new.visible_at <= *now {
            notes.inbox.push(new.instance_id.clone());
        }
    }
    Ok(out)
}

// Human interaction: an approval request that escalates when nobody answers
// in time (the Durable Functions "human interaction" pattern), written in the
// Durable Functions generator style.
//
// - Orchestrator `ApprovalWorkflow`, input `{"timeout_ms": t}` (a missing
//   input or `timeout_ms` means 60000): calls `RequestApproval`, then sets
//   the custom status `{"stage": "waiting-for-approval"}` and races the
//   external event `ApprovalEvent` against a durable timer of `t` ms. The
//   custom status is cleared once the race is decided.
//   - The event wins with payload `true` or `{"approved": true}`: calls
//     `Approve` and returns `"approved"`.
//   - The event wins with any other payload (`false`, `{"approved": false}`,
//     ...): returns `"rejected"`.
//   - The timer wins: calls `Escalate` and returns `"escalated"`.
// - Activities `RequestApproval`, `Approve` and `Escalate` take the instance
//   id (a string) and return `"requested"`, `"approval-processed"` and
//   `"escalated"`.

import * as cairn from "cairn-sdk";

/** `true` and `{"approved": true}` approve; anything else rejects. */
function isApproval(payload) {
  if (typeof payload === "boolean") return payload;
  return payload !== null && typeof payload === "object" && payload.approved === true;
}

const ApprovalWorkflow = cairn.orchestrator(function* (context) {
  const timeoutMs = context.df.getInput()?.timeout_ms ?? 60000;
  const instanceId = context.df.instanceId;
  yield context.df.callActivity("RequestApproval", instanceId);

  // Events raised before this point are buffered, so none is lost while
  // RequestApproval runs.
  const approval = context.df.waitForExternalEvent("ApprovalEvent");
  const deadline = new Date(context.df.currentUtcDateTime.getTime() + timeoutMs);
  const timeout = context.df.createTimer(deadline);
  context.df.setCustomStatus({ stage: "waiting-for-approval" });
  const winner = yield context.df.Task.any([approval, timeout]);
  context.df.setCustomStatus(null);

  if (winner === timeout) {
    context.log.warn(`no answer within ${timeoutMs} ms, escalating`);
    yield context.df.callActivity("Escalate", instanceId);
    return "escalated";
  }
  timeout.cancel();
  if (isApproval(approval.result)) {
    yield context.df.callActivity("Approve", instanceId);
    return "approved";
  }
  return "rejected";
});

function RequestApproval(context, instanceId) {
  context.log(`approval requested for ${instanceId}`);
  return "requested";
}

function Approve(context, instanceId) {
  context.log(`${instanceId} approved`);
  return "approval-processed";
}

function Escalate(context, instanceId) {
  context.log.warn(`${instanceId} escalated to a manager`);
  return "escalated";
}

export const functions = cairn.app({
  orchestrators: { ApprovalWorkflow },
  activities: { RequestApproval, Approve, Escalate },
});

"""Human interaction: an approval request that escalates when nobody answers
in time (the Durable Functions "human interaction" pattern).

- Orchestrator `ApprovalWorkflow`, input `{"timeout_ms": t}` (a missing
  input or `timeout_ms` means 60000): calls `RequestApproval`, then sets
  the custom status `{"stage": "waiting-for-approval"}` and races the
  external event `ApprovalEvent` against a durable timer of `t` ms. The
  custom status is cleared once the race is decided.
  - The event wins with payload `true` or `{"approved": true}`: calls
    `Approve` and returns `"approved"`.
  - The event wins with any other payload (`false`, `{"approved": false}`,
    ...): returns `"rejected"`.
  - The timer wins: calls `Escalate` and returns `"escalated"`.
- Activities `RequestApproval`, `Approve` and `Escalate` take the instance
  id (a string) and return `"requested"`, `"approval-processed"` and
  `"escalated"`.

Written in the Durable Functions generator style, with `task_any`.
"""

from datetime import timedelta

import cairn_sdk

app = cairn_sdk.App()


@app.orchestrator("ApprovalWorkflow")
def approval_workflow(context: cairn_sdk.DurableOrchestrationContext):
    timeout_ms = (context.get_input() or {}).get("timeout_ms", 60_000)
    instance_id = context.instance_id
    yield context.call_activity("RequestApproval", instance_id)

    # Events raised before this point are buffered, so none is lost while
    # `RequestApproval` runs.
    approval = context.wait_for_external_event("ApprovalEvent")
    timeout = context.create_timer(timedelta(milliseconds=timeout_ms))
    context.set_custom_status({"stage": "waiting-for-approval"})
    winner = yield context.task_any([approval, timeout])
    context.set_custom_status(None)

    if winner == timeout:
        print(f"no answer within {timeout_ms} ms, escalating")
        yield context.call_activity("Escalate", instance_id)
        return "escalated"
    timeout.cancel()
    if is_approval(approval.result):
        yield context.call_activity("Approve", instance_id)
        return "approved"
    return "rejected"


def is_approval(payload):
    """`true` and `{"approved": true}` approve; anything else rejects."""
    if isinstance(payload, bool):
        return payload
    return isinstance(payload, dict) and payload.get("approved") is True


@app.activity("RequestApproval")
def request_approval(context: cairn_sdk.ActivityContext, instance_id: str) -> str:
    context.log_info(f"approval requested for {instance_id}")
    return "requested"


@app.activity("Approve")
def approve(context: cairn_sdk.ActivityContext, instance_id: str) -> str:
    context.log_info(f"{instance_id} approved")
    return "approval-processed"


@app.activity("Escalate")
def escalate(context: cairn_sdk.ActivityContext, instance_id: str) -> str:
    context.log_warn(f"{instance_id} escalated to a manager")
    return "escalated"


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

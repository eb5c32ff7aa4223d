"""Critical sections: a transfer holds the locks of both accounts while it
debits one and credits the other, so that no other orchestration can
touch either account in between.

- Orchestrator `TransferFunds`, input
  `{"from": "acct-a", "to": "acct-b", "amount": n}` (a missing input or
  field takes the value shown, and `amount` defaults to 100; `from` and
  `to` must differ, else `InvalidInput`): takes the locks `[from, to]`,
  calls `Debit` then `Credit`, releases the locks and returns both
  results, e.g. `["debited 100 from acct-a", "credited 100 to acct-b"]`.
- Activity `Debit`, input `{"account": ..., "amount": n}`: returns
  `"debited <n> from <account>"`.
- Activity `Credit`, input `{"account": ..., "amount": n}`: returns
  `"credited <n> to <account>"`.

Written as plain code; the critical section is a `with` block.
"""

import cairn_sdk
from cairn_sdk import Failure

app = cairn_sdk.App()


@app.orchestrator("TransferFunds")
def transfer_funds(context, transfer):
    transfer = transfer or {}
    source = transfer.get("from", "acct-a")
    target = transfer.get("to", "acct-b")
    amount = transfer.get("amount", 100)
    if source == target:
        raise Failure("InvalidInput", f"cannot transfer from {source} to itself")

    # Waits until both locks are held; leaving the block releases them.
    with context.lock([source, target]):
        debited = context.call_activity("Debit", {"account": source, "amount": amount})
        credited = context.call_activity("Credit", {"account": target, "amount": amount})
    return [debited, credited]


@app.activity("Debit")
def debit(entry: dict) -> str:
    return f"debited {entry['amount']} from {entry['account']}"


@app.activity("Credit")
def credit(entry: dict) -> str:
    return f"credited {entry['amount']} to {entry['account']}"


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

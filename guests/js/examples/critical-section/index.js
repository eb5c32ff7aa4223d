// Critical sections: a transfer holds the locks of both accounts while it
// debits one and credits the other, so that no other orchestration can touch
// either account in between.
//
// - Orchestrator `TransferFunds`, input
//   `{"from": "acct-a", "to": "acct-b", "amount": n}` (a missing input or
//   field takes the value shown, and `amount` defaults to 100; `from` and
//   `to` must differ, else `InvalidInput`): takes the locks `[from, to]`,
//   calls `Debit` then `Credit`, releases the locks and returns both
//   results, e.g. `["debited 100 from acct-a", "credited 100 to acct-b"]`.
// - Activity `Debit`, input `{"account": ..., "amount": n}`: returns
//   `"debited <n> from <account>"`.
// - Activity `Credit`, input `{"account": ..., "amount": n}`: returns
//   `"credited <n> to <account>"`.

import * as cairn from "cairn-sdk";

function TransferFunds(context, input) {
  const from = input?.from ?? "acct-a";
  const to = input?.to ?? "acct-b";
  const amount = input?.amount ?? 100;
  if (from === to) throw new cairn.DurableError("InvalidInput", `cannot transfer from ${from} to itself`);

  // Blocks until both locks are held.
  const lock = context.lock(from, to);
  try {
    const debited = context.callActivity("Debit", { account: from, amount });
    const credited = context.callActivity("Credit", { account: to, amount });
    return [debited, credited];
  } finally {
    lock.release();
  }
}

function Debit(context, entry) {
  return `debited ${entry.amount} from ${entry.account}`;
}

function Credit(context, entry) {
  return `credited ${entry.amount} to ${entry.account}`;
}

export const functions = cairn.app({
  orchestrators: { TransferFunds },
  activities: { Debit, Credit },
});

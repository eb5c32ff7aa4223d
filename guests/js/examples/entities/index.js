// Durable entities: the counter of the Durable Functions aggregator
// pattern, bank accounts, and a transfer that locks two accounts.
//
// - Entity `Counter` (state: a number): `add` (input: an integer, else
//   `InvalidInput`), `reset`, `get` (returns the count, 0 when there is
//   none), `delete`. Any other operation fails with `NotFound`.
// - Entity `Account` (state: the balance, a number): `deposit` and
//   `withdraw` (input: a positive integer amount, else `InvalidInput`; a
//   withdrawal larger than the balance fails with `InsufficientFunds` and
//   changes nothing), `balance` (returns the balance, 0 when there is
//   none), `delete`.
// - Orchestrator `Transfer`, input `{"from": "a", "to": "b", "amount": n}`
//   (account keys): locks `Account@from` and `Account@to`, reads the
//   balance of `from`, and when it covers `amount` withdraws it from `from`
//   and deposits it to `to`, all inside the critical section. Returns
//   `{"transferred": true|false, "from_balance": <balance before>}`;
//   `from` == `to` or a malformed input fails with `InvalidInput`.

import * as df from "cairn-sdk";

function unknown(operation) {
  return new df.DurableError("NotFound", `no operation named ${JSON.stringify(operation)}`);
}

function integer(value, operation) {
  if (!Number.isSafeInteger(value)) {
    throw new df.DurableError("InvalidInput", `the input of ${operation} must be an integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function positive(amount) {
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new df.DurableError("InvalidInput", `the amount must be a positive integer, got ${JSON.stringify(amount)}`);
  }
  return amount;
}

const Counter = df.entity(function (context) {
  const count = context.df.getState(() => 0);
  switch (context.df.operationName) {
    case "add":
      context.df.setState(count + integer(context.df.getInput(), "add"));
      break;
    case "reset":
      context.df.setState(0);
      break;
    case "get":
      context.df.return(count);
      break;
    case "delete":
      context.df.destructOnExit();
      break;
    default:
      throw unknown(context.df.operationName);
  }
});

const Account = df.entity(function (context) {
  const balance = context.df.getState(() => 0);
  switch (context.df.operationName) {
    case "deposit":
      context.df.setState(balance + positive(context.df.getInput()));
      break;
    case "withdraw": {
      const amount = positive(context.df.getInput());
      if (amount > balance) {
        throw new df.DurableError(
          "InsufficientFunds",
          `cannot withdraw ${amount} from ${context.df.entityId}: the balance is ${balance}`
        );
      }
      context.df.setState(balance - amount);
      break;
    }
    case "balance":
      context.df.return(balance);
      break;
    case "delete":
      context.df.destructOnExit();
      break;
    default:
      throw unknown(context.df.operationName);
  }
});

const Transfer = df.orchestrator(function* (context) {
  const { from, to, amount } = context.df.getInput() ?? {};
  if (typeof from !== "string" || typeof to !== "string" || !Number.isSafeInteger(amount)) {
    throw new df.DurableError("InvalidInput", 'the input is {"from": "<account>", "to": "<account>", "amount": <integer>}');
  }
  if (from === to) throw new df.DurableError("InvalidInput", `cannot transfer from ${from} to itself`);
  const source = new df.EntityId("Account", from);
  const target = new df.EntityId("Account", to);

  // Blocks until this orchestration holds both accounts.
  const section = context.df.lock([source, target]);
  try {
    const fromBalance = yield context.df.callEntity(source, "balance");
    if (fromBalance < amount) return { transferred: false, from_balance: fromBalance };
    yield context.df.callEntity(source, "withdraw", amount);
    yield context.df.callEntity(target, "deposit", amount);
    return { transferred: true, from_balance: fromBalance };
  } finally {
    section.release();
  }
});

export const functions = df.app({
  orchestrators: { Transfer },
  entities: { Counter, Account },
});

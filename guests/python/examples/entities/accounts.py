"""Entity `Account` and orchestrator `Transfer`.

- `Account` (state: the balance): `deposit` and `withdraw` take a positive
  integer amount (else `InvalidInput`); a withdrawal larger than the
  balance fails with `InsufficientFunds` and changes nothing; `balance`
  returns the balance (0 when the entity has no state); `delete` deletes
  the state. Any other operation fails with `NotFound`.
- `Transfer`, input `{"from": "a", "to": "b", "amount": n}` (account
  keys): locks `Account@<from>` and `Account@<to>`, reads the balance of
  `from`, and when it covers `amount` withdraws it from `from` and
  deposits it to `to`, all inside the critical section. Returns
  `{"transferred": true|false, "from_balance": <balance before>}`;
  `from` equal to `to` fails with `InvalidInput`.
"""

import cairn_sdk
from cairn_sdk import EntityId, Failure

app = cairn_sdk.App()


def _amount(value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Failure("InvalidInput", f"the amount must be a positive integer, got {value!r}")
    return value


@app.entity("Account")
def account(context):
    operation = context.operation_name
    balance = context.get_state(lambda: 0)
    if operation == "deposit":
        context.set_state(balance + _amount(context.get_input()))
    elif operation == "withdraw":
        amount = _amount(context.get_input())
        if amount > balance:
            raise Failure(
                "InsufficientFunds",
                f"cannot withdraw {amount} from {context.entity_id}: the balance is {balance}",
            )
        context.set_state(balance - amount)
    elif operation == "balance":
        context.set_result(balance)
    elif operation == "delete":
        context.destruct_on_exit()
    else:
        raise Failure("NotFound", f"entity Account has no operation named {operation!r}")


@app.orchestrator("Transfer")
def transfer(context):
    request = context.get_input()
    if not isinstance(request, dict):
        raise Failure("InvalidInput", 'Transfer takes {"from": ..., "to": ..., "amount": n}')
    source, target, amount = request.get("from"), request.get("to"), request.get("amount")
    if not isinstance(source, str) or not isinstance(target, str):
        raise Failure("InvalidInput", '"from" and "to" must be account keys (strings)')
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise Failure("InvalidInput", f'"amount" must be an integer, got {amount!r}')
    if source == target:
        raise Failure("InvalidInput", f"cannot transfer from {source} to itself")

    source_id = EntityId("Account", source)
    target_id = EntityId("Account", target)
    with context.lock_entities(source_id, target_id):
        from_balance = yield context.call_entity(source_id, "balance")
        if from_balance < amount:
            return {"transferred": False, "from_balance": from_balance}
        yield context.call_entity(source_id, "withdraw", amount)
        yield context.call_entity(target_id, "deposit", amount)
    return {"transferred": True, "from_balance": from_balance}

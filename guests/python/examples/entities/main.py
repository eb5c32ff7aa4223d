"""Durable entities: the counter of the Durable Functions aggregator
pattern, bank accounts, and a transfer that locks two accounts (the same
component as guests/rust/examples/entities and guests/js/examples/entities).

- `counter.py`: entity `Counter` (`add`, `reset`, `get`, `delete`), a
  Durable Functions entity function registered with `df.Entity.create`.
- `accounts.py`: entity `Account` (`deposit`, `withdraw`, `balance`,
  `delete`) and orchestrator `Transfer`, which moves money between two
  accounts inside a critical section over both.
"""

import accounts  # noqa: F401  (registers Account and Transfer)
import counter  # noqa: F401  (registers Counter)
from cairn_sdk import Entity, Functions  # noqa: F401  (the component's exports)

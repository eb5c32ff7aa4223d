"""Function chaining, as in the Durable Functions "Hello cities" sample:
the orchestrator `HelloCities` calls the activity `SayHello` for three
cities, one after the other, and returns the three greetings,
`["Hello Tokyo!", "Hello Seattle!", "Hello London!"]`.

- `hello_cities.py` is the Durable Functions Python sample
  (`durable_functions/HelloCities/__init__.py`, kept as published) with only
  its import and its registration line changed.
- `say_hello.py` is the activity.
"""

import hello_cities  # noqa: F401  (registers HelloCities)
import say_hello  # noqa: F401  (registers SayHello)
from cairn_sdk import Functions  # noqa: F401  (the component's export)

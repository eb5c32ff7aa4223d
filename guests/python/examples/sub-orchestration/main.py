"""Sub-orchestrations: a parent orchestrator fans out one child
orchestration per device and waits for all of them.

- Orchestrator `ProvisionAll`, input `{"devices": ["a", "b", ...]}`:
  starts the sub-orchestrator `ProvisionDevice` for every device, in
  parallel (child instance ids are derived by the host), and returns their
  results in the order of `devices`, e.g.
  `["a-created-configured", "b-created-configured"]`. An empty list
  returns `[]`. The first child failure (in that order) fails the parent.
- Orchestrator `ProvisionDevice`, input a device id such as `"a"`: calls
  `CreateDevice` and then `ConfigureDevice` with its result; returns
  `"a-created-configured"`.
- Activity `CreateDevice`, input `"<id>"`: returns `"<id>-created"`.
- Activity `ConfigureDevice`, input `"<x>"`: returns `"<x>-configured"`.

Written as plain code: `schedule_sub_orchestrator` returns a task without
waiting, `task_all` waits for all of them.
"""

import cairn_sdk
from cairn_sdk import Failure

app = cairn_sdk.App()


@app.orchestrator("ProvisionAll")
def provision_all(context, input_):
    if not isinstance(input_, dict) or not isinstance(input_.get("devices"), list):
        raise Failure("InvalidInput", "ProvisionAll needs {\"devices\": [...]}")
    children = [context.schedule_sub_orchestrator("ProvisionDevice", device) for device in input_["devices"]]
    return context.task_all(children)


@app.orchestrator("ProvisionDevice")
def provision_device(context, device):
    created = context.call_activity("CreateDevice", device)
    return context.call_activity("ConfigureDevice", created)


@app.activity("CreateDevice")
def create_device(device: str) -> str:
    return f"{device}-created"


@app.activity("ConfigureDevice")
def configure_device(device: str) -> str:
    return f"{device}-configured"


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

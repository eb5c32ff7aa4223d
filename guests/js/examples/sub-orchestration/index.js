// Sub-orchestrations: a parent orchestrator fans out one child orchestration
// per device and waits for all of them.
//
// - Orchestrator `ProvisionAll`, input `{"devices": ["a", "b", ...]}`:
//   starts the sub-orchestrator `ProvisionDevice` for every device, in
//   parallel (child instance ids are derived by the host), and returns their
//   results in the order of `devices`, e.g.
//   `["a-created-configured", "b-created-configured"]`. An empty list returns
//   `[]`. The first child failure (in that order) fails the parent.
// - Orchestrator `ProvisionDevice`, input a device id such as `"a"`: calls
//   `CreateDevice` and then `ConfigureDevice` with its result; returns
//   `"a-created-configured"`.
// - Activity `CreateDevice`, input `"<id>"`: returns `"<id>-created"`.
// - Activity `ConfigureDevice`, input `"<x>"`: returns `"<x>-configured"`.

import * as cairn from "cairn-sdk";

const ProvisionAll = cairn.orchestrator(function* (context) {
  const devices = context.df.getInput()?.devices;
  if (!Array.isArray(devices)) throw new cairn.DurableError("InvalidInput", "the input needs a devices array");
  if (devices.length === 0) return [];
  const children = devices.map((device) => context.df.callSubOrchestrator("ProvisionDevice", device));
  return yield context.df.Task.all(children);
});

function ProvisionDevice(context, device) {
  const created = context.callActivity("CreateDevice", device);
  return context.callActivity("ConfigureDevice", created);
}

function CreateDevice(context, device) {
  return `${device}-created`;
}

function ConfigureDevice(context, device) {
  return `${device}-configured`;
}

export const functions = cairn.app({
  orchestrators: { ProvisionAll, ProvisionDevice },
  activities: { CreateDevice, ConfigureDevice },
});

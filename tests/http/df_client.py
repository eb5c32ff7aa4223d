"""Drives a real `cairn serve` with Durable Functions' own Python client
(`azure-functions-durable`), exactly as a Durable Functions app would: the
client JSON-encodes inputs and event data twice (it sends a JSON string
holding the JSON). Run by tests/http/df_client.rs with the venv it installs.

Usage: python df_client.py <rpc base url, ending in "/"> -> one JSON object
on stdout: what each orchestration returned, as the client read it.
"""

import asyncio
import json
import sys
import time
import urllib.request

import azure.durable_functions as df
from azure.durable_functions.models.utils import http_utils


def client_for(base_url):
    # The binding data the Functions host hands a client function: the
    # client builds every URL from `rpcBaseUrl`.
    binding = {"taskHubName": "cairn", "creationUrls": {}, "managementUrls": {}, "rpcBaseUrl": base_url}
    return df.DurableOrchestrationClient(json.dumps(binding))


def raise_once_encoded(base_url, instance_id, event, json_text):
    """Raises an event with a body encoded once (as curl or `cairn
    raise-event` send it), to show that a plain string stays a string."""
    request = urllib.request.Request(
        f"{base_url}instances/{instance_id}/raiseEvent/{event}",
        data=json_text.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202, response.status


async def raise_event(client, instance_id, event, data, errors):
    """Raises with the client; a refusal (e.g. 410, the instance already
    failed) is recorded instead of ending the run, so the test shows why."""
    try:
        await client.raise_event(instance_id, event, data)
    except Exception as e:  # noqa: BLE001 - reported to the test
        errors.append(f"raise_event({event!r}): {e}")


async def finished(client, instance_id, errors=()):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = await client.get_status(instance_id, show_input=True)
        if status.runtime_status in (
            df.OrchestrationRuntimeStatus.Completed,
            df.OrchestrationRuntimeStatus.Failed,
        ):
            return {
                "status": status.runtime_status.value,
                "input": status.input_,
                "output": status.output,
                "errors": list(errors),
            }
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{instance_id} did not finish")


async def main(base_url):
    client = client_for(base_url)
    results = {}

    # The example: a Rust orchestrator with a typed input, and an
    # event whose payload is a bool.
    errors = []
    instance_id = await client.start_new("WaitForApproval", None, {"timeout_ms": 60000})
    await raise_event(client, instance_id, "Approval", True, errors)
    results["WaitForApproval"] = await finished(client, instance_id, errors)

    # Typed events in Rust; untyped ones in JavaScript and Python.
    for name, note in [("TypedEvents", '"true"'), ("JsClientValues", '"Tokyo"'), ("PyClientValues", '"Tokyo"')]:
        errors = []
        instance_id = await client.start_new(name, None, {"timeout_ms": 60000})
        await raise_event(client, instance_id, "Flag", False, errors)
        await raise_event(client, instance_id, "Amount", 42, errors)
        await raise_event(client, instance_id, "Order", {"sku": "sku-42"}, errors)
        try:
            raise_once_encoded(base_url, instance_id, "Note", note)
        except Exception as e:  # noqa: BLE001 - reported to the test
            errors.append(f"raise Note: {e}")
        results[name] = await finished(client, instance_id, errors)

    # A failed instance, as the client reads it.
    instance_id = await client.start_new("UncaughtDetails", None, None)
    results["UncaughtDetails"] = await finished(client, instance_id)
    # Entities: signal (the client encodes the input twice, as above)
    # and read the state back; a missing entity reads as not existing.
    counter = df.EntityId("Counter", "df-client")
    await client.signal_entity(counter, "add", 5)
    await client.signal_entity(counter, "add", 3)
    missing = await client.read_entity_state(df.EntityId("Counter", "nobody"))
    read = None
    for _ in range(400):
        read = await client.read_entity_state(counter)
        if read.entity_exists and read.entity_state == 8:
            break
        await asyncio.sleep(0.05)
    results["Entity"] = {
        "exists": read.entity_exists,
        "state": read.entity_state,
        "missing_exists": missing.entity_exists,
    }
    await http_utils._close_session()
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))

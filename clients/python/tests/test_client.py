"""The Python client against a real `cairn serve`.

Needs the environment (set by tests/http/clients.rs, which starts the
servers and deploys hello-cities.wasm, human-interaction.wasm and the
testing guest failing.wasm):

- CAIRN_URL: a server without an API key;
- CAIRN_KEYED_URL and CAIRN_API_KEY: a server with that key.

Nothing is skipped: without them every test fails.
"""

import os
import sys
import time
import unittest
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The client from this checkout, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cairn_client import (  # noqa: E402
    BadRequest,
    CairnClient,
    CairnError,
    Conflict,
    InstanceStatus,
    NotFound,
    Unauthorized,
    WaitTimeout,
)

HELLO = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
WAITING = {"stage": "waiting-for-approval"}
# Long enough that the timer never wins during a test.
APPROVAL_INPUT = {"timeout_ms": 600000}
RUN = uuid.uuid4().hex[:8]


def env(name):
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run these tests through `cargo test --test http clients`")
    return value


def new_id(tag):
    return f"py-{tag}-{RUN}-{uuid.uuid4().hex[:6]}"


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.client = CairnClient(env("CAIRN_URL"), timeout=30)

    def poll(self, instance_id, predicate, what, limit=30.0):
        """Polls the status until `predicate(status)` holds."""
        deadline = time.monotonic() + limit
        last = None
        while time.monotonic() < deadline:
            last = self.client.status(instance_id, show_input=True)
            if last is not None and predicate(last):
                return last
            time.sleep(0.05)
        self.fail(f"{instance_id} never became {what}; last status: {last}")

    def start_waiting_approval(self, tag):
        """An ApprovalWorkflow instance that waits for its event."""
        iid = self.client.start("ApprovalWorkflow", APPROVAL_INPUT, instance_id=new_id(tag))
        self.poll(iid, lambda s: s.custom_status == WAITING, "waiting for its approval")
        return iid

    def test_start_and_wait_completes_hello_cities_with_its_output(self):
        done = self.client.start_and_wait("HelloCities", input="ignored", timeout_s=60)
        self.assertIsInstance(done, InstanceStatus)
        self.assertEqual(done.name, "HelloCities")
        self.assertEqual(done.runtime_status, "Completed")
        self.assertEqual(done.output, HELLO)
        self.assertEqual(done.input, "ignored")
        self.assertTrue(done.is_terminal)
        self.assertEqual(len(done.instance_id), 32, "an id the client generated: a GUID without dashes")
        self.assertIsInstance(done.created_time, datetime)
        self.assertIsInstance(done.last_updated_time, datetime)
        self.assertIsNotNone(done.created_time.tzinfo)
        now = datetime.now(timezone.utc)
        self.assertLess(abs(now - done.created_time), timedelta(minutes=5))
        self.assertLessEqual(done.created_time, done.last_updated_time)
        self.assertIsNone(done.failure_details)

        with_history = self.client.status(done.instance_id, show_history=True)
        self.assertIsNotNone(with_history.history_events)
        types = [e["EventType"] for e in with_history.history_events]
        self.assertEqual(types[0], "ExecutionStarted")
        self.assertEqual(types[-1], "ExecutionCompleted")
        self.assertEqual(types.count("TaskCompleted"), 3, types)
        without_input = self.client.status(done.instance_id)
        self.assertIsNone(without_input.input, "show_input=False leaves the input out")
        self.assertIsNone(without_input.history_events)

    def test_a_failed_instance_has_its_failure_details(self):
        failed = self.client.start_and_wait("UncaughtDetails", timeout_s=60)
        self.assertEqual(failed.runtime_status, "Failed")
        self.assertTrue(failed.is_terminal)
        self.assertEqual(failed.output, "OutOfStock: sku-42 is out of stock")
        self.assertEqual(failed.failure_details["ErrorType"], "OutOfStock")
        self.assertEqual(failed.failure_details["Message"], "sku-42 is out of stock")
        self.assertEqual(failed.failure_details["Details"], {"sku": "sku-42"})

    def test_start_then_wait_under_a_chosen_id(self):
        iid = new_id("hello")
        self.assertEqual(self.client.start("HelloCities", instance_id=iid), iid)
        done = self.client.wait(iid, timeout_s=60)
        self.assertEqual((done.instance_id, done.runtime_status, done.output), (iid, "Completed", HELLO))

    def test_start_and_wait_under_a_chosen_id(self):
        iid = new_id("hello-wait")
        done = self.client.start_and_wait("HelloCities", instance_id=iid, timeout_s=60)
        self.assertEqual((done.instance_id, done.runtime_status, done.output), (iid, "Completed", HELLO))

    def test_an_event_completes_a_waiting_orchestration(self):
        iid = self.start_waiting_approval("event")
        status = self.client.status(iid, show_input=True)
        self.assertEqual(status.runtime_status, "Running")
        self.assertEqual(status.input, APPROVAL_INPUT)
        self.client.raise_event(iid, "ApprovalEvent", {"approved": True})
        done = self.client.wait(iid, timeout_s=60)
        self.assertEqual(done.runtime_status, "Completed")
        self.assertEqual(done.output, "approved")
        self.assertIsNone(done.custom_status, "cleared once the race is decided")
        # A finished instance takes no more events: 410.
        with self.assertRaises(Conflict) as e:
            self.client.raise_event(iid, "ApprovalEvent", True)
        self.assertEqual(e.exception.status, 410)
        self.assertTrue(e.exception.message)

    def test_terminate(self):
        iid = self.start_waiting_approval("terminate")
        self.client.terminate(iid, reason="no longer needed")
        done = self.client.wait(iid, timeout_s=60)
        self.assertEqual(done.runtime_status, "Terminated")
        self.assertEqual(done.output, "no longer needed")
        with self.assertRaises(Conflict) as e:
            self.client.terminate(iid, reason="again")
        self.assertEqual(e.exception.status, 410)

    def test_suspend_and_resume(self):
        iid = self.start_waiting_approval("suspend")
        self.client.suspend(iid, reason="maintenance")
        suspended = self.poll(iid, lambda s: s.runtime_status == "Suspended", "Suspended")
        self.assertEqual(suspended.output, "maintenance", "a suspended instance's output is the reason")
        # A suspended instance buffers events and does not run.
        self.client.raise_event(iid, "ApprovalEvent", True)
        time.sleep(0.5)
        self.assertEqual(self.client.status(iid).runtime_status, "Suspended")
        self.client.resume(iid, reason="done")
        done = self.client.wait(iid, timeout_s=60)
        self.assertEqual((done.runtime_status, done.output), ("Completed", "approved"))

    def test_wait_times_out_on_a_running_instance(self):
        iid = self.start_waiting_approval("timeout")
        started = time.monotonic()
        with self.assertRaises(WaitTimeout) as e:
            self.client.wait(iid, timeout_s=0.5)
        self.assertIsInstance(e.exception, TimeoutError)
        self.assertGreaterEqual(time.monotonic() - started, 0.5)
        self.assertEqual(e.exception.last_status.runtime_status, "Running")
        with self.assertRaises(WaitTimeout):
            self.client.start_and_wait("ApprovalWorkflow", APPROVAL_INPUT, instance_id=new_id("timeout2"), timeout_s=1)
        self.client.terminate(iid)

    def test_query_follows_every_page(self):
        prefix = f"py-page-{RUN}-"
        ids = [self.client.start("HelloCities", instance_id=f"{prefix}{i}") for i in range(5)]
        for iid in ids:
            self.assertEqual(self.client.wait(iid, timeout_s=60).runtime_status, "Completed")

        page, token = self.client.query_page(prefix=prefix, top=2)
        self.assertEqual(len(page), 2)
        self.assertIsNotNone(token, "more pages follow")
        page2, _ = self.client.query_page(prefix=prefix, top=2, continuation_token=token)
        self.assertEqual(len(page2), 2)
        self.assertFalse({s.instance_id for s in page} & {s.instance_id for s in page2}, "pages do not overlap")

        found = list(self.client.query(prefix=prefix, top=2))
        self.assertEqual(sorted(s.instance_id for s in found), sorted(ids))
        self.assertTrue(all(s.output == HELLO and s.input is None for s in found))
        with_input = list(self.client.query(prefix=prefix, top=2, show_input=True))
        self.assertEqual(len(with_input), 5)

        completed = list(self.client.query(runtime_status=["Completed", "Failed"], prefix=prefix, top=2))
        self.assertEqual(len(completed), 5)
        self.assertEqual(list(self.client.query(runtime_status="Running", prefix=prefix)), [])
        now = datetime.now(timezone.utc)
        self.assertEqual(len(list(self.client.query(prefix=prefix, created_from=now - timedelta(hours=1), top=3))), 5)
        self.assertEqual(list(self.client.query(prefix=prefix, created_to=now - timedelta(hours=1))), [])
        self.assertEqual(list(self.client.query(prefix=prefix, created_from="2999-01-01T00:00:00Z")), [])

    def test_missing_instances(self):
        missing = new_id("missing")
        self.assertIsNone(self.client.status(missing))
        with self.assertRaises(NotFound):
            self.client.wait(missing, timeout_s=1)
        with self.assertRaises(NotFound) as e:
            self.client.raise_event(missing, "ApprovalEvent", True)
        self.assertEqual(e.exception.status, 404)
        self.assertIn(missing, e.exception.message, "the server's ExceptionMessage")
        for call in (self.client.terminate, self.client.suspend, self.client.resume, self.client.purge):
            with self.assertRaises(NotFound, msg=call.__name__):
                call(missing)

    def test_refusals_are_typed_and_carry_the_servers_message(self):
        with self.assertRaises(BadRequest) as e:
            self.client.start("NoSuchOrchestrator")
        self.assertEqual(e.exception.status, 400)
        self.assertIn("NoSuchOrchestrator", e.exception.message)
        with self.assertRaises(BadRequest):
            self.client.start("HelloCities", instance_id="@not-an-id")

        iid = self.start_waiting_approval("conflict")
        with self.assertRaises(Conflict) as e:
            self.client.start("ApprovalWorkflow", APPROVAL_INPUT, instance_id=iid)
        self.assertEqual(e.exception.status, 409)
        self.assertTrue(e.exception.message)
        # Purging an unfinished instance: 412.
        with self.assertRaises(Conflict) as e:
            self.client.purge(iid)
        self.assertEqual(e.exception.status, 412)
        self.client.terminate(iid)
        self.client.wait(iid, timeout_s=60)

    def test_purge(self):
        done = self.client.start_and_wait("HelloCities", instance_id=new_id("purge"), timeout_s=60)
        self.assertEqual(self.client.purge(done.instance_id), 1)
        self.assertIsNone(self.client.status(done.instance_id))
        with self.assertRaises(NotFound):
            self.client.purge(done.instance_id)

    def test_unreachable_server(self):
        # A port nothing listens on (the server's own, plus a closed one is
        # not guaranteed): a reserved, unroutable-on-loopback address.
        client = CairnClient("http://127.0.0.1:9", timeout=5)
        with self.assertRaises(CairnError) as e:
            client.status("x")
        self.assertIsNone(e.exception.status)

    def test_bad_base_url(self):
        with self.assertRaises(ValueError):
            CairnClient("127.0.0.1:7071")


class ApiKeyTest(unittest.TestCase):
    def setUp(self):
        self.url = env("CAIRN_KEYED_URL")
        self.key = env("CAIRN_API_KEY")

    def test_a_wrong_or_missing_key_is_unauthorized(self):
        for key in ("wrong-key", None):
            client = CairnClient(self.url, api_key=key)
            with self.assertRaises(Unauthorized) as e:
                list(client.query())
            self.assertEqual(e.exception.status, 401)
            self.assertTrue(e.exception.message)
            with self.assertRaises(Unauthorized):
                client.start("HelloCities")
            with self.assertRaises(Unauthorized, msg="401 before the missing instance's 404"):
                client.status("no-such-instance")

    def test_the_right_key_works(self):
        client = CairnClient(self.url, api_key=self.key)
        done = client.start_and_wait("HelloCities", instance_id=new_id("keyed"), timeout_s=60)
        self.assertEqual((done.runtime_status, done.output), ("Completed", HELLO))
        self.assertIn(done.instance_id, [s.instance_id for s in client.query(prefix="py-keyed-")])


if __name__ == "__main__":
    unittest.main()

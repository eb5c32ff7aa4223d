"""Functions used by the host's guest I/O tests (tests/e2e/guest_io.rs):
activities with real WASI under their component's grants, and an
orchestrator that tries the same I/O. Built in two parts (cairn.json):
io.wasm (orchestrators, no WASI) and io.activities.wasm (activities, WASI
and wasi:http).

Orchestrators:
- `CallsActivity`, input `{"name", "input"}`: calls that activity and
  returns `{"ok": output}` or the caught failure `{"error_type", "message"}`.
- `CallsWithRetry`, input `{"name", "input", "attempts"}`: the same with
  a retry policy of `attempts` attempts, 10 ms apart.
- `TriesIO`, input the name of an I/O (`"time"`, `"open"`, `"listdir"`,
  `"env"`, `"http"`, `"urandom"`): tries it in the orchestrator and returns
  the error type it raised, or `{"value": ...}` when it did not raise.

Activities:
- `ReadFile` (path) -> text; `WriteFile` ({"path", "text"}) -> bytes
  written; `ListDir` (path) -> sorted names.
- `ReadEnv` (name) -> the value, or null when the variable is not visible.
- `Entropy` -> `{"time", "monotonic", "now", "random", "token"}`.
- `Fetch` (url) -> `{"status", "text", "server", "json"}` of a GET;
  `FetchFailingFirst` (url) -> GETs it, fails on attempt 1, returns
  `{"status", "attempt"}` on later ones; `FetchSwallowed` (url) -> the GET's failure, caught.
- `Post` ({"url", "body"}) -> the reply's status and text.
"""

import datetime
import os
import random
import secrets
import time

import cairn_sdk
from cairn_sdk import http

app = cairn_sdk.App()


@app.orchestrator("CallsActivity")
def calls_activity(context):
    call = context.get_input()
    try:
        out = yield context.call_activity(call["name"], call.get("input"))
        return {"ok": out}
    except cairn_sdk.ActivityFailedError as e:
        return {"error_type": e.error_type, "message": e.message}


@app.orchestrator("CallsWithRetry")
def calls_with_retry(context):
    call = context.get_input()
    options = cairn_sdk.RetryOptions(10, call["attempts"])
    try:
        out = yield context.call_activity_with_retry(call["name"], options, call.get("input"))
        return {"ok": out}
    except cairn_sdk.ActivityFailedError as e:
        return {"error_type": e.error_type, "message": e.message}


@app.orchestrator("TriesIO")
def tries_io(context, what):
    try:
        if what == "time":
            value = time.time()
        elif what == "open":
            value = open("/data/note.txt").read()
        elif what == "listdir":
            value = os.listdir("/")
        elif what == "env":
            value = os.environ.get("CAIRN_IO_TEST_VAR")
        elif what == "http":
            value = http.get("http://127.0.0.1:1/").status_code
        elif what == "urandom":
            value = os.urandom(4).hex()
        else:
            raise ValueError(what)
        return {"value": value}
    except Exception as e:  # noqa: BLE001 - the test wants the type
        return getattr(e, "error_type", type(e).__name__)


@app.activity("ReadFile")
def read_file(path):
    with open(path) as f:
        return f.read()


@app.activity("WriteFile")
def write_file(args):
    with open(args["path"], "w") as f:
        return f.write(args["text"])


@app.activity("ListDir")
def list_dir(path):
    return sorted(os.listdir(path))


@app.activity("ReadEnv")
def read_env(name):
    return os.environ.get(name)


@app.activity("Entropy")
def entropy():
    return {
        "time": time.time(),
        "monotonic": time.monotonic_ns(),
        "now": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "random": random.random(),
        "token": secrets.token_hex(8),
    }


@app.activity("Fetch")
def fetch(url):
    r = http.get(url, headers={"x-cairn-test": "1"}, timeout=5)
    try:
        body = r.json()
    except ValueError:
        body = None
    return {"status": r.status_code, "text": r.text, "server": r.headers.get("X-Server"), "json": body}


@app.activity("FetchFailingFirst")
def fetch_failing_first(context, url):
    r = http.get(url, timeout=5)
    if context.attempt == 1:
        raise cairn_sdk.Failure("Flaky", f"attempt 1 got {r.status_code} and fails anyway")
    return {"status": r.status_code, "attempt": context.attempt}


@app.activity("FetchSwallowed")
def fetch_swallowed(url):
    try:
        http.get(url, timeout=5)
        return "sent"
    except http.RequestException as e:
        return f"caught {e.error_type}"
    except cairn_sdk.CapabilityDeniedError as e:
        return f"caught {e.error_type}"


@app.activity("Post")
def post(args):
    r = http.post(args["url"], json=args["body"], timeout=5)
    return {"status": r.status_code, "text": r.text}


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

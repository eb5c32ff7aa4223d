"""An activity that calls an HTTP API, and an orchestrator that uses it.

- Orchestrator `CallHttpApi`, input `{"url": ..., "names": [...]}`: calls
  `GetGreeting` for each name, in order; returns the greetings.
- Activity `GetGreeting`, input `{"url", "name"}`: `GET url?name=<name>`
  with the SDK's requests-like client; returns the reply's JSON
  `greeting` (or its text), failing with `HTTPError` on a 4xx/5xx status.

cairn.json asks for WASI activities with HTTP; grant the API's host at
deploy: `cairn deploy target/guests/python/http-call.wasm --allow-http
127.0.0.1:8080`.
"""

import cairn_sdk
from cairn_sdk import http as requests

app = cairn_sdk.App()


@app.orchestrator("CallHttpApi")
def call_http_api(context):
    args = context.get_input()
    greetings = []
    for name in args["names"]:
        greeting = yield context.call_activity("GetGreeting", {"url": args["url"], "name": name})
        greetings.append(greeting)
    return greetings


@app.activity("GetGreeting")
def get_greeting(args):
    r = requests.get(args["url"], params={"name": args["name"]}, timeout=10)
    r.raise_for_status()
    if r.headers.get("content-type", "").startswith("application/json"):
        return r.json()["greeting"]
    return r.text


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)

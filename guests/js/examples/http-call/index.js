// An activity that calls an HTTP API with fetch, and an orchestrator that
// uses it (the same functions as guests/python/examples/http-call):
// - orchestrator `CallHttpApi`, input `{url, names}`: calls `GetGreeting`
//   for each name, in order, and returns the greetings;
// - activity `GetGreeting`, input `{url, name}`: `GET url?name=<name>`,
//   returns the reply's JSON `greeting`; a 4xx/5xx status fails it with
//   `HTTPError`.
//
// cairn.json asks for WASI activities with HTTP. Grant the API's host at
// deploy: `cairn deploy target/guests/js/http-call.wasm --allow-http 127.0.0.1:8080`.

import * as df from "cairn-sdk";

const CallHttpApi = df.orchestrator(function* (context) {
  const { url, names } = context.df.getInput();
  const greetings = [];
  for (const name of names) {
    greetings.push(yield context.df.callActivity("GetGreeting", { url, name }));
  }
  return greetings;
});

async function GetGreeting(context, { url, name }) {
  const response = await fetch(`${url}?name=${encodeURIComponent(name)}`);
  if (!response.ok) throw new df.DurableError("HTTPError", `${response.status} from ${url}`);
  const body = await response.json();
  return body.greeting;
}

export const functions = df.app({
  orchestrators: { CallHttpApi },
  activities: { GetGreeting },
});

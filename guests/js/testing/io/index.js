// Functions used by the host's guest I/O tests (tests/e2e/guest_io.rs):
// activities with real WASI under their component's grants, and an
// orchestrator that tries the same I/O. Built in two parts (cairn.json):
// io.wasm (orchestrators, QuickJS without WASI) and io.activities.wasm
// (activities, StarlingMonkey with WASI and wasi:http). The same functions,
// inputs and outputs as guests/python/testing/io.
//
// Orchestrators:
// - `CallsActivity`, input `{name, input}`: calls that activity and returns
//   `{ok: output}` or the caught failure `{error_type, message}`.
// - `CallsWithRetry`, input `{name, input, attempts}`: the same with a
//   retry policy of `attempts` attempts, 10 ms apart.
// - `TriesIO`, input the name of an I/O ("time", "open", "listdir", "env",
//   "http", "urandom"): tries it and returns the error type it threw, or
//   `{value}` when it did not throw.
//
// Activities: `ReadFile` (path) -> text; `WriteFile` ({path, text}) ->
// bytes written; `ListDir` (path) -> sorted names; `ReadEnv` (name) -> the
// value or null; `Entropy` -> {time, monotonic, now, random, token};
// `Fetch` (url) -> {status, text, server, json}; `FetchFailingFirst` (url)
// -> GETs it, fails on attempt 1, returns {status, attempt} on later ones;
// `FetchSwallowed` (url) ->
// the GET's failure, caught; `Post` ({url, body}) -> {status, text}.

import * as df from "cairn-sdk";
import { fs, env } from "cairn-sdk";

const CallsActivity = df.orchestrator(function* (context) {
  const call = context.df.getInput();
  try {
    return { ok: yield context.df.callActivity(call.name, call.input ?? null) };
  } catch (e) {
    return { error_type: e.errorType, message: e.message };
  }
});

const CallsWithRetry = df.orchestrator(function* (context) {
  const call = context.df.getInput();
  const options = new df.RetryOptions(10, call.attempts);
  try {
    return { ok: yield context.df.callActivityWithRetry(call.name, options, call.input ?? null) };
  } catch (e) {
    return { error_type: e.errorType, message: e.message };
  }
});

function TriesIO(context, what) {
  try {
    let value;
    if (what === "time") value = Date.now() === context.currentUtcDateTime.getTime() ? "episode time" : Date.now();
    else if (what === "open") value = fs.readFileSync("/data/note.txt", "utf8");
    else if (what === "listdir") value = fs.readdirSync("/");
    else if (what === "env") value = env.CAIRN_IO_TEST_VAR ?? null;
    else if (what === "http") value = typeof fetch === "function" ? "has fetch" : "no fetch";
    else if (what === "urandom") value = typeof crypto === "object" ? "has crypto" : "no crypto";
    else throw new TypeError(what);
    return typeof value === "string" ? value : { value };
  } catch (e) {
    return e.errorType ?? e.name;
  }
}

const text = (s) => new TextEncoder().encode(s).length;

export const functions = df.app({
  orchestrators: { CallsActivity, CallsWithRetry, TriesIO },
  activities: {
    ReadFile: (context, path) => fs.readFileSync(path, "utf8"),
    WriteFile: (context, { path, text: body }) => {
      fs.writeFileSync(path, body);
      return text(body);
    },
    ListDir: (context, path) => fs.readdirSync(path),
    ReadEnv: (context, name) => process.env[name] ?? null,
    Entropy: () => {
      const bytes = crypto.getRandomValues(new Uint8Array(8));
      return {
        time: Date.now() / 1000,
        monotonic: performance.now(),
        now: new Date().toISOString(),
        random: Math.random(),
        token: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
      };
    },
    Fetch: async (context, url) => {
      const response = await fetch(url, { headers: { "x-cairn-test": "1" } });
      const body = await response.text();
      let json = null;
      try {
        json = JSON.parse(body);
      } catch {}
      return { status: response.status, text: body, server: response.headers.get("X-Server"), json };
    },
    FetchFailingFirst: async (context, url) => {
      const response = await fetch(url);
      if (context.attempt === 1) {
        throw new df.DurableError("Flaky", `attempt 1 got ${response.status} and fails anyway`);
      }
      return { status: response.status, attempt: context.attempt };
    },
    FetchSwallowed: async (context, url) => {
      try {
        await fetch(url);
        return "sent";
      } catch (e) {
        return `caught ${e.name}`;
      }
    },
    Post: async (context, { url, body }) => {
      const response = await fetch(new Request(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }));
      return { status: response.status, text: await response.text() };
    },
  },
});

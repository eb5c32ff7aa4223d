// A small client for Cairn's HTTP API (the Durable Functions routes under
// /runtime/webhooks/durabletask). ESM, no dependencies: Node 20's fetch.

/** Where the Durable Functions routes live under the server's base URL. */
export const DURABLE_PATH = "/runtime/webhooks/durabletask";

/** Statuses after which an instance never changes again. */
export const TERMINAL_STATUSES = Object.freeze(["Completed", "Failed", "Terminated", "Canceled"]);

/** Longest wait the server grants a start with `?timeout=` (seconds). */
export const SERVER_MAX_WAIT_S = 600;

const CONTINUATION = "x-ms-continuation-token";

// ---- errors ---------------------------------------------------------------

/** A request failed. `status` is the HTTP status (undefined when the server
 * could not be reached), `serverMessage` the server's `ExceptionMessage`. */
export class CairnError extends Error {
  constructor(message, { status, errorType, body, cause } = {}) {
    super(status === undefined ? message : `${status}: ${message}`, cause ? { cause } : undefined);
    this.name = new.target.name;
    this.serverMessage = message;
    this.status = status;
    this.errorType = errorType;
    this.body = body;
  }
}

/** 400: a malformed argument, an unknown orchestrator, an invalid id. */
export class BadRequest extends CairnError {}
/** 401: the API key is missing or wrong. */
export class Unauthorized extends CairnError {}
/** 403: refused (grants without a key, a foreign Host or Origin). */
export class Forbidden extends CairnError {}
/** 404: no such instance. */
export class NotFound extends CairnError {}
/** 409 (id in use), 410 (the instance finished), 412 (not finished / not Failed). */
export class Conflict extends CairnError {}
/** The instance did not finish within the wait; `lastStatus` is the status seen last. */
export class WaitTimeout extends CairnError {
  constructor(message, lastStatus) {
    super(message);
    this.lastStatus = lastStatus;
  }
}

const BY_STATUS = { 400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Conflict, 412: Conflict };

/** The typed error of an error response. */
export function errorFor(status, text) {
  let doc;
  try {
    doc = text ? JSON.parse(text) : undefined;
  } catch {
    doc = undefined;
  }
  let message;
  let errorType;
  if (doc && typeof doc === "object" && !Array.isArray(doc)) {
    message = doc.ExceptionMessage || doc.Message;
    errorType = doc.ExceptionType;
  }
  if (!message) message = (text || "").trim() || `HTTP ${status}`;
  const Cls = BY_STATUS[status] ?? CairnError;
  return new Cls(message, { status, errorType, body: doc });
}

// ---- status ---------------------------------------------------------------

function parseTime(value) {
  if (typeof value !== "string" || !value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** An instance's status document, with camelCase fields and Date times. */
export function toInstanceStatus(doc) {
  return {
    name: doc.name ?? "",
    instanceId: doc.instanceId ?? "",
    runtimeStatus: doc.runtimeStatus ?? "",
    input: doc.input ?? null,
    output: doc.output ?? null,
    customStatus: doc.customStatus ?? null,
    createdTime: parseTime(doc.createdTime),
    lastUpdatedTime: parseTime(doc.lastUpdatedTime),
    failureDetails: doc.failureDetails ?? null,
    historyEvents: doc.historyEvents ?? null,
    raw: doc,
  };
}

/** Completed, Failed, Terminated or Canceled. */
export function isTerminal(status) {
  return TERMINAL_STATUSES.includes(status.runtimeStatus);
}

function timeArg(value) {
  return value instanceof Date ? value.toISOString() : value;
}

function enc(segment) {
  if (typeof segment !== "string" || segment === "") {
    throw new TypeError("an instance id, orchestrator or event name is a non-empty string");
  }
  return encodeURIComponent(segment);
}

function randomId() {
  return globalThis.crypto.randomUUID().replaceAll("-", "");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- client ---------------------------------------------------------------

export class CairnClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the server's root, default http://127.0.0.1:7071
   * @param {string} [options.apiKey] sent as the x-functions-key header
   * @param {number} [options.timeoutMs] bound of each request (waits extend it), default 30000
   */
  constructor({ baseUrl = "http://127.0.0.1:7071", apiKey, timeoutMs = 30_000 } = {}) {
    let url;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new TypeError(`baseUrl must be an http:// or https:// URL, not ${JSON.stringify(baseUrl)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`baseUrl must be an http:// or https:// URL, not ${JSON.stringify(baseUrl)}`);
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
  }

  async #request(method, path, { query, body, hasBody = false, headers = {}, timeoutMs } = {}) {
    // Cairn's own routes start with /api; the rest are Durable Functions'.
    let url = this.baseUrl + (path.startsWith("/api/") ? path : DURABLE_PATH + path);
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null) params.append(k, String(v));
      }
      const qs = params.toString();
      if (qs) url += `?${qs}`;
    }
    const all = { Accept: "application/json", ...headers };
    if (this.apiKey !== undefined && this.apiKey !== null) all["x-functions-key"] = this.apiKey;
    if (hasBody) all["Content-Type"] = "application/json";
    let response;
    let text;
    try {
      response = await fetch(url, {
        method,
        headers: all,
        body: hasBody ? JSON.stringify(body === undefined ? null : body) : undefined,
        signal: AbortSignal.timeout(timeoutMs ?? this.timeoutMs),
        redirect: "error",
      });
      text = await response.text();
    } catch (e) {
      throw new CairnError(`${method} ${path}: cannot reach ${this.baseUrl}: ${e?.cause?.message ?? e?.message ?? e}`, {
        cause: e,
      });
    }
    if (response.status >= 400) throw errorFor(response.status, text);
    return {
      status: response.status,
      headers: response.headers,
      json: () => (text ? JSON.parse(text) : null),
    };
  }

  /**
   * Starts orchestrator `name`; resolves to the instance id.
   * @returns {Promise<string>}
   */
  async start(name, { input, instanceId, version } = {}) {
    let path = `/orchestrators/${enc(name)}`;
    if (instanceId !== undefined) path += `/${enc(instanceId)}`;
    const r = await this.#request("POST", path, { query: { version }, body: input, hasBody: input !== undefined });
    return r.json().id;
  }

  /**
   * Starts `name` and waits until it finishes (the server's `?timeout=` wait).
   * Rejects with WaitTimeout when it is still running after `timeoutS` seconds.
   */
  async startAndWait(name, { input, instanceId, version, timeoutS = 60 } = {}) {
    const deadline = Date.now() + timeoutS * 1000;
    // Chosen here so that the status can be read afterwards (a completed
    // wait answers with the bare output).
    const id = instanceId ?? randomId();
    const serverWait = Math.min(timeoutS, SERVER_MAX_WAIT_S);
    await this.#request("POST", `/orchestrators/${enc(name)}/${enc(id)}`, {
      query: { version, timeout: serverWait },
      body: input,
      hasBody: input !== undefined,
      timeoutMs: this.timeoutMs + serverWait * 1000,
    });
    return this.wait(id, Math.max(0, deadline - Date.now()) / 1000);
  }

  /** The instance's status, or null when there is no such instance. */
  async status(instanceId, { showInput = false, showHistory = false } = {}) {
    const query = { showInput };
    if (showHistory) Object.assign(query, { showHistory: true, showHistoryOutput: true });
    try {
      const r = await this.#request("GET", `/instances/${enc(instanceId)}`, { query });
      return toInstanceStatus(r.json());
    } catch (e) {
      if (e instanceof NotFound) return null;
      throw e;
    }
  }

  /**
   * Waits until the instance is Completed, Failed, Terminated or Canceled.
   * The API has no wait for an existing instance: this polls its status
   * (50 ms at first, backing off to 1 s). Rejects with NotFound, or
   * WaitTimeout after `timeoutS` seconds.
   */
  async wait(instanceId, timeoutS = 60) {
    // The server holds the request until the instance finishes (at most
    // 300 s per request; only this instance's completion wakes it).
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const sliceS = Math.min(Math.max(0, deadline - Date.now()) / 1000, 300);
      const r = await this.#request("GET", `/api/instances/${enc(instanceId)}/wait`, {
        query: { timeout: sliceS.toFixed(3) },
        timeoutMs: sliceS * 1000 + this.timeoutMs,
      });
      const current = toInstanceStatus(r.json());
      if (isTerminal(current)) return current;
      if (Date.now() >= deadline) {
        throw new WaitTimeout(`instance ${JSON.stringify(instanceId)} is still ${current.runtimeStatus} after ${timeoutS} s`, current);
      }
    }
  }

  /** Sends event `eventName` with `data` (any JSON value). */
  async raiseEvent(instanceId, eventName, data = null) {
    await this.#request("POST", `/instances/${enc(instanceId)}/raiseEvent/${enc(eventName)}`, {
      body: data,
      hasBody: true,
    });
  }

  async #action(instanceId, action, reason) {
    await this.#request("POST", `/instances/${enc(instanceId)}/${action}`, { query: { reason } });
  }

  /** Terminates the instance (applied by the engine right after). */
  terminate(instanceId, reason) {
    return this.#action(instanceId, "terminate", reason);
  }

  /** Suspends the instance. */
  suspend(instanceId, reason) {
    return this.#action(instanceId, "suspend", reason);
  }

  /** Resumes a suspended instance. */
  resume(instanceId, reason) {
    return this.#action(instanceId, "resume", reason);
  }

  /** One page of instances and the next page's token (null on the last page). */
  async queryPage({ runtimeStatus, createdFrom, createdTo, prefix, top, showInput = false, continuationToken } = {}) {
    const query = {
      runtimeStatus: Array.isArray(runtimeStatus) ? runtimeStatus.join(",") : runtimeStatus,
      createdTimeFrom: createdFrom === undefined ? undefined : timeArg(createdFrom),
      createdTimeTo: createdTo === undefined ? undefined : timeArg(createdTo),
      instanceIdPrefix: prefix,
      top,
      showInput: showInput ? true : undefined,
    };
    const headers = continuationToken ? { [CONTINUATION]: continuationToken } : {};
    const r = await this.#request("GET", "/instances", { query, headers });
    return {
      instances: (r.json() ?? []).map(toInstanceStatus),
      continuationToken: r.headers.get(CONTINUATION) || null,
    };
  }

  /** Every matching instance, page by page (`top` is the page size). */
  async *query(filter = {}) {
    let continuationToken;
    for (;;) {
      const page = await this.queryPage({ ...filter, continuationToken });
      yield* page.instances;
      if (!page.continuationToken) return;
      continuationToken = page.continuationToken;
    }
  }

  /** As `query`, collected into an array. */
  async queryAll(filter = {}) {
    const out = [];
    for await (const s of this.query(filter)) out.push(s);
    return out;
  }

  /** Deletes a finished instance and its history; resolves to the number deleted (1). */
  async purge(instanceId) {
    const r = await this.#request("DELETE", `/instances/${enc(instanceId)}`);
    return Number(r.json()?.instancesDeleted ?? 0);
  }
}

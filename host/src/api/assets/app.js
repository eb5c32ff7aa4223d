// Cairn console: plain JavaScript, no framework, nothing loaded from
// elsewhere. Data comes from the Durable Functions routes and /api/console.
"use strict";

const DF = "/runtime/webhooks/durabletask";
const STATUSES = ["Pending", "Running", "Suspended", "Completed", "Failed", "Terminated", "ContinuedAsNew", "Canceled"];
const TERMINAL = ["Completed", "Failed", "Terminated", "Canceled"];

const state = {
  csrf: null,
  keyRequired: false,
  refreshTimer: null,
  listTokens: [null], // continuation tokens of the pages seen (back navigation)
  listPage: 0,
  tab: "timeline",
  travel: null,
};

// ---- DOM helpers --------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") {
      // Through the CSSOM: the content security policy forbids style attributes.
      for (const decl of v.split(";")) {
        const i = decl.indexOf(":");
        if (i > 0) el.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
      }
    }
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function main() {
  return document.getElementById("main");
}

function setMain(...nodes) {
  main().replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function notify(text, error) {
  const box = document.getElementById("notice");
  const msg = h("div", { class: "msg" + (error ? " error" : ""), role: error ? "alert" : null }, text);
  box.append(msg);
  setTimeout(() => msg.remove(), error ? 8000 : 4000);
}

function json(v) {
  return v === undefined ? "" : JSON.stringify(v, null, 2);
}

function short(v, n) {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  if (s === undefined) return "";
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function badge(status) {
  return h("span", { class: "badge " + status, "data-test": "status" }, status);
}

function instanceLink(id, text) {
  return h("a", { href: "#/instance/" + encodeURIComponent(id), class: "mono" }, text || id);
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function fmtDuration(ms) {
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  if (ms < 3600000) return (ms / 60000).toFixed(1) + " min";
  return (ms / 3600000).toFixed(1) + " h";
}

// ---- API ----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && state.csrf) headers["X-Cairn-CSRF"] = state.csrf;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = text;
  }
  if (r.status === 401 && !url.startsWith("/api/console/session")) {
    showSignIn();
    throw new ApiError(401, "Sign in to continue");
  }
  if (r.status >= 400) {
    const msg = (data && (data.ExceptionMessage || data.Message)) || r.statusText;
    throw new ApiError(r.status, msg);
  }
  return { status: r.status, data, headers: r.headers };
}

// ---- sign-in -----------------------------------------------------------

async function loadSession() {
  const r = await api("GET", "/api/console/session");
  state.keyRequired = r.data.keyRequired;
  state.csrf = r.data.csrf || null;
  document.getElementById("sign-out").hidden = !(state.keyRequired && r.data.signedIn);
  return r.data.signedIn;
}

function showSignIn() {
  stopRefresh();
  document.getElementById("sign-out").hidden = true;
  const err = h("p", { class: "error-text", id: "signin-error", role: "alert" });
  const key = h("input", { type: "password", id: "api-key", name: "key", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = "";
        try {
          const r = await api("POST", "/api/console/session", { key: key.value });
          state.csrf = r.data.csrf;
          key.value = "";
          document.getElementById("sign-out").hidden = false;
          route();
        } catch (x) {
          err.textContent = x.status === 401 ? "That key is not valid." : x.message;
          key.focus();
        }
      },
    },
    h("label", { for: "api-key" }, "API key", key),
    h("button", { type: "submit", class: "primary", id: "sign-in" }, "Sign in"),
    err,
  );
  setMain(h("section", { class: "signin card", "aria-labelledby": "signin-title" }, h("h1", { id: "signin-title" }, "Sign in to Cairn"), h("p", { class: "muted" }, "This server needs its API key. It is exchanged for a session cookie; it is not kept in the page."), form));
  key.focus();
}

async function signOut() {
  try {
    await api("DELETE", "/api/console/session");
  } catch (_) {}
  state.csrf = null;
  showSignIn();
}

// ---- refresh -------------------------------------------------------------

function stopRefresh() {
  if (state.refreshTimer) clearInterval(state.refreshTimer);
  state.refreshTimer = null;
}

function startRefresh(fn, ms) {
  stopRefresh();
  state.refreshTimer = setInterval(() => {
    // Never redraw under the user's hands.
    const active = document.activeElement;
    const typing = active && ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName);
    if (document.hidden || typing || document.getElementById("confirm").open) return;
    fn().catch(() => {});
  }, ms);
}

// ---- instances -----------------------------------------------------------

function listParams() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return q;
}

async function viewInstances() {
  const q = listParams();
  const selected = new Set((q.get("status") || "").split(",").filter(Boolean));
  const name = h("input", { id: "f-name", name: "name", value: q.get("name") || "", placeholder: "HelloCities" });
  const prefix = h("input", { id: "f-prefix", name: "prefix", value: q.get("prefix") || "", placeholder: "order-" });
  const from = h("input", { id: "f-from", name: "from", type: "datetime-local", step: "1", value: q.get("from") || "" });
  const to = h("input", { id: "f-to", name: "to", type: "datetime-local", step: "1", value: q.get("to") || "" });
  const auto = h("input", { type: "checkbox", id: "f-auto", checked: q.get("auto") !== "0" });
  const apply = (statuses) => {
    const p = new URLSearchParams();
    if (statuses.size) p.set("status", [...statuses].join(","));
    if (name.value.trim()) p.set("name", name.value.trim());
    if (prefix.value.trim()) p.set("prefix", prefix.value.trim());
    if (from.value) p.set("from", from.value);
    if (to.value) p.set("to", to.value);
    if (!auto.checked) p.set("auto", "0");
    state.listTokens = [null];
    state.listPage = 0;
    const hash = "#/instances" + (p.toString() ? "?" + p : "");
    if (location.hash === hash) route();
    else location.hash = hash;
  };
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter instances", onsubmit: (e) => { e.preventDefault(); apply(selected); } },
    h("label", { for: "f-name" }, "Orchestrator name", name),
    h("label", { for: "f-prefix" }, "Instance id prefix", prefix),
    h("label", { for: "f-from" }, "Created from (local time)", from),
    h("label", { for: "f-to" }, "Created to (local time)", to),
    h("button", { type: "submit", class: "primary", id: "f-apply" }, "Apply"),
    h("button", { type: "button", onclick: () => { name.value = prefix.value = from.value = to.value = ""; apply(new Set()); } }, "Clear"),
    h("label", { class: "inline", for: "f-auto" }, h("span", {}, auto, " Auto-refresh (5 s)")),
  );
  auto.addEventListener("change", () => apply(selected));
  const chips = h("div", { class: "chips", role: "group", "aria-label": "Filter by status (counts match the other filters)", id: "status-chips" });
  const body = h("tbody", { id: "instances-body" });
  const table = h(
    "table",
    { "aria-label": "Instances", id: "instances" },
    h("thead", {}, h("tr", {}, ["Instance id", "Orchestrator", "Status", "Created", "Last updated", "Custom status"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  const pageInfo = h("span", { class: "muted", id: "page-info" });
  const newer = h("button", { type: "button", id: "page-newer", onclick: () => { state.listPage--; load(); } }, "← Newer");
  const older = h("button", { type: "button", id: "page-older", onclick: () => { state.listPage++; load(); } }, "Older →");
  setMain(h("h1", {}, "Instances"), h("div", { class: "card" }, form, chips), h("div", { class: "pager" }, newer, older, pageInfo), table);

  async function load() {
    const p = new URLSearchParams();
    if (selected.size) p.set("status", [...selected].join(","));
    for (const k of ["name", "prefix"]) if (q.get(k)) p.set(k, q.get(k));
    for (const k of ["from", "to"]) if (q.get(k)) p.set(k, new Date(q.get(k)).toISOString());
    p.set("top", "50");
    const token = state.listTokens[state.listPage];
    if (token) p.set("after", token);
    const started = performance.now();
    const r = await api("GET", "/api/console/instances?" + p);
    const d = r.data;
    state.listTokens[state.listPage + 1] = d.next;
    chips.replaceChildren(
      ...STATUSES.map((s) =>
        h(
          "button",
          {
            type: "button",
            class: "chip",
            "data-status": s,
            "aria-pressed": selected.has(s) ? "true" : "false",
            onclick: () => { selected.has(s) ? selected.delete(s) : selected.add(s); apply(selected); },
          },
          s,
          h("span", { class: "n" }, String(d.counts[s] || 0)),
        ),
      ),
    );
    body.replaceChildren(
      ...(d.instances.length
        ? d.instances.map((i) =>
            h(
              "tr",
              { "data-test": "instance-row", "data-id": i.instanceId },
              h("td", {}, instanceLink(i.instanceId)),
              h("td", {}, i.name),
              h("td", {}, badge(i.runtimeStatus)),
              h("td", { title: i.createdAt }, fmtTime(i.createdAt)),
              h("td", { title: i.updatedAt }, fmtTime(i.updatedAt)),
              h("td", { class: "json mono" }, i.customStatus === null ? "" : short(i.customStatus, 60)),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No instance matches."))]),
    );
    newer.disabled = state.listPage === 0;
    older.disabled = !d.next;
    const matching = selected.size ? [...selected].reduce((n, s) => n + (d.counts[s] || 0), 0) : d.total;
    pageInfo.textContent = `Page ${state.listPage + 1} · ${matching} matching · ${Math.round(performance.now() - started)} ms`;
    main().setAttribute("data-loaded", "instances");
  }
  await load();
  if (auto.checked) startRefresh(load, 5000);
}

// ---- one instance --------------------------------------------------------

async function action(id, verb, opts) {
  const enc = encodeURIComponent(id);
  const confirmText = {
    terminate: `Terminate ${id}? It stops for good.`,
    rewind: `Rewind ${id}? Its failed tasks run again.`,
    restart: `Restart ${id} under a new instance id with the same input?`,
    purge: `Purge ${id}? Its history is deleted; this cannot be undone.`,
  }[verb];
  if (confirmText && !(await confirmDialog(confirmText, verb[0].toUpperCase() + verb.slice(1)))) return;
  try {
    if (verb === "purge") {
      await api("DELETE", `${DF}/instances/${enc}`);
      notify(`Purged ${id}`);
      location.hash = "#/instances";
      return;
    }
    if (verb === "raise") {
      await api("POST", `${DF}/instances/${enc}/raiseEvent/${encodeURIComponent(opts.name)}`, opts.data);
      notify(`Raised ${opts.name} to ${id}`);
    } else {
      const reason = "from the console";
      const r = await api("POST", `${DF}/instances/${enc}/${verb}?reason=${encodeURIComponent(reason)}`);
      if (verb === "restart" && r.data && r.data.id) {
        notify(`Restarted as ${r.data.id}`);
        location.hash = "#/instance/" + encodeURIComponent(r.data.id);
        return;
      }
      notify(`${verb[0].toUpperCase() + verb.slice(1)} sent to ${id}`);
    }
    setTimeout(() => route(true), 300);
  } catch (x) {
    notify(x.message, true);
  }
}

function confirmDialog(text, label) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = label;
  d.returnValue = "";
  d.showModal();
  document.getElementById("confirm-cancel").focus();
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
  });
}

async function viewInstance(id, keepTab) {
  if (!keepTab) {
    state.tab = "timeline";
    state.travel = null;
  }
  const r = await api("GET", "/api/console/instances/" + encodeURIComponent(id));
  const d = r.data;
  const s = d.status;
  const done = TERMINAL.includes(s.runtimeStatus);
  const btn = (verb, label, enabled, cls) =>
    h("button", { type: "button", id: "act-" + verb, class: cls || null, disabled: !enabled, onclick: () => action(id, verb) }, label);
  const evName = h("input", { id: "ev-name", value: "ApprovalEvent", required: true });
  const evData = h("textarea", { id: "ev-data", spellcheck: "false" }, "true");
  const raise = h(
    "form",
    {
      class: "raise",
      "aria-label": "Raise an event",
      onsubmit: (e) => {
        e.preventDefault();
        let data;
        try {
          data = evData.value.trim() ? JSON.parse(evData.value) : null;
        } catch (_) {
          notify("The event data is not valid JSON", true);
          evData.focus();
          return;
        }
        action(id, "raise", { name: evName.value.trim(), data });
      },
    },
    h("label", { for: "ev-name" }, "Event name", evName),
    h("label", { for: "ev-data" }, "Data (JSON)", evData),
    h("button", { type: "submit", id: "act-raise", disabled: done }, "Raise event"),
  );
  const kv = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const failure = d.failure && typeof d.failure === "object" ? d.failure : null;
  const overview = h(
    "div",
    { class: "card overview" },
    h(
      "dl",
      { class: "kv" },
      kv("Status", badge(s.runtimeStatus)),
      kv("Orchestrator", s.name),
      kv("Version", h("span", { class: "mono", title: d.version }, d.version.slice(0, 16) + "…")),
      kv("Created", fmtTime(s.createdAt)),
      kv("Last updated", fmtTime(s.updatedAt)),
      d.parentInstance ? kv("Parent", instanceLink(d.parentInstance)) : null,
      d.children.length ? kv("Children", h("span", {}, d.children.map((c, i) => [i ? ", " : "", instanceLink(c.instanceId), ` (${c.name})`]))) : null,
    ),
    h(
      "dl",
      { class: "kv" },
      kv("Input", h("pre", { id: "input" }, json(s.input))),
      kv("Output", h("pre", { id: "output" }, failure ? "" : json(s.output))),
      kv("Custom status", h("pre", { id: "custom-status" }, json(s.customStatus))),
    ),
    failure
      ? h(
          "div",
          { class: "card failure", id: "failure", role: "group", "aria-label": "Failure" },
          h("strong", {}, failure.ErrorType || "Failure"),
          h("p", {}, failure.Message || json(failure)),
          failure.Details ? h("pre", {}, failure.Details) : null,
        )
      : null,
  );
  const toolbar = h(
    "div",
    { class: "toolbar", role: "toolbar", "aria-label": "Instance actions" },
    btn("suspend", "Suspend", !done && s.runtimeStatus !== "Suspended"),
    btn("resume", "Resume", s.runtimeStatus === "Suspended"),
    btn("terminate", "Terminate", !done, "danger"),
    btn("rewind", "Rewind", s.runtimeStatus === "Failed", "danger"),
    btn("restart", "Restart", true, "danger"),
    btn("purge", "Purge", done, "danger"),
    h("button", { type: "button", onclick: () => route(true) }, "Refresh"),
  );
  const tabs = [
    ["timeline", "Timeline"],
    ["history", "History"],
    ["travel", "Time travel"],
  ];
  const panel = h("div", { class: "tabpanel", role: "tabpanel", id: "tabpanel", "aria-labelledby": "tab-" + state.tab });
  const tabBar = h(
    "div",
    { class: "tabs", role: "tablist", "aria-label": "Instance views" },
    tabs.map(([k, label]) =>
      h(
        "button",
        {
          type: "button",
          role: "tab",
          id: "tab-" + k,
          "aria-selected": state.tab === k ? "true" : "false",
          "aria-controls": "tabpanel",
          tabindex: state.tab === k ? "0" : "-1",
          onclick: () => { state.tab = k; viewInstance(id, true); },
          onkeydown: (e) => {
            const i = tabs.findIndex(([t]) => t === k);
            const j = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : null;
            if (j === null) return;
            state.tab = tabs[(j + tabs.length) % tabs.length][0];
            viewInstance(id, true).then(() => document.getElementById("tab-" + state.tab).focus());
          },
        },
        label,
      ),
    ),
  );
  if (state.tab === "timeline") panel.append(renderTimeline(d));
  else if (state.tab === "history") panel.append(renderHistory(id, d));
  else panel.append(renderTravel(id, d));
  setMain(
    h("h1", {}, "Instance ", h("span", { class: "mono", id: "instance-id" }, s.instanceId)),
    toolbar,
    overview,
    done ? null : h("div", { class: "card" }, h("h2", {}, "Raise an event"), raise),
    tabBar,
    panel,
  );
  main().setAttribute("data-loaded", "instance");
  if (!done && state.tab !== "travel") startRefresh(() => viewInstance(id, true), 3000);
  else stopRefresh();
}

function renderTimeline(d) {
  const t = d.timeline;
  const end = Math.max(t.end, ...t.bars.map((b) => b.end || 0), t.start + 1);
  const now = TERMINAL.includes(d.status.runtimeStatus) ? end : Math.max(end, Date.now());
  const span = Math.max(now - t.start, 1);
  const pct = (ms) => ((Math.min(Math.max(ms, t.start), now) - t.start) / span) * 100;
  const ticks = h("div", { class: "ticks", "aria-hidden": "true" });
  for (let i = 0; i <= 4; i++) ticks.append(h("span", { style: `left:${i * 25}%` }, "+" + fmtDuration((span * i) / 4)));
  const rows = t.bars.map((b, i) => {
    const track = h("div", { class: "track" });
    for (const e of t.episodes) track.append(h("div", { class: "episode", style: `left:${pct(e)}%` }));
    const endMs = b.end === null ? now : b.end;
    const kindClass = "k-" + b.kind;
    const label = `${b.kind} ${b.name || ""}`.trim();
    const desc = [
      label,
      `from +${fmtDuration(b.start - t.start)}`,
      b.end === null ? "still pending" : `to +${fmtDuration(b.end - t.start)} (${fmtDuration(b.end - b.start)})`,
      b.outcome,
      b.retries.length ? `${b.retries.length} retr${b.retries.length === 1 ? "y" : "ies"}` : null,
      b.failure ? `${b.failure.ErrorType}: ${b.failure.Message}` : null,
    ]
      .filter(Boolean)
      .join(", ");
    // Segments: lock wait, then section; retried attempts with their backoff gaps.
    const seg = (from, to, cls) =>
      track.append(h("div", { class: `bar ${kindClass} ${cls}`, style: `left:${pct(from)}%;width:${Math.max(pct(to) - pct(from), 0.25)}%` }));
    if (b.kind === "lock" && b.granted) {
      seg(b.start, b.granted, "wait");
      seg(b.granted, endMs, b.end === null ? "pending" : "");
    } else if (b.retries.length) {
      let from = b.start;
      for (const r of b.retries) {
        seg(from, r.failedAt, "failed");
        seg(r.failedAt, r.nextAttemptAt, "gap");
        track.append(h("div", { class: "mark retry", style: `left:${pct(r.failedAt)}%`, title: `attempt ${r.attempt} failed: ${r.failure.Message}` }));
        from = r.nextAttemptAt;
      }
      seg(from, endMs, b.outcome === "failed" ? "failed" : b.end === null ? "pending" : "");
    } else {
      seg(b.start, endMs, b.outcome === "failed" ? "failed" : b.end === null ? "pending" : b.outcome === "abandoned" ? "abandoned" : b.kind === "lock" ? "wait" : "");
    }
    if (b.outcome === "failed") track.append(h("div", { class: "mark", style: `left:${pct(endMs)}%`, title: "failed" }));
    const name =
      b.kind === "sub-orchestration" && b.child
        ? h("span", {}, b.name + " → ", instanceLink(b.child))
        : b.name || (b.kind === "timer" && b.fireAt ? "due " + fmtTime(new Date(b.fireAt).toISOString()) : "");
    return h(
      "div",
      {
        class: "row",
        role: "listitem",
        tabindex: "0",
        "aria-label": desc,
        title: desc,
        "data-test": "bar",
        "data-kind": b.kind,
        "data-outcome": b.outcome,
        "data-retries": String(b.retries.length),
        "data-index": String(i),
      },
      h("div", { class: "label" }, h("span", { class: "kind" }, b.kind), name),
      track,
    );
  });
  const legend = h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    [
      ["activity", "var(--bar-activity)"],
      ["durable HTTP", "var(--bar-http)"],
      ["timer", "var(--bar-timer)"],
      ["sub-orchestration", "var(--bar-sub)"],
      ["event wait", "var(--bar-event)"],
      ["lock (light: waiting)", "var(--bar-lock)"],
      ["failed", "var(--bar-failed)"],
    ].map(([n, c]) => h("span", {}, h("i", { style: `background:${c}` }), n)),
    h("span", {}, "↻ retried attempt · thin lines: episodes"),
  );
  return h(
    "div",
    { class: "gantt", id: "timeline" },
    h("div", { class: "axis" }, h("div", {}, `${t.bars.length} tasks · ${fmtDuration(span)}`), ticks),
    t.bars.length ? h("div", { role: "list", "aria-label": "Tasks from scheduled to done" }, rows) : h("p", { class: "muted" }, "No task yet."),
    legend,
    d.eventWaitsKnown ? null : h("p", { class: "muted" }, "Event waits could not be replayed; received events are shown as points."),
  );
}

function historyDetail(e) {
  const skip = new Set(["EventType", "Timestamp", "Index"]);
  const rest = {};
  for (const [k, v] of Object.entries(e)) if (!skip.has(k)) rest[k] = v;
  return Object.keys(rest).length ? short(rest, 140) : "";
}

function renderHistory(id, d) {
  const rows = d.history.map((e) =>
    h(
      "tr",
      { "data-test": "history-row", "data-index": String(e.Index) },
      h("td", { class: "mono" }, String(e.Index)),
      h("td", {}, e.EventType),
      h("td", { class: "mono", title: e.Timestamp }, fmtTime(e.Timestamp)),
      h("td", { class: "json mono", title: historyDetail(e) }, historyDetail(e)),
      h(
        "td",
        {},
        h(
          "button",
          { type: "button", class: "travel", "aria-label": `Time travel to event ${e.Index} (${e.EventType})`, onclick: () => { state.tab = "travel"; state.travel = e.Index; viewInstance(id, true); } },
          "Travel here",
        ),
      ),
    ),
  );
  return h(
    "div",
    {},
    d.historyTruncated ? h("p", { class: "muted" }, `First ${d.history.length} of ${d.historyLength} events.`) : null,
    h(
      "table",
      { "aria-label": "History", id: "history" },
      h("thead", {}, h("tr", {}, ["#", "Event", "Time", "Details", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

function renderTravel(id, d) {
  const last = Math.max(d.historyLength - 1, 0);
  if (state.travel === null || state.travel > last) state.travel = last;
  const num = h("input", { type: "number", id: "travel-index", min: "0", max: String(last), value: String(state.travel) });
  const range = h("input", { type: "range", id: "travel-range", min: "0", max: String(last), value: String(state.travel), "aria-label": "History event to travel to" });
  const out = h("div", { id: "travel-result", "aria-live": "polite" }, h("p", { class: "muted" }, "Replaying…"));
  const go = (i) => {
    state.travel = Math.min(Math.max(Number(i) || 0, 0), last);
    num.value = range.value = String(state.travel);
    load();
  };
  range.addEventListener("change", () => go(range.value));
  const form = h(
    "form",
    { class: "travel-controls", "aria-label": "Choose a history event", onsubmit: (e) => { e.preventDefault(); go(num.value); } },
    h("button", { type: "button", id: "travel-prev", "aria-label": "Previous event", onclick: () => go(state.travel - 1) }, "◀"),
    h("label", { for: "travel-range" }, "Event", range),
    h("label", { for: "travel-index" }, `Index (0–${last})`, num),
    h("button", { type: "button", id: "travel-next", "aria-label": "Next event", onclick: () => go(state.travel + 1) }, "▶"),
    h("button", { type: "submit", class: "primary", id: "travel-go" }, "Replay to here"),
  );
  async function load() {
    out.replaceChildren(h("p", { class: "muted" }, "Replaying…"));
    try {
      const r = await api("GET", `/api/console/instances/${encodeURIComponent(id)}/replay?until=${state.travel}`);
      out.replaceChildren(renderTravelResult(r.data));
    } catch (x) {
      out.replaceChildren(h("p", { class: "error-text", role: "alert" }, x.message));
    }
  }
  load();
  return h(
    "div",
    {},
    h("p", { class: "muted" }, "The orchestrator replayed up to the chosen event with the replay engine: nothing is sent or scheduled again."),
    form,
    out,
  );
}

function renderTravelResult(t) {
  const e = t.event;
  const pending = t.pending.length
    ? h(
        "table",
        { "aria-label": "Pending tasks", id: "travel-pending" },
        h("thead", {}, h("tr", {}, ["Task", "Kind", "Name", "Scheduled at event"].map((x) => h("th", { scope: "col" }, x)))),
        h(
          "tbody",
          {},
          t.pending.map((p) =>
            h(
              "tr",
              { "data-test": "pending-task", "data-kind": p.kind },
              h("td", { class: "mono" }, String(p.taskId)),
              h("td", {}, p.kind),
              h("td", {}, p.name),
              h("td", { class: "mono" }, p.scheduledIndex === null ? (p.kind === "event" ? "(waits are not recorded)" : "(next, after this event)") : String(p.scheduledIndex)),
            ),
          ),
        ),
      )
    : h("p", { class: "muted", id: "travel-pending" }, "No task was pending.");
  const logs = t.logs.length
    ? h(
        "ol",
        { class: "log", id: "travel-logs", "aria-label": "Guest log lines up to this event" },
        t.logs.map((l) => h("li", { class: l.replaying ? "replaying" : "" }, `${fmtTime(new Date(l.time).toISOString())} [${l.level}] ${l.message}`)),
      )
    : h("p", { class: "muted", id: "travel-logs" }, "The guest logged nothing up to here.");
  return h(
    "div",
    { "data-test": "travel", "data-until": String(t.until), "data-state": t.state },
    h("h2", {}, `At event ${t.until} (of 0–${t.historyLen - 1}): ${e.EventType}`),
    h("dl", { class: "kv" }, h("dt", {}, "Time"), h("dd", {}, fmtTime(t.time)), h("dt", {}, "State"), h("dd", { id: "travel-state" }, t.state), h("dt", {}, "Event"), h("dd", {}, h("pre", {}, json(e)))),
    t.error ? h("div", { class: "card failure", role: "alert" }, h("strong", {}, t.error.ErrorType), h("p", {}, t.error.Message)) : null,
    h("h2", {}, "Pending tasks"),
    pending,
    h("h2", {}, "Custom status then"),
    h("pre", { id: "travel-custom-status" }, json(t.customStatus)),
    t.next.length ? [h("h2", {}, "Scheduled next (after this event)"), h("pre", { id: "travel-next-actions" }, t.next.map((x) => `${x.EventType} ${x.Name || ""}`).join("\n"))] : null,
    t.output !== null && t.output !== undefined ? [h("h2", {}, "Result"), h("pre", {}, json(t.output))] : null,
    h("h2", {}, "Guest log"),
    logs,
  );
}

// ---- components and locks ----------------------------------------------

async function viewComponents() {
  const r = await api("GET", "/api/console/components");
  const rows = r.data.versions.map((v) =>
    h(
      "tr",
      { "data-test": "component-row" },
      h("td", { class: "mono", title: v.hash }, v.hash.slice(0, 16) + "…"),
      h("td", {}, fmtTime(v.deployedAt)),
      h("td", {}, v.functions.map((f, i) => [i ? ", " : "", h("span", { title: f.kind }, f.name), h("span", { class: "muted" }, ` (${f.kind})`)])),
      h("td", {}, v.newestFor.length ? v.newestFor.join(", ") : h("span", { class: "muted" }, "older version")),
      h("td", { class: "mono" }, grantsText(v.grants)),
      h(
        "td",
        {},
        v.instanceCount
          ? Object.entries(v.instances).map(([s, n]) => h("div", {}, badge(s), " ", h("a", { href: `#/instances?status=${s}` }, String(n))))
          : h("span", { class: "muted" }, "none"),
      ),
    ),
  );
  setMain(
    h("h1", {}, "Components"),
    h(
      "table",
      { "aria-label": "Component versions", id: "components" },
      h("thead", {}, h("tr", {}, ["Version (sha256)", "Deployed", "Functions", "Newest version of", "Grants", "Instances"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No component deployed."))),
    ),
  );
  main().setAttribute("data-loaded", "components");
  startRefresh(viewComponents, 10000);
}

function grantsText(g) {
  if (!g || typeof g !== "object") return "none";
  const parts = [];
  if (g.env && g.env.length) parts.push("env: " + g.env.join(", "));
  if (g.dirs && g.dirs.length) parts.push("dirs: " + g.dirs.map((d) => d.guest || d.host || JSON.stringify(d)).join(", "));
  if (g.http && g.http.length) parts.push("http: " + g.http.join(", "));
  return parts.length ? parts.join("; ") : "none";
}

async function viewLocks() {
  const r = await api("GET", "/api/console/locks");
  const rows = r.data.locks.map((l) =>
    h(
      "tr",
      { "data-test": "lock-row" },
      h("td", { class: "mono" }, l.name),
      h("td", {}, l.holder ? instanceLink(l.holder.instanceId) : h("span", { class: "muted" }, "free")),
      h("td", {}, l.holder ? fmtTime(l.holder.since) : ""),
      h("td", {}, l.waiting.length ? l.waiting.map((w, i) => [i ? ", " : "", instanceLink(w)]) : h("span", { class: "muted" }, "none")),
    ),
  );
  setMain(
    h("h1", {}, "Locks"),
    h(
      "table",
      { "aria-label": "Critical-section locks", id: "locks" },
      h("thead", {}, h("tr", {}, ["Lock", "Holder", "Held since", "Waiting (first in line first)"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No lock is held or awaited."))),
    ),
  );
  main().setAttribute("data-loaded", "locks");
  startRefresh(viewLocks, 5000);
}

// ---- routing -------------------------------------------------------------

async function route(keepTab) {
  stopRefresh();
  const hash = location.hash || "#/instances";
  const path = hash.slice(1).split("?")[0];
  const [, section, arg] = path.split("/");
  for (const a of document.querySelectorAll("[data-nav]")) {
    const current = a.dataset.nav === section || (section === "instance" && a.dataset.nav === "instances");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main().removeAttribute("data-loaded");
  try {
    if (section === "instance" && arg) await viewInstance(decodeURIComponent(arg), keepTab === true);
    else if (section === "components") await viewComponents();
    else if (section === "locks") await viewLocks();
    else await viewInstances();
    document.title = "Cairn — " + (section || "instances");
  } catch (x) {
    if (x.status !== 401) setMain(h("h1", {}, "Something went wrong"), h("p", { class: "error-text", role: "alert" }, x.message));
  }
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => {
    state.listTokens = [null];
    state.listPage = 0;
    if (state.keyRequired && !state.csrf) return showSignIn();
    route();
    main().focus({ preventScroll: true });
  });
  try {
    if (!(await loadSession())) {
      showSignIn();
      return;
    }
  } catch (x) {
    setMain(h("p", { class: "error-text", role: "alert" }, "The server did not answer: " + x.message));
    return;
  }
  route();
}

document.addEventListener("DOMContentLoaded", start);

//! The web console: its assets (plain HTML, CSS and JavaScript built into
//! the binary, no framework, nothing fetched from elsewhere), its sign-in
//! (see `session`), and the JSON routes it needs beyond the Durable
//! Functions routes it also calls (actions go through those):
//!
//! | route | answers |
//! |---|---|
//! | `GET /api/console/session` | `{keyRequired, signedIn, csrf?}` (no key needed) |
//! | `POST /api/console/session` `{"key": …}` | sets the session cookie; `{csrf}`; 401 for a wrong key |
//! | `DELETE /api/console/session` | signs out |
//! | `GET /api/console/instances` | one page, newest first: `status`, `name`, `prefix`, `from`, `to`, `top`, `after`; with counts per status |
//! | `GET /api/console/instances/{id}` | status, history, timeline, parent and children |
//! | `GET /api/console/instances/{id}/replay?until=N` | time travel (see [`crate::timetravel`]) |
//! | `GET /api/console/components` | versions, functions, grants, instances per version |
//! | `GET /api/console/locks` | holders and waiters |

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::http::{HttpError, Resp, decode_segment, json_response, with_type};
use super::{Api, Ctx};
use crate::admin::{decode_token, encode_token};
use crate::clock::iso;
use crate::history::Event;
use crate::ids::InstanceId;
use crate::status::{StatusOptions, history_event_json, status_json};
use crate::store::{BrowseQuery, InstanceQuery, RuntimeStatus};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// Most instances on one console page.
const MAX_PAGE: u32 = 200;
/// History events sent with an instance (the timeline covers them all).
const MAX_HISTORY_ROWS: usize = 5000;
/// Largest history whose event waits the timeline replays to find.
const MAX_WAIT_REPLAY: usize = 5000;

/// The console's content security policy: everything from this server,
/// nothing inline, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A static asset, if `path` names one.
pub(super) fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/console" | "/console/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/console/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/console/app.css" => Some(("text/css; charset=utf-8", APP_CSS)),
        "/favicon.ico" | "/console/favicon.svg" => Some(("image/svg+xml", FAVICON)),
        _ => None,
    }
}

/// For working on the console: `CAIRN_CONSOLE_ASSETS=host/src/api/assets`
/// serves the asset files from that folder instead of the built-in copies
/// (read at each request; only the console's own file names).
fn dev_asset(path: &str) -> Option<Bytes> {
    let dir = std::env::var_os("CAIRN_CONSOLE_ASSETS")?;
    let name = match path {
        "/console/app.js" => "app.js",
        "/console/app.css" => "app.css",
        "/console/favicon.svg" | "/favicon.ico" => "favicon.svg",
        _ => "index.html",
    };
    std::fs::read(std::path::Path::new(&dir).join(name))
        .ok()
        .map(Bytes::from)
}

/// Serves a static asset with the console's security headers.
pub(super) fn serve_asset(method: &Method, path: &str, content_type: &'static str, body: &'static str) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        return HttpError::method_not_allowed("the console's pages are read with GET").into_response();
    }
    let body = dev_asset(path).unwrap_or_else(|| Bytes::from_static(body.as_bytes()));
    let mut r = with_type(StatusCode::OK, content_type, body);
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

fn no_store(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn parse_json(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

impl Api {
    /// `/api/console/session`, answered before authentication.
    pub(super) async fn console_session(&self, mut ctx: Ctx, secure: bool) -> Result<Resp, HttpError> {
        let signed_in = self.key.is_none() || self.sessions.lookup(&ctx.headers).is_some();
        match ctx.method {
            Method::GET => {
                let mut v = json!({ "keyRequired": self.key.is_some(), "signedIn": signed_in });
                if let Some(csrf) = self.sessions.lookup(&ctx.headers) {
                    v["csrf"] = json!(csrf);
                }
                Ok(no_store(json_response(StatusCode::OK, &v)))
            }
            Method::POST => {
                super::http::check_body_type(&ctx.headers, &["application/json"])?;
                let body = ctx.body(4096, self.config.body_read_timeout).await?;
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|_| HttpError::bad_request("send {\"key\": \"...\"} as JSON"))?;
                let given = v.get("key").and_then(Value::as_str).unwrap_or("");
                let Some(key) = &self.key else {
                    return Ok(no_store(json_response(StatusCode::OK, &json!({ "csrf": null }))));
                };
                let mut headers = hyper::HeaderMap::new();
                if let Ok(h) = HeaderValue::from_str(&format!("Bearer {given}")) {
                    headers.insert(hyper::header::AUTHORIZATION, h);
                }
                if given.is_empty() || !key.accepts(&super::http::Query::default(), &headers) {
                    // Slows guessing down a little; the key is compared in constant time.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    return Err(HttpError::unauthorized());
                }
                let (token, csrf) = self.sessions.create();
                let mut r = json_response(StatusCode::OK, &json!({ "csrf": csrf }));
                if let Ok(v) = HeaderValue::from_str(&super::session::set_cookie(&token, secure)) {
                    r.headers_mut().insert("set-cookie", v);
                }
                Ok(no_store(r))
            }
            Method::DELETE => {
                self.sessions.remove(&ctx.headers);
                let mut r = json_response(StatusCode::OK, &json!({ "signedIn": self.key.is_none() }));
                if let Ok(v) = HeaderValue::from_str(&super::session::clear_cookie()) {
                    r.headers_mut().insert("set-cookie", v);
                }
                Ok(no_store(r))
            }
            _ => Err(HttpError::method_not_allowed("use GET, POST or DELETE")),
        }
    }

    /// `/api/console/...` (authenticated).
    pub(super) async fn console(&self, ctx: Ctx, segs: &[&str]) -> Result<Resp, HttpError> {
        let is = |i: usize, lit: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
        if ctx.method != Method::GET {
            return Err(HttpError::method_not_allowed(
                "the console's JSON routes are read with GET; actions use the Durable Functions routes",
            ));
        }
        let r = match segs.len() {
            3 if is(2, "instances") => self.console_list(&ctx).await?,
            4 if is(2, "instances") => self.console_instance(&ctx, &decode_segment(segs[3])?).await?,
            5 if is(2, "instances") && is(4, "replay") => self.console_replay(&ctx, &decode_segment(segs[3])?).await?,
            3 if is(2, "components") => self.console_components().await?,
            3 if is(2, "locks") => self.console_locks().await?,
            _ => return Err(HttpError::not_found(format!("no route /{}", segs.join("/")))),
        };
        Ok(no_store(r))
    }

    async fn console_list(&self, ctx: &Ctx) -> Result<Resp, HttpError> {
        let q = &ctx.query;
        let base = InstanceQuery {
            created_from: q.time("from")?,
            created_to: q.time("to")?,
            statuses: q.statuses("status")?,
            id_prefix: q.non_empty("prefix").map(str::to_owned),
            name: None,
            top: None,
            after: None,
        };
        let name = q.non_empty("name").map(|n| n.trim().to_owned());
        let top = q.positive("top")?.unwrap_or(50).min(MAX_PAGE);
        let after = match q.non_empty("after") {
            Some(t) => Some(decode_token(t).map_err(|e| HttpError::bad_request(e.to_string()))?),
            None => None,
        };
        let counts = self.hub.store.count_instances(base.clone(), name.clone()).await?;
        let mut rows = self
            .hub
            .store
            .browse_instances(BrowseQuery {
                base: InstanceQuery {
                    top: Some(top + 1),
                    after,
                    ..base
                },
                name,
                newest_first: true,
            })
            .await?;
        let more = rows.len() > top as usize;
        rows.truncate(top as usize);
        let next = if more {
            rows.last().map(|r| encode_token(r.created_at, &r.instance_id))
        } else {
            None
        };
        let opts = StatusOptions {
            show_input: false,
            show_output: false,
            show_history: false,
            show_history_output: false,
        };
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = status_json(r, None, opts);
                v["createdAt"] = json!(iso(r.created_at));
                v["updatedAt"] = json!(iso(r.updated_at));
                v
            })
            .collect();
        let mut by_status = Map::new();
        let mut total = 0;
        for s in RuntimeStatus::ALL {
            let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
            total += n;
            by_status.insert(s.as_str().into(), json!(n));
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({ "instances": items, "next": next, "counts": by_status, "total": total }),
        ))
    }

    async fn console_instance(&self, _ctx: &Ctx, raw: &str) -> Result<Resp, HttpError> {
        let id = InstanceId::parse(raw).map_err(|e| HttpError::bad_request(e.to_string()))?;
        let row = self
            .hub
            .store
            .get_instance(id.as_str())
            .await?
            .ok_or_else(|| HttpError::not_found(format!("instance {:?} not found", id.as_str())))?;
        let history = self.hub.store.get_history(id.as_str()).await?;
        let opts = StatusOptions {
            show_input: true,
            show_output: true,
            show_history: false,
            show_history_output: false,
        };
        let mut status = status_json(&row, None, opts);
        status["createdAt"] = json!(iso(row.created_at));
        status["updatedAt"] = json!(iso(row.updated_at));
        let failure = if row.status == RuntimeStatus::Failed {
            parse_json(row.output.as_deref())
        } else {
            Value::Null
        };
        let has_waits =
            history.iter().any(|(_, e)| matches!(e, Event::EventRaised { .. })) || !row.status.is_terminal();
        let waits = if has_waits && history.len() <= MAX_WAIT_REPLAY {
            match self.replays.clone().try_acquire_owned() {
                Ok(_permit) => crate::timetravel::event_waits(&self.hub, id.as_str()).await,
                Err(_) => None,
            }
        } else {
            None
        };
        let timeline = crate::timeline::build(&history, waits.as_deref());
        let children: Vec<Value> = history
            .iter()
            .filter_map(|(_, e)| match e {
                Event::SubOrchestrationInstanceCreated {
                    task_id,
                    name,
                    instance_id,
                    ..
                } => Some(json!({ "instanceId": instance_id, "name": name, "taskId": task_id })),
                _ => None,
            })
            .collect();
        let rows: Vec<Value> = history
            .iter()
            .take(MAX_HISTORY_ROWS)
            .enumerate()
            .map(|(i, (ts, e))| {
                let mut v = history_event_json(*ts, e, true);
                v["Index"] = json!(i);
                v
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "status": status,
                "version": row.version,
                "executionId": row.execution_id,
                "parentInstance": row.parent_instance,
                "children": children,
                "failure": failure,
                "historyLength": history.len(),
                "history": rows,
                "historyTruncated": history.len() > MAX_HISTORY_ROWS,
                "timeline": timeline,
                "eventWaitsKnown": waits.is_some() || !has_waits,
            }),
        ))
    }

    async fn console_replay(&self, ctx: &Ctx, raw: &str) -> Result<Resp, HttpError> {
        let until = ctx
            .query
            .get("until")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| HttpError::bad_request("give the history event to travel to as until=N (0-based)"))?;
        let Ok(_permit) = self.replays.clone().try_acquire_owned() else {
            return Err(HttpError::busy("other replays are running; retry in a moment", 1));
        };
        let travel = crate::timetravel::replay_until(&self.hub, raw, until, None).await?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(&travel).unwrap_or(Value::Null),
        ))
    }

    async fn console_components(&self) -> Result<Resp, HttpError> {
        let functions = self.hub.store.list_functions().await?;
        let per_version = self.hub.store.instances_per_version().await?;
        // Versions in deploy order, newest first (list_functions is newest
        // first per name).
        let mut versions: Vec<(String, crate::history::Millis, Vec<Value>, Vec<String>)> = Vec::new();
        let mut seen_names: std::collections::HashSet<String> = std::collections::HashSet::new();
        for f in &functions {
            let latest = seen_names.insert(format!("{}:{}", f.kind, f.name));
            let entry = json!({ "name": f.name, "kind": f.kind });
            match versions.iter_mut().find(|(h, ..)| *h == f.hash) {
                Some((_, _, fs, newest)) => {
                    fs.push(entry);
                    if latest {
                        newest.push(f.name.clone());
                    }
                }
                None => versions.push((
                    f.hash.clone(),
                    f.deployed_at,
                    vec![entry],
                    if latest { vec![f.name.clone()] } else { Vec::new() },
                )),
            }
        }
        versions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut out = Vec::new();
        for (hash, at, fs, newest) in versions {
            let grants = self
                .hub
                .store
                .component_grants(&hash)
                .await
                .map(|g| parse_json(Some(&g)))
                .unwrap_or(Value::Null);
            let mut counts = Map::new();
            let mut total = 0;
            for (_, s, n) in per_version.iter().filter(|(v, ..)| *v == hash) {
                counts.insert(s.as_str().into(), json!(n));
                total += n;
            }
            out.push(json!({
                "hash": hash,
                "deployedAt": iso(at),
                "functions": fs,
                "newestFor": newest,
                "grants": grants,
                "instances": counts,
                "instanceCount": total,
            }));
        }
        Ok(json_response(StatusCode::OK, &json!({ "versions": out })))
    }

    async fn console_locks(&self) -> Result<Resp, HttpError> {
        let locks = self.hub.store.list_locks().await?;
        let items: Vec<Value> = locks
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "holder": l.holder.as_ref().map(|(id, since)| json!({ "instanceId": id, "since": iso(*since) })),
                    "waiting": l.waiting,
                })
            })
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "locks": items })))
    }
}

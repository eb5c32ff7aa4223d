//! The Durable Functions routes under `/runtime/webhooks/durabletask`
//! (`HTTP-API.md`): start, status, query, purge, raise event, terminate,
//! suspend, resume, rewind, restart.

use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{
    HttpError, Resp, Urls, decode_segment, is_json_content_type, json_body, json_response, raw_json_response,
    set_header,
};
use super::{Api, Ctx};
use crate::admin::PurgeFilter;
use crate::history::Event;
use crate::ids::InstanceId;
use crate::status::{StatusOptions, status_json};
use crate::store::{InstanceQuery, InstanceRow, RuntimeStatus};

const CONTINUATION: &str = "x-ms-continuation-token";

/// Decodes path segments and joins them with `/` (an instance id given
/// with a literal `/` spans several segments; the id check refuses it).
fn joined(segs: &[&str]) -> Result<String, HttpError> {
    Ok(segs
        .iter()
        .map(|s| decode_segment(s))
        .collect::<Result<Vec<_>, _>>()?
        .join("/"))
}

/// Validates an instance id from a path (400 with the rule it breaks).
fn instance_id(raw: &str) -> Result<InstanceId, HttpError> {
    InstanceId::parse(raw).map_err(|e| HttpError::bad_request(e.to_string()))
}

/// 202 with an empty body (the message is committed; the engine acts on it).
fn accepted() -> Resp {
    let mut r = Resp::new(http_body_util::Full::new(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

/// The 202 check-status answer of a started instance.
fn check_status(urls: &Urls, id: &str) -> Resp {
    let mut r = json_response(StatusCode::ACCEPTED, &urls.check_status(id));
    set_header(&mut r, "location", &urls.status(id));
    r.headers_mut().insert("retry-after", HeaderValue::from(10u32));
    r
}

const ACTIONS: [&str; 5] = ["terminate", "suspend", "resume", "rewind", "restart"];

impl Api {
    pub(super) async fn durable(&self, mut ctx: Ctx, segs: &[&str]) -> Result<Resp, HttpError> {
        let is = |i: usize, lit: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
        let n = segs.len();
        if is(0, "orchestrators") && n >= 2 {
            if ctx.method != Method::POST {
                return Err(HttpError::method_not_allowed("start an orchestration with POST"));
            }
            let name = decode_segment(segs[1])?;
            let id = if n > 2 { Some(joined(&segs[2..])?) } else { None };
            return self.start(&mut ctx, &name, id.as_deref()).await;
        }
        if is(0, "entities") {
            return self.entities(ctx, &segs[1..]).await;
        }
        if !is(0, "instances") {
            return Err(HttpError::not_found(format!(
                "no route {}/{}",
                super::BASE_PATH,
                segs.join("/")
            )));
        }
        match (ctx.method.clone(), n) {
            (Method::GET, 1) => self.list(&ctx).await,
            (Method::DELETE, 1) => self.purge_many(&ctx).await,
            (Method::GET, _) => self.status(&ctx, &joined(&segs[1..])?).await,
            (Method::DELETE, _) => self.purge_one(&joined(&segs[1..])?).await,
            (Method::POST, _) if n >= 4 && is(n - 2, "raiseEvent") => {
                let id = joined(&segs[1..n - 2])?;
                let event = decode_segment(segs[n - 1])?;
                self.raise_event(&mut ctx, &id, &event).await
            }
            (Method::POST, _) if n >= 3 && ACTIONS.iter().any(|a| is(n - 1, a)) => {
                let id = joined(&segs[1..n - 1])?;
                let action = segs[n - 1].to_ascii_lowercase();
                self.action(&ctx, &id, &action).await
            }
            (Method::POST, _) => Err(HttpError::not_found(format!(
                "no route POST {}/{}",
                super::BASE_PATH,
                segs.join("/")
            ))),
            (m, _) => Err(HttpError::method_not_allowed(format!("{m} is not supported here"))),
        }
    }

    /// Route 1: start, optionally waiting for the result.
    async fn start(&self, ctx: &mut Ctx, name: &str, id: Option<&str>) -> Result<Resp, HttpError> {
        let id = match id {
            Some(raw) if !raw.is_empty() => Some(instance_id(raw)?),
            _ => None,
        };
        let timeout = ctx.query.seconds("timeout")?;
        ctx.query.seconds("pollingInterval")?;
        let version = ctx.query.non_empty("version").map(str::to_owned);
        let body = ctx
            .body(self.config.max_body_bytes, self.config.body_read_timeout)
            .await?;
        let input = json_body(&body, self.config.max_json_depth)?;
        // With traces, the start request's `traceparent` is linked to the
        // instance before it can run (a fast one may end at once).
        let traceparent = ctx
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|_| crate::traces::enabled())
            .map(str::to_owned);
        let id = match (id, &traceparent) {
            (None, Some(_)) => Some(InstanceId::generate()),
            (id, _) => id,
        };
        if let (Some(id), Some(tp)) = (&id, &traceparent) {
            crate::traces::set_parent(id.as_str(), tp);
        }
        let started = self
            .hub
            .start(
                name,
                input.as_deref(),
                id.as_ref().map(InstanceId::as_str),
                version.as_deref(),
            )
            .await;
        let id = match started {
            Ok(id) => id,
            Err(e) => {
                if let (Some(id), Some(_)) = (&id, &traceparent) {
                    crate::traces::forget_parent(id.as_str());
                }
                return Err(e.into());
            }
        };
        if crate::traces::enabled()
            && let Ok(Some(row)) = self.hub.store.get_instance(id.as_str()).await
        {
            crate::traces::span(crate::traces::SpanRecord {
                instance: &row.instance_id,
                execution: &row.execution_id,
                name: format!("start {name}"),
                start: row.created_at,
                end: crate::clock::now_ms(),
                attributes: vec![opentelemetry::KeyValue::new("cairn.orchestrator", name.to_owned())],
                error: None,
            });
        }
        if let Some(secs) = timeout {
            // Clamp before converting: a huge finite number would not fit a Duration.
            let wait = Duration::from_secs_f64(secs.min(self.config.max_wait.as_secs_f64()));
            let row = self.engine.wait_for(id.as_str(), wait).await?;
            match row.status {
                RuntimeStatus::Completed => {
                    return Ok(raw_json_response(
                        StatusCode::OK,
                        row.output.unwrap_or_else(|| "null".into()),
                    ));
                }
                RuntimeStatus::Failed | RuntimeStatus::Terminated | RuntimeStatus::Canceled => {
                    return self.status_of_row(ctx, row).await;
                }
                _ => {}
            }
        }
        Ok(check_status(&ctx.urls, id.as_str()))
    }

    /// Route 2: one instance's status.
    async fn status(&self, ctx: &Ctx, raw: &str) -> Result<Resp, HttpError> {
        let id = instance_id(raw)?;
        let row = self
            .hub
            .store
            .get_instance(id.as_str())
            .await?
            .ok_or_else(|| HttpError::not_found(format!("instance {:?} not found", id.as_str())))?;
        self.status_of_row(ctx, row).await
    }

    async fn status_of_row(&self, ctx: &Ctx, mut row: InstanceRow) -> Result<Resp, HttpError> {
        let q = &ctx.query;
        let opts = StatusOptions {
            show_input: q.bool("showInput", true)?,
            show_output: true,
            show_history: q.bool("showHistory", false)?,
            show_history_output: q.bool("showHistoryOutput", false)?,
        };
        let fail_500 = q.bool("returnInternalServerErrorOnFailure", false)?;
        let suspended_without_reason = row.status == RuntimeStatus::Suspended && row.output.is_none();
        let history = if opts.show_history || suspended_without_reason {
            match self.hub.store.get_history(&row.instance_id).await {
                Ok(h) => Some(h),
                Err(crate::store::StoreError::InstanceNotFound(id)) => {
                    return Err(HttpError::not_found(format!("instance {id:?} not found")));
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        if suspended_without_reason {
            // The output of a suspended instance is the suspension's reason.
            row.output = history
                .as_deref()
                .and_then(|h| {
                    h.iter().rev().find_map(|(_, e)| match e {
                        Event::ExecutionSuspended { reason } => Some(reason.as_ref().map(|r| json!(r).to_string())),
                        _ => None,
                    })
                })
                .flatten();
        }
        let body = status_json(&row, history.as_deref(), opts);
        let code = match row.status {
            RuntimeStatus::Failed if fail_500 => StatusCode::INTERNAL_SERVER_ERROR,
            s if s.is_terminal() => StatusCode::OK,
            _ => StatusCode::ACCEPTED,
        };
        let mut r = json_response(code, &body);
        if code == StatusCode::ACCEPTED {
            set_header(&mut r, "location", &ctx.self_url);
            r.headers_mut().insert("retry-after", HeaderValue::from(5u32));
        }
        Ok(r)
    }

    /// Route 3: query instances, one page per request.
    async fn list(&self, ctx: &Ctx) -> Result<Resp, HttpError> {
        let q = &ctx.query;
        let query = InstanceQuery {
            created_from: q.time("createdTimeFrom")?,
            created_to: q.time("createdTimeTo")?,
            statuses: q.statuses("runtimeStatus")?,
            id_prefix: q.non_empty("instanceIdPrefix").map(str::to_owned),
            // Cairn's own filter (not in Durable Functions): one orchestrator.
            name: q.non_empty("name").map(str::to_owned),
            top: None,
            after: None,
        };
        let top = q.positive("top")?;
        let opts = StatusOptions {
            show_input: q.bool("showInput", false)?,
            show_output: true,
            show_history: false,
            show_history_output: false,
        };
        let token = match ctx.headers.get(CONTINUATION) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| HttpError::bad_request("the continuation token is not one this server issued"))?,
            ),
            None => None,
        };
        let page = self.hub.list_page(query, top, token).await?;
        let items: Vec<Value> = page.instances.iter().map(|row| status_json(row, None, opts)).collect();
        let mut r = json_response(StatusCode::OK, &Value::Array(items));
        if let Some(t) = page.continuation {
            set_header(&mut r, CONTINUATION, &t);
        }
        Ok(r)
    }

    /// Route 4: purge one terminal instance.
    async fn purge_one(&self, raw: &str) -> Result<Resp, HttpError> {
        let id = instance_id(raw)?;
        self.hub.purge_instance(id.as_str()).await?;
        Ok(json_response(StatusCode::OK, &json!({ "instancesDeleted": 1 })))
    }

    /// Route 5: purge terminal instances by creation time and status.
    async fn purge_many(&self, ctx: &Ctx) -> Result<Resp, HttpError> {
        let q = &ctx.query;
        let from = q
            .time("createdTimeFrom")?
            .ok_or_else(|| HttpError::bad_request("createdTimeFrom is required to purge instances"))?;
        let filter = PurgeFilter {
            created_from: from,
            created_to: q.time("createdTimeTo")?,
            statuses: q.statuses("runtimeStatus")?,
        };
        let n = self.hub.purge_instances(&filter).await?;
        if n == 0 {
            return Err(HttpError::not_found("no terminal instance matched the filter"));
        }
        Ok(json_response(StatusCode::OK, &json!({ "instancesDeleted": n })))
    }

    /// Route 6: raise an event.
    async fn raise_event(&self, ctx: &mut Ctx, raw: &str, event: &str) -> Result<Resp, HttpError> {
        let id = instance_id(raw)?;
        if !is_json_content_type(&ctx.headers) {
            return Err(HttpError::bad_request(
                "the event data must be sent with Content-Type: application/json",
            ));
        }
        let body = ctx
            .body(self.config.max_body_bytes, self.config.body_read_timeout)
            .await?;
        let data = json_body(&body, self.config.max_json_depth)?;
        self.hub.raise_event(id.as_str(), event, data.as_deref()).await?;
        Ok(accepted())
    }

    /// Routes 7–10: terminate, suspend, resume, rewind, restart.
    async fn action(&self, ctx: &Ctx, raw: &str, action: &str) -> Result<Resp, HttpError> {
        let id = instance_id(raw)?;
        let reason = ctx.query.non_empty("reason").map(str::to_owned);
        match action {
            "terminate" => {
                self.hub
                    .control(id.as_str(), Event::ExecutionTerminated { reason })
                    .await?;
            }
            "suspend" => {
                self.hub
                    .control(id.as_str(), Event::ExecutionSuspended { reason })
                    .await?;
            }
            "resume" => {
                self.hub
                    .control(id.as_str(), Event::ExecutionResumed { reason })
                    .await?;
            }
            "rewind" => self.hub.rewind(id.as_str(), reason.as_deref()).await?,
            _ => {
                let new_id = ctx.query.bool("restartWithNewInstanceId", true)?;
                let started = self.hub.restart(id.as_str(), new_id).await?;
                return Ok(check_status(&ctx.urls, started.as_str()));
            }
        }
        Ok(accepted())
    }
}

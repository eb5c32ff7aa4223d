//! Cairn's own routes (not part of the Durable Functions surface):
//! components, health, Prometheus metrics, the OpenAPI document.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{HttpError, Resp, decode_segment, json_response, with_type};
use super::{Api, Ctx};
use crate::clock::iso;
use crate::metrics::load;
use cairn_client::Management;

/// The backend part of a provider's description (`sqlite`, `postgres`):
/// `/healthz` answers without a key, so it names no path or address.
fn backend_kind(describe: &str) -> &str {
    describe.split(':').next().unwrap_or("unknown")
}

/// `Retry-After` of an upload refused because others are in progress, s.
const DEPLOY_RETRY_SECS: u32 = 2;

/// A document of the management interface as a 200 response.
fn document<T: serde::Serialize>(doc: &T) -> Result<Resp, HttpError> {
    serde_json::to_value(doc)
        .map(|v| json_response(StatusCode::OK, &v))
        .map_err(|e| HttpError::internal(e.to_string()))
}

/// The OpenAPI document of every route, served at `/api/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

impl Api {
    pub(super) async fn healthz(&self, method: &Method) -> Result<Resp, HttpError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(HttpError::method_not_allowed("use GET /healthz"));
        }
        match self.hub.store.ping().await {
            Ok(()) => Ok(json_response(
                StatusCode::OK,
                &json!({ "status": "ok", "backend": backend_kind(&self.hub.store.describe()) }),
            )),
            Err(e) => Err(HttpError::unavailable(format!("the task hub cannot be read: {e}"))),
        }
    }

    pub(super) async fn own(&self, mut ctx: Ctx, segs: &[&str]) -> Result<Resp, HttpError> {
        let is = |i: usize, lit: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
        match (ctx.method.clone(), segs.len()) {
            (Method::GET, 1) if is(0, "metrics") => self.metrics().await,
            (Method::GET, 2) if is(1, "openapi.yaml") => Ok(with_type(
                StatusCode::OK,
                "application/yaml; charset=utf-8",
                Bytes::from_static(OPENAPI_YAML.as_bytes()),
            )),
            (Method::GET, 2) if is(1, "components") => self.list_components().await,
            (Method::POST, 2) if is(1, "components") => self.upload(&mut ctx).await,
            (Method::POST, 3) if is(1, "components") && is(2, "prune") => {
                let pruned = self.manage().prune_versions().await?;
                Ok(json_response(StatusCode::OK, &json!({ "pruned": pruned })))
            }
            (Method::GET, 2) if is(1, "locks") => document(&self.manage().locks().await?),
            (Method::POST, 3) if is(1, "upgrade-check") => {
                let name = decode_segment(segs[2])?;
                let options = cairn_client::UpgradeOptions {
                    apply: ctx.query.bool("apply", false)?,
                    allow_input_changes: ctx.query.bool("allowInputChanges", false)?,
                };
                let wasm = self.component_body(&mut ctx, true).await?.unwrap_or_default();
                document(&self.manage().upgrade_check(&name, wasm, options).await?)
            }
            (Method::POST, 4) if is(1, "instances") && is(3, "replay") => {
                let id = decode_segment(segs[2])?;
                let until = ctx.query.non_negative("until")?;
                let wasm = self.component_body(&mut ctx, false).await?;
                let _permit = self.replay_permit().await?;
                document(&self.manage().replay(&id, wasm, until).await?)
            }
            (Method::GET, 4) if is(1, "instances") && is(3, "describe") => {
                let id = decode_segment(segs[2])?;
                let _permit = self.replay_permit().await?;
                document(&self.manage().describe(&id).await?)
            }
            (Method::GET, 4) if is(1, "instances") && is(3, "wait") => {
                let id = decode_segment(segs[2])?;
                let secs = ctx.query.seconds("timeout")?.unwrap_or(0.0);
                let wait = std::time::Duration::from_secs_f64(secs.min(self.config.max_wait.as_secs_f64()));
                let status = self.manage().wait(&id, wait).await?;
                let code = if status.is_finished() {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                };
                Ok(json_response(code, &serde_json::to_value(&status).unwrap_or_default()))
            }
            (Method::DELETE, 3) if is(1, "components") => {
                let hash = decode_segment(segs[2])?;
                let names = self.hub.remove_component(&hash).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({ "removed": hash, "functions": names }),
                ))
            }
            (Method::DELETE, 2) if is(1, "taskhub") => {
                // A repeated `confirm` is refused by the query parser.
                if !ctx.query.bool("confirm", false)? {
                    return Err(HttpError::bad_request(
                        "deleting the task hub removes every instance and component; add confirm=true",
                    ));
                }
                let n = self.hub.delete_task_hub().await?;
                Ok(json_response(StatusCode::OK, &json!({ "instancesDeleted": n })))
            }
            (_, 1) if is(0, "metrics") => Err(HttpError::method_not_allowed("use GET /metrics")),
            (_, 2..=4)
                if is(1, "components")
                    || is(1, "openapi.yaml")
                    || is(1, "taskhub")
                    || is(1, "locks")
                    || is(1, "upgrade-check")
                    || is(1, "instances") =>
            {
                Err(HttpError::method_not_allowed(format!(
                    "{} is not supported here",
                    ctx.method
                )))
            }
            _ => Err(HttpError::not_found(format!("no route /{}", segs.join("/")))),
        }
    }

    /// The management interface on this server's task hub and engine.
    fn manage(&self) -> crate::manage::Local {
        crate::manage::Local::served(self.hub.clone(), self.engine.clone())
    }

    /// A permit to run a guest for a replay (a few at once).
    async fn replay_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, HttpError> {
        self.replays
            .clone()
            .try_acquire_owned()
            .map_err(|_| HttpError::busy("other replays are in progress; retry shortly", DEPLOY_RETRY_SECS))
    }

    /// The component sent as the body (`None` when empty and not `required`),
    /// read under one of the upload permits.
    async fn component_body(&self, ctx: &mut Ctx, required: bool) -> Result<Option<Vec<u8>>, HttpError> {
        let Ok(_permit) = self.deploys.clone().try_acquire_owned() else {
            ctx.discard_body(self.config.max_component_bytes, self.config.body_read_timeout)
                .await;
            return Err(HttpError::busy(
                format!(
                    "{} component uploads are already in progress; retry after {DEPLOY_RETRY_SECS} s",
                    self.config.max_concurrent_deploys
                ),
                DEPLOY_RETRY_SECS,
            ));
        };
        let bytes = ctx
            .body(self.config.max_component_bytes, self.config.body_read_timeout)
            .await?;
        if bytes.is_empty() && required {
            return Err(HttpError::bad_request(
                "send the component's .wasm bytes as the request body",
            ));
        }
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    /// `POST /api/components`: deploys the uploaded component.
    ///
    /// Capability grants need an API key: without one, anything that can
    /// reach the loopback port could give a component the host's files.
    /// At most `max_concurrent_deploys` uploads are read and compiled at
    /// once (each holds a few times the component's size); more answer 503
    /// with `Retry-After` before their body is buffered.
    async fn upload(&self, ctx: &mut Ctx) -> Result<Resp, HttpError> {
        let granting = ["allowEnv", "allowDir", "allowHttp"]
            .iter()
            .any(|k| !ctx.query.all(k).is_empty());
        if granting && self.key.is_none() {
            return Err(HttpError::forbidden(
                "granting capabilities (allowEnv, allowDir, allowHttp) over HTTP needs an API key: start the server with --api-key, or deploy with `cairn deploy --allow-...` on the task hub file",
            ));
        }
        let grants = crate::sandbox::Grants::from_specs(
            ctx.query.all("allowEnv"),
            &ctx.query.all("allowDir"),
            ctx.query.all("allowHttp"),
        )
        .map_err(HttpError::bad_request)?;
        let bytes = self.component_body(ctx, true).await?.unwrap_or_default();
        let report = self.hub.deploy_with(bytes, grants).await?;
        let functions: Vec<Value> = report
            .functions
            .iter()
            .map(|(name, kind)| json!({ "name": name, "kind": kind }))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "hash": report.hash, "size": report.size, "functions": functions }),
        ))
    }

    /// Deployed functions, each with its versions (newest first).
    async fn list_components(&self) -> Result<Resp, HttpError> {
        let versions = self.hub.store.list_functions().await?;
        let mut out: Vec<Value> = Vec::new();
        for v in versions {
            let entry = json!({ "hash": v.hash, "deployedAt": iso(v.deployed_at) });
            match out.last_mut() {
                Some(last) if last["name"] == v.name.as_str() && last["kind"] == v.kind.as_str() => {
                    if let Some(list) = last["versions"].as_array_mut() {
                        list.push(entry);
                    }
                }
                _ => out.push(json!({
                    "name": v.name,
                    "kind": v.kind,
                    "latest": v.hash,
                    "versions": [entry],
                })),
            }
        }
        Ok(json_response(StatusCode::OK, &json!({ "functions": out })))
    }

    /// The OpenMetrics exposition of [`crate::metrics`]: the engine's
    /// histograms and counters, and the task hub's gauges read now.
    async fn metrics(&self) -> Result<Resp, HttpError> {
        let counts = self.hub.store.instance_counts().await?;
        let queues = self.hub.store.queue_stats(crate::clock::now_ms()).await?;
        let m = &self.engine.metrics;
        let snapshot = crate::metrics::Snapshot {
            counts,
            queues,
            hot_instances: self.engine.hot_count() as u64,
            episodes: load(&m.episodes),
            hot_hits: load(&m.hot_resumes),
            hot_misses: load(&m.replays),
            evictions: load(&m.evictions),
            instance_leases: self.engine.instance_leases_held().await?,
        };
        let text = self
            .engine
            .telemetry
            .encode(&snapshot)
            .map_err(|e| HttpError::internal(format!("encoding the metrics failed: {e}")))?;
        Ok(with_type(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Bytes::from(text),
        ))
    }
}

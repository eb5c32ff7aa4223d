//! The Durable Functions entity routes under
//! `/runtime/webhooks/durabletask/entities`: signal (`POST
//! .../{name}/{key}?op=NAME`), read (`GET .../{name}/{key}`), delete
//! (`DELETE .../{name}/{key}` signals `delete`), and query (`GET
//! .../{name}` or `GET .../entities`). The key `$` is the empty key.
//! Beyond Durable Functions: `DELETE .../{name}` and `DELETE .../entities`
//! purge the entities (of that name) that have no state, no queued request
//! and no lock, answering `{"entitiesDeleted": n}`.

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::http::{HttpError, Resp, check_json_depth, decode_segment, json_response, raw_json_response, set_header};
use super::{Api, Ctx};
use crate::entities::EntityFilter;
use crate::ids::EntityId;

const CONTINUATION: &str = "x-ms-continuation-token";
const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn entity_id(name: &str, key: &str) -> Result<EntityId, HttpError> {
    let name = decode_segment(name)?;
    let key = decode_segment(key)?;
    let key = if key == "$" { String::new() } else { key };
    EntityId::new(&name, &key).map_err(|e| HttpError::bad_request(e.to_string()))
}

impl Api {
    pub(super) async fn entities(&self, mut ctx: Ctx, segs: &[&str]) -> Result<Resp, HttpError> {
        match (ctx.method.clone(), segs.len()) {
            (Method::GET, 0) => self.query_entities(&ctx, None).await,
            (Method::GET, 1) => {
                let name = decode_segment(segs[0])?;
                EntityId::new(&name, "").map_err(|e| HttpError::bad_request(e.to_string()))?;
                self.query_entities(&ctx, Some(name)).await
            }
            (Method::GET, 2) => {
                let id = entity_id(segs[0], segs[1])?;
                match self.hub.entity_state(&id).await? {
                    Some(e) => Ok(raw_json_response(
                        StatusCode::OK,
                        e.state.unwrap_or_else(|| "null".into()),
                    )),
                    None => Err(HttpError::not_found(format!("entity {id} does not exist"))),
                }
            }
            (Method::POST, 2) => {
                let id = entity_id(segs[0], segs[1])?;
                let op = ctx
                    .query
                    .non_empty("op")
                    .map(str::to_owned)
                    .ok_or_else(|| HttpError::bad_request("the operation is required: POST ...?op=NAME"))?;
                let input = self.signal_input(&mut ctx).await?;
                self.signal(&ctx, &id, &op, input.as_deref()).await
            }
            (Method::DELETE, 0 | 1) => {
                let name = match segs.first() {
                    Some(raw) => {
                        let name = decode_segment(raw)?;
                        EntityId::new(&name, "").map_err(|e| HttpError::bad_request(e.to_string()))?;
                        Some(name)
                    }
                    None => None,
                };
                let n = self.hub.purge_empty_entities(name.as_deref()).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "entitiesDeleted": n }),
                ))
            }
            (Method::DELETE, 2) => {
                let id = entity_id(segs[0], segs[1])?;
                self.signal(&ctx, &id, "delete", None).await
            }
            (Method::GET | Method::POST | Method::DELETE, _) => Err(HttpError::not_found(format!(
                "no route {}/entities/{}",
                super::BASE_PATH,
                segs.join("/")
            ))),
            (m, _) => Err(HttpError::method_not_allowed(format!("{m} is not supported here"))),
        }
    }

    /// A signal's input: the body's JSON, or (a body that is not JSON)
    /// the body as a JSON string; `None` without a body.
    async fn signal_input(&self, ctx: &mut Ctx) -> Result<Option<String>, HttpError> {
        let body = ctx
            .body(self.config.max_body_bytes, self.config.body_read_timeout)
            .await?;
        let text = std::str::from_utf8(&body).map_err(|_| HttpError::bad_request("the body is not UTF-8 text"))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            check_json_depth(&body, self.config.max_json_depth)?;
            return Ok(Some(text.to_owned()));
        }
        Ok(Some(Value::String(text.to_owned()).to_string()))
    }

    async fn signal(&self, ctx: &Ctx, id: &EntityId, op: &str, input: Option<&str>) -> Result<Resp, HttpError> {
        let key = match ctx.headers.get(IDEMPOTENCY_KEY) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| HttpError::bad_request("the Idempotency-Key header is not printable ASCII"))?,
            ),
            None => None,
        };
        let queued = self.hub.signal_entity(id, op, input, key).await?;
        let mut r = Resp::new(http_body_util::Full::new(bytes::Bytes::new()));
        *r.status_mut() = StatusCode::ACCEPTED;
        if !queued {
            // Received before under this idempotency key: not queued again.
            r.headers_mut()
                .insert("x-cairn-duplicate", hyper::header::HeaderValue::from_static("true"));
        }
        Ok(r)
    }

    async fn query_entities(&self, ctx: &Ctx, name: Option<String>) -> Result<Resp, HttpError> {
        let q = &ctx.query;
        let filter = EntityFilter {
            name,
            last_op_from: q.time("lastOperationTimeFrom")?,
            last_op_to: q.time("lastOperationTimeTo")?,
            include_empty: q.bool("includeDeleted", false)?,
        };
        let fetch_state = q.bool("fetchState", false)?;
        let top = q.positive("top")?;
        let token = match ctx.headers.get(CONTINUATION) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| HttpError::bad_request("the continuation token is not one this server issued"))?,
            ),
            None => None,
        };
        let page = self.hub.list_entities(filter, top, token).await?;
        let items: Vec<Value> = page.entities.iter().map(|e| e.to_json(fetch_state)).collect();
        let mut r = json_response(StatusCode::OK, &Value::Array(items));
        if let Some(t) = page.continuation {
            set_header(&mut r, CONTINUATION, &t);
        }
        Ok(r)
    }
}

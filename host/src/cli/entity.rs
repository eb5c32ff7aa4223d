//! `cairn entity signal|get|list|purge|delete`: durable entities, on the
//! task hub or (with `--url`) over a server's entity routes.

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{CliError, json_arg, print_json, print_out};
use crate::api::BASE_PATH;
use crate::api::client::Client;
use crate::api::http::encode_component as enc;
use crate::entities::EntityFilter;
use crate::hub::Hub;
use crate::ids::EntityId;

/// What `cairn entity` does.
#[derive(Debug, clap::Subcommand)]
pub enum EntityVerb {
    /// Signal an operation of an entity (one way; applied exactly once).
    Signal {
        /// The entity, `name@key` (e.g. Counter@c1).
        entity: String,
        /// The operation (e.g. add).
        operation: String,
        /// Input: JSON text, or @FILE.
        input: Option<String>,
        /// A key that makes retries of this signal safe: a signal already
        /// received under it (for this entity, in the last 24 h) is not queued again.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Print an entity's state (JSON); fails when it has none.
    Get {
        /// The entity, `name@key`.
        entity: String,
    },
    /// List entities (JSON), by id.
    List {
        /// Only entities of this name.
        name: Option<String>,
        /// Include each entity's state.
        #[arg(long)]
        fetch_state: bool,
        /// Most entities to print (default and cap 1000).
        #[arg(long)]
        top: Option<u32>,
        /// Continue a listing (the token printed on stderr).
        #[arg(long)]
        continuation_token: Option<String>,
    },
    /// Delete the entities (all, or of NAME) that have no state, no queued
    /// request and no lock.
    Purge {
        /// Only entities of this name.
        name: Option<String>,
    },
}

fn entity_arg(raw: &str) -> Result<EntityId, CliError> {
    EntityId::parse(raw).map_err(|e| CliError::Usage(e.to_string()))
}

fn key_segment(id: &EntityId) -> String {
    if id.key().is_empty() {
        "$".to_owned()
    } else {
        enc(id.key())
    }
}

/// Where the verbs run.
pub(super) enum Target<'a> {
    Hub(&'a Hub),
    Remote(&'a Client),
}

async fn remote_call(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    ok: &[StatusCode],
) -> Result<crate::api::client::Reply, CliError> {
    super::remote::expect(client.send(method, path, headers, body).await?, ok)
}

/// Runs one `cairn entity` verb.
///
/// # Errors
/// Bad arguments; the task hub's or the server's errors.
pub(super) async fn run(target: Target<'_>, verb: EntityVerb) -> Result<(), CliError> {
    match verb {
        EntityVerb::Signal {
            entity,
            operation,
            input,
            idempotency_key,
        } => {
            let id = entity_arg(&entity)?;
            let input = json_arg(input.as_deref())?;
            let queued = match target {
                Target::Hub(hub) => {
                    hub.signal_entity(&id, &operation, input.as_deref(), idempotency_key.as_deref())
                        .await?
                }
                Target::Remote(client) => {
                    let path = format!(
                        "{BASE_PATH}/entities/{}/{}?op={}",
                        enc(id.name()),
                        key_segment(&id),
                        enc(&operation)
                    );
                    let mut headers = vec![("content-type", "application/json")];
                    if let Some(k) = &idempotency_key {
                        headers.push(("idempotency-key", k));
                    }
                    let body = input.unwrap_or_default().into_bytes();
                    remote_call(client, Method::POST, &path, &headers, body, &[StatusCode::ACCEPTED]).await?;
                    true
                }
            };
            if queued {
                eprintln!("signal {operation:?} to {id} queued");
            } else {
                eprintln!(
                    "signal {operation:?} to {id} was received before under this idempotency key; not queued again"
                );
            }
            Ok(())
        }
        EntityVerb::Get { entity } => {
            let id = entity_arg(&entity)?;
            let state = match target {
                Target::Hub(hub) => hub.entity_state(&id).await?.and_then(|e| e.state),
                Target::Remote(client) => {
                    let path = format!("{BASE_PATH}/entities/{}/{}", enc(id.name()), key_segment(&id));
                    let reply = client.send(Method::GET, &path, &[], Vec::new()).await?;
                    match reply.status {
                        StatusCode::OK => Some(reply.text()),
                        StatusCode::NOT_FOUND => None,
                        s => {
                            return Err(CliError::Remote {
                                status: s.as_u16(),
                                message: reply.error_message(),
                            });
                        }
                    }
                }
            };
            let state =
                state.ok_or_else(|| CliError::Usage(format!("entity {id} does not exist (it has no state)")))?;
            match serde_json::from_str::<Value>(&state) {
                Ok(v) => print_json(&v),
                Err(_) => print_out(&format!("{state}\n")),
            }
            Ok(())
        }
        EntityVerb::List {
            name,
            fetch_state,
            top,
            continuation_token,
        } => {
            if let Some(n) = &name {
                EntityId::new(n, "").map_err(|e| CliError::Usage(e.to_string()))?;
            }
            let (items, next) = match target {
                Target::Hub(hub) => {
                    let filter = EntityFilter {
                        name,
                        ..EntityFilter::default()
                    };
                    let page = hub.list_entities(filter, top, continuation_token.as_deref()).await?;
                    let items: Vec<Value> = page.entities.iter().map(|e| e.to_json(fetch_state)).collect();
                    (Value::Array(items), page.continuation)
                }
                Target::Remote(client) => {
                    let mut path = format!("{BASE_PATH}/entities");
                    if let Some(n) = &name {
                        path.push('/');
                        path.push_str(&enc(n));
                    }
                    path.push_str(&format!("?fetchState={fetch_state}"));
                    if let Some(t) = top {
                        path.push_str(&format!("&top={t}"));
                    }
                    let mut headers = Vec::new();
                    if let Some(t) = &continuation_token {
                        headers.push(("x-ms-continuation-token", t.as_str()));
                    }
                    let reply =
                        remote_call(client, Method::GET, &path, &headers, Vec::new(), &[StatusCode::OK]).await?;
                    let next = reply.header("x-ms-continuation-token").map(str::to_owned);
                    (reply.json(), next)
                }
            };
            print_json(&items);
            if let Some(t) = next {
                eprintln!("more entities: run again with --continuation-token {t}");
            }
            Ok(())
        }
        EntityVerb::Purge { name } => {
            if let Some(n) = &name {
                EntityId::new(n, "").map_err(|e| CliError::Usage(e.to_string()))?;
            }
            let n = match target {
                Target::Hub(hub) => hub.purge_empty_entities(name.as_deref()).await?,
                Target::Remote(client) => {
                    let path = match &name {
                        Some(n) => format!("{BASE_PATH}/entities/{}", enc(n)),
                        None => format!("{BASE_PATH}/entities"),
                    };
                    let reply = remote_call(client, Method::DELETE, &path, &[], Vec::new(), &[StatusCode::OK]).await?;
                    reply.json()["entitiesDeleted"].as_u64().unwrap_or(0)
                }
            };
            eprintln!("purged {n} entities without state");
            Ok(())
        }
    }
}

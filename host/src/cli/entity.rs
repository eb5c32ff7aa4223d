//! `cairn entity signal|get|list|purge`: durable entities, through the
//! management interface (on the task hub, or over a server's entity routes).

use cairn_client::{EntityQuery, EntitySignal, Management};

use super::{CliError, json_value, print_json, print_out, render};
use crate::ids::EntityId;

/// What `cairn entity` does.
#[derive(Debug, clap::Subcommand)]
pub enum EntityVerb {
    /// Signal an operation of an entity (one way; applied exactly once).
    #[command(
        after_help = "Examples:\n  cairn entity signal Counter@c1 add 5\n  cairn entity signal Counter@c1 reset --idempotency-key reset-2026-01"
    )]
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
    /// Print an entity's state (JSON); exits 3 when it has none.
    #[command(after_help = "Examples:\n  cairn entity get Counter@c1")]
    Get {
        /// The entity, `name@key`.
        entity: String,
    },
    /// List entities, by id (table by default).
    #[command(after_help = "Examples:\n  cairn entity list Counter --fetch-state -o json")]
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
    #[command(after_help = "Examples:\n  cairn entity purge Counter")]
    Purge {
        /// Only entities of this name.
        name: Option<String>,
    },
}

fn entity_arg(raw: &str) -> Result<EntityId, CliError> {
    EntityId::parse(raw).map_err(|e| CliError::Usage(e.to_string()))
}

/// Runs one `cairn entity` verb; `json_out(default)` says whether to print JSON.
///
/// # Errors
/// Bad arguments; the task hub's or the server's errors.
pub(super) async fn run(m: &dyn Management, verb: EntityVerb, json_out: impl Fn(bool) -> bool) -> Result<(), CliError> {
    match verb {
        EntityVerb::Signal {
            entity,
            operation,
            input,
            idempotency_key,
        } => {
            let id = entity_arg(&entity)?;
            let signal = EntitySignal {
                name: id.name().to_owned(),
                key: id.key().to_owned(),
                operation: operation.clone(),
                input: json_value("the input", input.as_deref())?,
                idempotency_key,
            };
            let queued = m.signal_entity(&signal).await?;
            if queued {
                eprintln!("signal {operation:?} to {id} queued");
            } else {
                eprintln!(
                    "signal {operation:?} to {id} was received before under this idempotency key; not queued again"
                );
            }
            if json_out(false) {
                print_json(&serde_json::json!({ "entity": id.to_string(), "operation": operation, "queued": queued }));
            }
            Ok(())
        }
        EntityVerb::Get { entity } => {
            let id = entity_arg(&entity)?;
            let state = m.entity_state(id.name(), id.key()).await?;
            print_json(&state);
            Ok(())
        }
        EntityVerb::List {
            name,
            fetch_state,
            top,
            continuation_token,
        } => {
            let query = EntityQuery {
                name,
                fetch_state,
                top,
                continuation: continuation_token,
            };
            let page = m.list_entities(&query).await?;
            if json_out(false) {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .entities
                    .iter()
                    .map(|e| {
                        vec![
                            format!("{}@{}", e.entity_id.name, e.entity_id.key),
                            e.last_operation_time.clone(),
                            e.state.as_ref().map(ToString::to_string).unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_out(&render::table(&["ENTITY", "LAST OPERATION", "STATE"], &rows));
                if let Some(t) = &page.continuation {
                    eprintln!("more entities: run again with --continuation-token {t}");
                }
            }
            Ok(())
        }
        EntityVerb::Purge { name } => {
            let n = m.purge_entities(name.as_deref()).await?;
            eprintln!("purged {n} entities without state");
            if json_out(false) {
                print_json(&serde_json::json!({ "entitiesDeleted": n }));
            }
            Ok(())
        }
    }
}

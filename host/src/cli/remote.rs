//! `cairn --url URL <verb>`: every management verb run against a remote
//! `cairn serve` over its HTTP API instead of a local task hub file.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{Cli, CliError, Command, json_arg, print_continuation, print_json, print_out, status_args, time_arg};
use crate::api::BASE_PATH;
use crate::api::client::{Client, Reply};
use crate::api::http::encode_component as enc;

/// A query string from the pairs that have a value.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn instance(id: &str) -> String {
    format!("{BASE_PATH}/instances/{}", enc(id))
}

struct Remote {
    client: Client,
}

impl Remote {
    /// Sends a request; an error status becomes [`CliError::Remote`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        ok: &[StatusCode],
    ) -> Result<Reply, CliError> {
        let reply = self.client.send(method, path, headers, body).await?;
        Self::expect(reply, ok)
    }

    /// POSTs a management verb (`terminate`, `suspend`, ...) with its reason.
    async fn control(&self, id: &str, verb: &str, what: &str, reason: Option<String>) -> Result<(), CliError> {
        self.post(&format!("{}/{verb}{}", instance(id), query(&[("reason", reason)])))
            .await?;
        eprintln!("{what} of {id} requested");
        Ok(())
    }

    /// Uploads a component; while the server is busy with other uploads
    /// (503 with `Retry-After`), waits as told and tries again, a few times.
    async fn upload(&self, path: &str, bytes: Vec<u8>) -> Result<Reply, CliError> {
        const ATTEMPTS: u32 = 10;
        let headers = [("content-type", "application/wasm")];
        for _ in 1..ATTEMPTS {
            let reply = self.client.send(Method::POST, path, &headers, bytes.clone()).await?;
            let wait = reply
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|_| reply.status == StatusCode::SERVICE_UNAVAILABLE);
            let Some(secs) = wait else {
                return Self::expect(reply, &[StatusCode::OK]);
            };
            eprintln!("the server is busy with other uploads; retrying in {secs} s…");
            tokio::time::sleep(Duration::from_secs(secs.clamp(1, 30))).await;
        }
        self.call(Method::POST, path, &headers, bytes, &[StatusCode::OK]).await
    }

    /// `reply` if its status is one of `ok`, else [`CliError::Remote`].
    fn expect(reply: Reply, ok: &[StatusCode]) -> Result<Reply, CliError> {
        expect(reply, ok)
    }

    async fn post(&self, path: &str) -> Result<Reply, CliError> {
        self.call(Method::POST, path, &[], Vec::new(), &[StatusCode::ACCEPTED])
            .await
    }
}

/// `reply` if its status is one of `ok`, else [`CliError::Remote`].
pub(super) fn expect(reply: Reply, ok: &[StatusCode]) -> Result<Reply, CliError> {
    if ok.contains(&reply.status) {
        Ok(reply)
    } else {
        Err(CliError::Remote {
            status: reply.status.as_u16(),
            message: reply.error_message(),
        })
    }
}

const SUCCESS: &[StatusCode] = &[StatusCode::OK, StatusCode::ACCEPTED];

/// Checks the time filters of `list` and `purge` locally (clear errors
/// before any request); returns the `runtimeStatus` query value.
fn status_filter(
    created_after: Option<&str>,
    created_before: Option<&str>,
    runtime_status: &[String],
) -> Result<Option<String>, CliError> {
    time_arg("--created-after", created_after)?;
    time_arg("--created-before", created_before)?;
    let statuses: Vec<&str> = status_args(runtime_status)?.iter().map(|s| s.as_str()).collect();
    Ok((!statuses.is_empty()).then(|| statuses.join(",")))
}

/// Runs `cli.command` against the server at `url`.
///
/// # Errors
/// Connection errors; the server's error answers.
pub(super) async fn run(url: &str, cli: Cli) -> Result<(), CliError> {
    if cli
        .api_key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k.trim().is_empty())
    {
        return Err(CliError::Usage(
            "--api-key / CAIRN_API_KEY is only whitespace; give the server's key".into(),
        ));
    }
    let r = Remote {
        client: Client::new(url, cli.api_key.clone())?,
    };
    match cli.command {
        Command::UpgradeCheck { .. } | Command::Replay { .. } | Command::PruneVersions | Command::Locks => {
            Err(CliError::Usage(
                "upgrade-check, replay, prune-versions and locks work on the task hub file: run them without --url"
                    .into(),
            ))
        }
        Command::Entity { verb } => super::entity::run(super::entity::Target::Remote(&r.client), verb).await,
        Command::Serve { .. } | Command::Bench(_) => Err(CliError::Usage(
            "serve and bench run on a local task hub; drop --url".into(),
        )),
        Command::Deploy {
            files,
            allow_env,
            allow_dir,
            allow_http,
        } => {
            let query = |env: &[String], dirs: &[String]| {
                let grants = env
                    .iter()
                    .map(|v| ("allowEnv", v))
                    .chain(dirs.iter().map(|v| ("allowDir", v)))
                    .chain(allow_http.iter().map(|v| ("allowHttp", v)))
                    .map(|(k, v)| format!("{k}={}", enc(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                if grants.is_empty() {
                    "/api/components".to_owned()
                } else {
                    format!("/api/components?{grants}")
                }
            };
            for (f, part) in super::deploy_plan(files) {
                let path = match part {
                    super::DeployPart::Whole => query(&allow_env, &allow_dir),
                    super::DeployPart::Orchestrators => query(&[], &[]),
                };
                let bytes = std::fs::read(&f).map_err(|source| CliError::Io {
                    path: f.clone(),
                    source,
                })?;
                eprintln!("deploying {} ({} bytes)…", f.display(), bytes.len());
                let reply = r.upload(&path, bytes).await?;
                let v = reply.json();
                let hash = v["hash"].as_str().unwrap_or_default();
                for func in v["functions"].as_array().into_iter().flatten() {
                    print_out(&format!(
                        "{}\t{}\t{hash}\n",
                        func["name"].as_str().unwrap_or_default(),
                        func["kind"].as_str().unwrap_or_default()
                    ));
                }
            }
            Ok(())
        }
        Command::Start {
            name,
            input,
            id,
            version,
            wait,
        } => {
            let input = json_arg(input.as_deref())?;
            let mut path = format!("{BASE_PATH}/orchestrators/{}", enc(&name));
            if let Some(id) = id.as_deref().filter(|i| !i.is_empty()) {
                path = format!("{path}/{}", enc(id));
            }
            path.push_str(&query(&[("version", version)]));
            let reply = r
                .call(
                    Method::POST,
                    &path,
                    &[("content-type", "application/json")],
                    input.unwrap_or_default().into_bytes(),
                    &[StatusCode::ACCEPTED],
                )
                .await?;
            let id = reply.json()["id"].as_str().unwrap_or_default().to_owned();
            print_out(&format!("{id}\n"));
            if let Some(secs) = wait {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
                loop {
                    let reply = r.call(Method::GET, &instance(&id), &[], Vec::new(), SUCCESS).await?;
                    let done = reply.status == StatusCode::OK;
                    if done || tokio::time::Instant::now() >= deadline {
                        let v = reply.json();
                        print_json(&v);
                        if !done {
                            return Err(CliError::Usage(format!(
                                "instance {id} is still {} after {secs} s",
                                v["runtimeStatus"].as_str().unwrap_or("running")
                            )));
                        }
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok(())
        }
        Command::Status {
            id,
            show_input,
            show_output,
            show_history,
        } => {
            let path = format!(
                "{}{}",
                instance(&id),
                query(&[
                    ("showInput", Some(show_input.to_string())),
                    ("showHistory", Some(show_history.to_string())),
                    ("showHistoryOutput", Some(show_history.to_string())),
                ])
            );
            let reply = r.call(Method::GET, &path, &[], Vec::new(), SUCCESS).await?;
            let mut status = reply.json();
            // As locally: the output only with --show-output.
            if !show_output && let Some(m) = status.as_object_mut() {
                m.remove("output");
            }
            print_json(&status);
            Ok(())
        }
        Command::History { id } | Command::GetHistory { id } => {
            let path = format!("{}?showHistory=true&showHistoryOutput=true", instance(&id));
            let reply = r.call(Method::GET, &path, &[], Vec::new(), SUCCESS).await?;
            let events = reply
                .json()
                .get("historyEvents")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            print_json(&events);
            Ok(())
        }
        Command::RaiseEvent { id, event, data } => {
            let data = json_arg(data.as_deref())?;
            let path = format!("{}/raiseEvent/{}", instance(&id), enc(&event));
            r.call(
                Method::POST,
                &path,
                &[("content-type", "application/json")],
                data.unwrap_or_else(|| "null".into()).into_bytes(),
                &[StatusCode::ACCEPTED],
            )
            .await?;
            eprintln!("event {event:?} raised to {id}");
            Ok(())
        }
        Command::Terminate { id, reason } => r.control(&id, "terminate", "termination", reason).await,
        Command::Suspend { id, reason } => r.control(&id, "suspend", "suspension", reason).await,
        Command::Resume { id, reason } => r.control(&id, "resume", "resumption", reason).await,
        Command::Rewind { id, reason } => r.control(&id, "rewind", "rewind", reason).await,
        Command::Restart { id, same_id } => {
            let reply = r
                .post(&format!(
                    "{}/restart{}",
                    instance(&id),
                    query(&[("restartWithNewInstanceId", Some((!same_id).to_string()))])
                ))
                .await?;
            print_out(&format!("{}\n", reply.json()["id"].as_str().unwrap_or_default()));
            Ok(())
        }
        Command::List {
            created_after,
            created_before,
            runtime_status,
            prefix,
            top,
            continuation_token,
            show_input,
        } => {
            let statuses = status_filter(created_after.as_deref(), created_before.as_deref(), &runtime_status)?;
            let path = format!(
                "{BASE_PATH}/instances{}",
                query(&[
                    ("createdTimeFrom", created_after),
                    ("createdTimeTo", created_before),
                    ("runtimeStatus", statuses),
                    ("instanceIdPrefix", prefix),
                    ("top", top.map(|t| t.to_string())),
                    ("showInput", Some(show_input.to_string())),
                ])
            );
            let headers: Vec<(&str, &str)> = continuation_token
                .as_deref()
                .map(|t| ("x-ms-continuation-token", t))
                .into_iter()
                .collect();
            let reply = r
                .call(Method::GET, &path, &headers, Vec::new(), &[StatusCode::OK])
                .await?;
            print_json(&reply.json());
            print_continuation(reply.header("x-ms-continuation-token").filter(|t| !t.is_empty()));
            Ok(())
        }
        Command::Purge {
            id,
            created_after,
            created_before,
            runtime_status,
        } => {
            if let Some(id) = id {
                r.call(Method::DELETE, &instance(&id), &[], Vec::new(), &[StatusCode::OK])
                    .await?;
                eprintln!("purged 1 instance");
                return Ok(());
            }
            let statuses = status_filter(created_after.as_deref(), created_before.as_deref(), &runtime_status)?;
            let path = format!(
                "{BASE_PATH}/instances{}",
                query(&[
                    (
                        "createdTimeFrom",
                        Some(created_after.unwrap_or_else(|| "1970-01-01T00:00:00Z".into()))
                    ),
                    ("createdTimeTo", created_before),
                    ("runtimeStatus", statuses),
                ])
            );
            let reply = r
                .call(
                    Method::DELETE,
                    &path,
                    &[],
                    Vec::new(),
                    &[StatusCode::OK, StatusCode::NOT_FOUND],
                )
                .await?;
            let n = reply.json()["instancesDeleted"].as_u64().unwrap_or(0);
            eprintln!("purged {n} instance(s)");
            Ok(())
        }
        Command::DeleteTaskHub { yes } => {
            if !yes {
                return Err(CliError::Usage(
                    "delete-task-hub deletes every instance and component; pass --yes to confirm".into(),
                ));
            }
            let reply = r
                .call(
                    Method::DELETE,
                    "/api/taskhub?confirm=true",
                    &[],
                    Vec::new(),
                    &[StatusCode::OK],
                )
                .await?;
            let n = reply.json()["instancesDeleted"].as_u64().unwrap_or(0);
            eprintln!("deleted the task hub behind {url}: {n} instance(s) and every component");
            Ok(())
        }
    }
}

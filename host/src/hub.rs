//! The operations people perform on a task hub (deploy, start, raise an
//! event, terminate, ...), with input validation. Shared by the CLI, the
//! HTTP API and the benchmarks, so every entry point enforces the same rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::now_ms;
use crate::history::Event;
use crate::ids::{IdError, InstanceId, validate_name};
use crate::sandbox::{Grants, Limits, Loaded, Sandbox, SandboxError, content_hash, default_cache_dir};
use crate::store::{FunctionKind, Store, StoreError};

/// Errors of hub operations, each with a message that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("{what} is not valid JSON: {error}")]
    BadJson { what: &'static str, error: String },
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("this is not a WebAssembly binary ({0}); deploy the .wasm file of a component built for wasm32-wasip2")]
    NotWasm(&'static str),
    #[error("this is a core wasm module, not a component; build for wasm32-wasip2 or run `wasm-tools component new`")]
    CoreModule,
    #[error("compiling the component took longer than {0} s (limits.compile_time); it was refused")]
    CompileTimeout(u64),
    #[error("capability grants refused: {0}")]
    Grants(String),
    #[error("{0}")]
    NotReplayable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl HubError {
    /// True when the request itself was wrong (HTTP 400), not the server.
    #[must_use]
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Self::Id(_)
                | Self::NotWasm(_)
                | Self::CoreModule
                | Self::BadJson { .. }
                | Self::TooLarge { .. }
                | Self::Sandbox(_)
                | Self::Grants(_)
                | Self::NotReplayable(_)
                | Self::CompileTimeout(_)
        ) || matches!(
            self,
            Self::Store(StoreError::FunctionNotFound { .. } | StoreError::VersionNotFound(_))
        )
    }
}

/// What `deploy` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    pub hash: String,
    pub functions: Vec<(String, FunctionKind)>,
    pub size: usize,
}

/// A task hub opened for management: store + sandbox.
#[derive(Clone)]
pub struct Hub {
    pub store: Store,
    pub sandbox: Arc<Sandbox>,
}

impl Hub {
    /// Opens the task hub at `db` with the default limits and the compiled
    /// cache next to it.
    ///
    /// # Errors
    /// Store and sandbox start-up errors.
    pub fn open(db: &Path) -> Result<Self, HubError> {
        Self::open_with(db, Limits::default(), Some(default_cache_dir(db)))
    }

    /// Opens with explicit limits and cache directory.
    ///
    /// # Errors
    /// Store and sandbox start-up errors.
    pub fn open_with(db: &Path, limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, HubError> {
        let store = crate::store::open(db)?;
        let sandbox = Sandbox::new(cache_dir, limits)?;
        Ok(Self { store, sandbox })
    }

    /// Validates, compiles, inspects and stores a component. Deploying the
    /// same bytes again is a no-op apart from making them the newest version.
    ///
    /// # Errors
    /// [`HubError::Sandbox`] for an invalid component; store errors.
    pub async fn deploy(&self, bytes: Vec<u8>) -> Result<DeployReport, HubError> {
        self.deploy_with(bytes, Grants::default()).await
    }

    /// Deploys a component with capabilities granted to its activities
    /// (environment variables, preopened directories, outbound HTTP hosts).
    /// Components that export orchestrators get only HTTP hosts, which their
    /// orchestrators reach through durable HTTP (the host sends the request
    /// and records the response); orchestrators themselves have no I/O.
    ///
    /// # Errors
    /// As [`Hub::deploy`]; [`HubError::Grants`] for grants on an orchestrator component.
    pub async fn deploy_with(&self, bytes: Vec<u8>, grants: Grants) -> Result<DeployReport, HubError> {
        let hash = content_hash(&bytes);
        // The bytes move to the compile thread and back: no copy of a
        // component that may be tens of MiB.
        let (loaded, bytes) = self.load_owned(&hash, bytes).await?;
        let deployed = self.deploy_loaded(&hash, &loaded, bytes, grants).await;
        if deployed.is_err() && !self.is_deployed(&hash).await {
            // Refused: nothing of it stays behind (its compiled code in the
            // cache directory included).
            self.sandbox.forget(&hash);
        }
        deployed
    }

    /// Whether component `hash` is stored (a store error counts as yes:
    /// its compiled code is then kept).
    async fn is_deployed(&self, hash: &str) -> bool {
        !matches!(
            self.store.component_grants(hash).await,
            Err(StoreError::VersionNotFound(_))
        )
    }

    async fn deploy_loaded(
        &self,
        hash: &str,
        loaded: &Loaded,
        bytes: Vec<u8>,
        grants: Grants,
    ) -> Result<DeployReport, HubError> {
        let hash = hash.to_owned();
        let functions = self.sandbox.inspect(loaded).await?;
        // Entities are sandboxed like orchestrators.
        let deterministic = functions
            .iter()
            .any(|(_, k)| matches!(k, FunctionKind::Orchestrator | FunctionKind::Entity));
        if deterministic {
            self.sandbox.check_orchestrator_imports(loaded)?;
        }
        self.sandbox.check_grants(loaded, &grants)?;
        self.sandbox.check_linkable(loaded)?;
        if (!grants.env.is_empty() || !grants.dirs.is_empty()) && deterministic {
            return Err(HubError::Grants(
                "this component exports orchestrators or entities, which get no environment variables or directories (only --allow-http, for durable HTTP); put the activities that need them in their own component".into(),
            ));
        }
        if let Some((name, _)) = functions.iter().find(|(n, _)| n.starts_with("BuiltIn::")) {
            return Err(HubError::Grants(format!(
                "function name {name:?} is reserved: names starting with BuiltIn:: belong to the host"
            )));
        }
        let size = bytes.len();
        let grants = serde_json::to_string(&grants).map_err(|e| HubError::Internal(e.to_string()))?;
        self.store
            .deploy_component(hash.clone(), bytes, functions.clone(), grants, now_ms())
            .await?;
        Ok(DeployReport { hash, functions, size })
    }

    /// Compiles (or loads from the compiled cache) component `bytes` whose
    /// content hash is `hash`, off the async threads, within the
    /// compile-time limit.
    ///
    /// # Errors
    /// [`HubError::CompileTimeout`]; [`HubError::Sandbox`] for an invalid component.
    pub async fn load(&self, hash: &str, bytes: &[u8]) -> Result<Arc<Loaded>, HubError> {
        Ok(self.load_owned(hash, bytes.to_vec()).await?.0)
    }

    /// As [`Hub::load`], taking the bytes and handing them back.
    async fn load_owned(&self, hash: &str, bytes: Vec<u8>) -> Result<(Arc<Loaded>, Vec<u8>), HubError> {
        check_wasm_kind(&bytes)?;
        let sandbox = self.sandbox.clone();
        let h = hash.to_owned();
        let limit = self.sandbox.limits().max_compile_time;
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = abandoned.clone();
        // The compile thread cannot be interrupted; the caller stops
        // waiting, and what the thread compiles afterwards is dropped.
        let (loaded, bytes) = tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || {
                let loaded = sandbox.load_unless_abandoned(&h, &bytes, &flag);
                (loaded, bytes)
            }),
        )
        .await
        .map_err(|_| {
            abandoned.store(true, Ordering::SeqCst);
            HubError::CompileTimeout(limit.as_secs())
        })?
        .map_err(|e| HubError::Internal(e.to_string()))?;
        Ok((loaded?, bytes))
    }

    pub(crate) fn check_json(&self, what: &'static str, text: &str) -> Result<(), HubError> {
        let limit = self.sandbox.limits().max_payload_bytes;
        if text.len() > limit {
            return Err(HubError::TooLarge {
                what,
                size: text.len(),
                limit,
            });
        }
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| HubError::BadJson {
            what,
            error: e.to_string(),
        })?;
        Ok(())
    }

    /// Starts orchestrator `name`. `input` is JSON text (`None` = null);
    /// `id` is validated, or generated when absent.
    ///
    /// # Errors
    /// Invalid id / JSON, unknown function, an unfinished instance with that id.
    pub async fn start(
        &self,
        name: &str,
        input: Option<&str>,
        id: Option<&str>,
        version: Option<&str>,
    ) -> Result<InstanceId, HubError> {
        validate_name("orchestrator name", name)?;
        let input = input.map_or("null", str::trim);
        let input = if input.is_empty() { "null" } else { input };
        self.check_json("input", input)?;
        let id = match id {
            Some(raw) if !raw.is_empty() => InstanceId::parse(raw)?,
            _ => InstanceId::generate(),
        };
        let version = match version {
            Some(v) => {
                if !self.store.orchestrator_version_exists(name, v).await? {
                    return Err(StoreError::VersionNotFound(v.to_owned()).into());
                }
                v.to_owned()
            }
            None => self.store.resolve_function(name, FunctionKind::Orchestrator).await?,
        };
        let now = now_ms();
        let new = crate::decide::new_execution(
            id.as_str(),
            crate::ids::random_hex(),
            name,
            &version,
            input,
            None,
            Vec::new(),
            now,
        );
        self.store.create_instance(new, now).await?;
        Ok(id)
    }

    /// Raises event `name` with JSON `data` to instance `id`.
    ///
    /// # Errors
    /// Unknown or finished instance; invalid name or JSON.
    pub async fn raise_event(&self, id: &str, name: &str, data: Option<&str>) -> Result<(), HubError> {
        let id = InstanceId::parse(id)?;
        validate_name("event name", name)?;
        let data = data.map_or("null", str::trim);
        let data = if data.is_empty() { "null" } else { data };
        self.check_json("event data", data)?;
        let event = Event::EventRaised {
            name: name.to_owned(),
            input: data.to_owned(),
        };
        Ok(self.store.send_message(id.as_str(), event, now_ms()).await?)
    }

    /// Rewinds a Failed instance: its failed tasks are rescheduled and it
    /// runs again from its last good state.
    ///
    /// # Errors
    /// Unknown instance; [`StoreError::NotFailed`] when it is not Failed.
    pub async fn rewind(&self, id: &str, reason: Option<&str>) -> Result<(), HubError> {
        let id = InstanceId::parse(id)?;
        let row = self
            .store
            .get_instance(id.as_str())
            .await?
            .ok_or_else(|| StoreError::InstanceNotFound(id.as_str().to_owned()))?;
        if row.status != crate::store::RuntimeStatus::Failed {
            return Err(StoreError::NotFailed {
                id: id.as_str().to_owned(),
                status: row.status,
            }
            .into());
        }
        let history = self.store.get_history(id.as_str()).await?;
        let mut versions = std::collections::HashMap::new();
        for name in crate::decide::children_named(&history) {
            if let Ok(hash) = self.store.resolve_function(&name, FunctionKind::Orchestrator).await {
                versions.insert(name, hash);
            }
        }
        let mut ids = crate::ids::random_hex;
        let mut inputs = crate::decide::Inputs {
            versions: &versions,
            new_execution_id: &mut ids,
        };
        let plan = crate::decide::rewind(&row, &history, reason.map(str::to_owned), now_ms(), &mut inputs)?;
        Ok(self.store.rewind(plan).await?)
    }

    /// Sends a control message (terminate, suspend, resume) to `id`.
    ///
    /// # Errors
    /// Unknown or finished instance.
    pub async fn control(&self, id: &str, event: Event) -> Result<(), HubError> {
        let id = InstanceId::parse(id)?;
        Ok(self.store.send_message(id.as_str(), event, now_ms()).await?)
    }
}

/// Tells a component from other files by its first 8 bytes (magic,
/// version, layer), so that deploying the wrong file says what it is and
/// what to do instead of the parser's dump of the bytes it expected.
///
/// # Errors
/// [`HubError::NotWasm`], [`HubError::CoreModule`].
fn check_wasm_kind(bytes: &[u8]) -> Result<(), HubError> {
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"(component") || text.starts_with(b"(module") {
        return Err(HubError::NotWasm(
            "it is WebAssembly text; turn it into a binary with `wasm-tools parse`",
        ));
    }
    match bytes {
        [] => Err(HubError::NotWasm("the file is empty")),
        [0, b'a', b's', b'm', _, _, 0, 0, ..] => Err(HubError::CoreModule),
        [0, b'a', b's', b'm', _, _, _, _, ..] => Ok(()),
        [0, b'a', b's', b'm', ..] => Err(HubError::NotWasm("it ends within its 8-byte header")),
        _ => Err(HubError::NotWasm("it does not start with the bytes \\0asm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_kinds_are_told_apart() {
        let kind = |b: &[u8]| check_wasm_kind(b).map_err(|e| e.to_string());
        assert!(kind(b"\0asm\x0d\0\x01\0rest").is_ok(), "component");
        let core = kind(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(core.contains("core wasm module, not a component"), "{core}");
        assert!(core.contains("wasm-tools component new"), "{core}");
        for (bytes, says) in [
            (&b""[..], "empty"),
            (b"\0asm\x0d", "header"),
            (b"PK\x03\x04garbage", "\\0asm"),
            (b"  (module)", "wasm-tools parse"),
        ] {
            let e = kind(bytes).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{e}");
        }
    }
}

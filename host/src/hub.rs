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
use crate::store::{FunctionKind, StartRequest, Store, StoreError};

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
        let store = Store::open(db)?;
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
        let loaded = self.load(&hash, &bytes).await?;
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
        if functions.iter().any(|(_, k)| *k == FunctionKind::Orchestrator) {
            self.sandbox.check_orchestrator_imports(loaded)?;
        }
        self.sandbox.check_grants(loaded, &grants)?;
        self.sandbox.check_linkable(loaded)?;
        if (!grants.env.is_empty() || !grants.dirs.is_empty())
            && functions.iter().any(|(_, k)| *k == FunctionKind::Orchestrator)
        {
            return Err(HubError::Grants(
                "this component exports orchestrators, which get no environment variables or directories (only --allow-http, for durable HTTP); put the activities that need them in their own component".into(),
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
        let sandbox = self.sandbox.clone();
        let (h, b) = (hash.to_owned(), bytes.to_vec());
        let limit = self.sandbox.limits().max_compile_time;
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = abandoned.clone();
        // The compile thread cannot be interrupted; the caller stops
        // waiting, and what the thread compiles afterwards is dropped.
        tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || sandbox.load_unless_abandoned(&h, &b, &flag)),
        )
        .await
        .map_err(|_| {
            abandoned.store(true, Ordering::SeqCst);
            HubError::CompileTimeout(limit.as_secs())
        })?
        .map_err(|e| HubError::Internal(e.to_string()))?
        .map_err(HubError::from)
    }

    fn check_json(&self, what: &'static str, text: &str) -> Result<(), HubError> {
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
        self.store
            .start_instance(StartRequest {
                instance_id: id.as_str().to_owned(),
                name: name.to_owned(),
                input: input.to_owned(),
                version: version.map(str::to_owned),
                now: now_ms(),
            })
            .await?;
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
        Ok(self
            .store
            .rewind_instance(id.as_str(), reason.map(str::to_owned), now_ms())
            .await?)
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

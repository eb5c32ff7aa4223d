//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when `cairn
//! serve --otlp-endpoint URL` or `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//!
//! One trace per instance execution: a root span `orchestration NAME` from
//! creation to completion, and under it a span for the start request, each
//! episode, each activity attempt (`activity NAME`, `http METHOD URL` for
//! durable HTTP) and each durable timer (from its creation to its due
//! time). Episodes and attempts run at different times, on different
//! threads, possibly after a restart, so ids are derived, not carried: the
//! trace id and the root span id are hashes of the instance and execution
//! ids, and every span names the root as its parent. A W3C `traceparent` on
//! the start request becomes the root's parent (and the trace id), and a
//! sub-orchestration's root is a child of its parent's root; that link
//! is kept in memory (by instance id, set before the instance is created
//! and dropped when its execution ends), so after a restart the instance's
//! remaining spans go to its derived trace.
//!
//! Spans are built with explicit start and end times and handed to the SDK's
//! batch processor (its own thread); the OTLP client is the hyper client of
//! [`crate::api::client`], run on the server's tokio runtime.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use sha2::{Digest, Sha256};

use crate::history::Millis;

/// The exporter, once `serve` configured one.
static TRACES: OnceLock<Traces> = OnceLock::new();

/// Most `traceparent` links kept (the oldest half goes beyond).
const MAX_PARENTS: usize = 100_000;

struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Instance id → the span context of its start request's
    /// `traceparent` (until its execution ends).
    parents: Mutex<HashMap<String, SpanContext>>,
}

/// Errors of setting up the exporter.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("--otlp-endpoint {0:?}: expected http://host:port[/path] (https: put a local collector in front)")]
    BadEndpoint(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The OTLP/HTTP traces URL from a flag or the standard variables:
/// `--otlp-endpoint` and `OTEL_EXPORTER_OTLP_ENDPOINT` are base URLs
/// (`/v1/traces` is appended), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as is.
#[must_use]
pub fn endpoint_from(flag: Option<&str>) -> Option<String> {
    let base = |b: &str| format!("{}/v1/traces", b.trim_end_matches('/'));
    if let Some(f) = flag.filter(|f| !f.trim().is_empty()) {
        return Some(base(f.trim()));
    }
    if let Ok(t) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        && !t.trim().is_empty()
    {
        return Some(t.trim().to_owned());
    }
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .map(|b| base(b.trim()))
}

/// The OTLP client: requests go out through [`crate::api::client::Client`]
/// on the tokio runtime of `handle` (the SDK exports from its own thread).
#[derive(Debug)]
struct OtlpClient {
    handle: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: hyper::http::Request<Bytes>,
    ) -> Result<hyper::http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let uri = parts.uri.clone();
        let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        let method = parts.method.clone();
        let sent = self.handle.spawn(async move {
            let client = crate::api::client::Client::new(&format!("http://{authority}"), None)?;
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            client.send(method, &path, &h, body.to_vec()).await
        });
        let reply = sent.await??;
        let mut resp = hyper::http::Response::new(reply.body);
        *resp.status_mut() = reply.status;
        Ok(resp)
    }
}

/// Starts exporting traces to `endpoint` (an `http://` OTLP/HTTP traces
/// URL), from the current tokio runtime.
///
/// # Errors
/// [`TraceError`] for an unusable endpoint.
pub fn init(endpoint: &str) -> Result<(), TraceError> {
    if !endpoint.starts_with("http://") || endpoint.parse::<hyper::http::Uri>().is_err() {
        return Err(TraceError::BadEndpoint(endpoint.to_owned()));
    }
    let handle = tokio::runtime::Handle::try_current().map_err(|e| TraceError::Exporter(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpClient { handle })
        .with_endpoint(endpoint)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("cairn")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("cairn");
    let _ = TRACES.set(Traces {
        provider,
        tracer,
        parents: Mutex::new(HashMap::new()),
    });
    Ok(())
}

/// Exports what is buffered and stops (at `serve`'s end).
pub fn shutdown() {
    if let Some(t) = TRACES.get() {
        let _ = t.provider.force_flush();
        let _ = t.provider.shutdown();
    }
}

/// Whether traces are exported.
#[must_use]
pub fn enabled() -> bool {
    TRACES.get().is_some()
}

fn hash(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

fn time(ms: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Parses a W3C `traceparent` (`00-<trace>-<span>-<flags>`).
#[must_use]
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [version, trace, span, flags] = parts.as_slice() else {
        return None;
    };
    if version.len() != 2 || *version == "ff" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// The trace of an execution: its trace id and root span id.
fn ids(t: &Traces, instance: &str, execution: &str) -> (TraceId, SpanId, Option<SpanContext>) {
    let parent = t.parents.lock().ok().and_then(|p| p.get(instance).cloned());
    let h = hash(&["cairn-trace", instance, execution]);
    let mut trace = [0u8; 16];
    trace.copy_from_slice(&h[..16]);
    let mut root = [0u8; 8];
    root.copy_from_slice(&h[16..24]);
    let trace_id = parent
        .as_ref()
        .map_or_else(|| TraceId::from_bytes(trace), SpanContext::trace_id);
    (trace_id, SpanId::from_bytes(root), parent)
}

/// Links an instance about to start to its start request's `traceparent`
/// (until its execution ends).
pub fn set_parent(instance: &str, traceparent: &str) {
    let (Some(t), Some(sc)) = (TRACES.get(), parse_traceparent(traceparent)) else {
        return;
    };
    if let Ok(mut p) = t.parents.lock() {
        if p.len() >= MAX_PARENTS {
            let drop: Vec<String> = p.keys().take(MAX_PARENTS / 2).cloned().collect();
            for k in drop {
                p.remove(&k);
            }
        }
        p.insert(instance.to_owned(), sc);
    }
}

/// Puts a sub-orchestration's trace under its parent's: the child's root
/// span becomes a child of the parent execution's root span (unless the
/// child has a link already). Called at each of the child's episodes, so
/// the link is back after a restart from its next episode on.
pub fn set_parent_execution(instance: &str, parent_instance: &str, parent_execution: &str) {
    let Some(t) = TRACES.get() else { return };
    let (trace_id, root, _) = ids(t, parent_instance, parent_execution);
    let sc = SpanContext::new(trace_id, root, TraceFlags::SAMPLED, true, TraceState::default());
    if let Ok(mut p) = t.parents.lock()
        && p.len() < MAX_PARENTS
    {
        p.entry(instance.to_owned()).or_insert(sc);
    }
}

/// Drops the link of a start that failed.
pub fn forget_parent(instance: &str) {
    if let Some(Ok(mut p)) = TRACES.get().map(|t| t.parents.lock()) {
        p.remove(instance);
    }
}

/// A finished span of an execution, under its root span.
#[derive(Debug, Clone)]
pub struct SpanRecord<'a> {
    pub instance: &'a str,
    pub execution: &'a str,
    pub name: String,
    pub start: Millis,
    pub end: Millis,
    pub attributes: Vec<KeyValue>,
    /// `Some(message)`: the span failed.
    pub error: Option<String>,
}

/// Emits a span under the execution's root span.
pub fn span(r: SpanRecord<'_>) {
    let Some(t) = TRACES.get() else { return };
    let (trace_id, root, _) = ids(t, r.instance, r.execution);
    let parent = SpanContext::new(trace_id, root, TraceFlags::SAMPLED, true, TraceState::default());
    emit(
        t,
        &Context::new().with_remote_span_context(parent),
        None,
        r,
        SpanKind::Internal,
    );
}

/// Emits the root span of an execution (at its end), under the start
/// request's `traceparent` when there was one.
pub fn root(r: SpanRecord<'_>) {
    let Some(t) = TRACES.get() else { return };
    let (trace_id, root, parent) = ids(t, r.instance, r.execution);
    let cx = match parent {
        Some(p) => Context::new().with_remote_span_context(p),
        None => Context::new(),
    };
    let instance = r.instance.to_owned();
    emit(t, &cx, Some((trace_id, root)), r, SpanKind::Internal);
    if let Ok(mut p) = t.parents.lock() {
        p.remove(&instance);
    }
}

fn emit(t: &Traces, cx: &Context, ids: Option<(TraceId, SpanId)>, r: SpanRecord<'_>, kind: SpanKind) {
    let mut attributes = r.attributes;
    attributes.push(KeyValue::new("cairn.instance_id", r.instance.to_owned()));
    attributes.push(KeyValue::new("cairn.execution_id", r.execution.to_owned()));
    let mut b = t
        .tracer
        .span_builder(r.name)
        .with_kind(kind)
        .with_start_time(time(r.start))
        // A zero-length span would get the export time as its end.
        .with_end_time(if r.end > r.start {
            time(r.end)
        } else {
            time(r.start) + Duration::from_micros(1)
        })
        .with_attributes(attributes);
    if let Some((trace_id, span_id)) = ids {
        b.trace_id = Some(trace_id);
        b.span_id = Some(span_id);
    }
    if let Some(message) = r.error {
        b.status = Status::error(message);
    }
    let span = t.tracer.build_with_context(b, cx);
    // The end time is set on the builder; ending now records it as is.
    drop(span);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_strictly() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn endpoints_come_from_the_flag_first() {
        assert_eq!(
            endpoint_from(Some("http://127.0.0.1:4318/")).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
    }
}

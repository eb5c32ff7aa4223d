//! OpenTelemetry: a real `cairn serve --otlp-endpoint` exports its spans
//! over OTLP/HTTP to a receiver here (hyper, protobuf decoded with
//! `opentelemetry-proto`): one trace per instance, the root under the start
//! request's `traceparent`, episodes, every activity attempt of a fan-out
//! and of a retry, and timers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

use crate::common::serve::{ServeProcess, cairn_cli};
use crate::common::{TempDir, repo_root};

/// The spans received so far.
type Spans = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP receiver on a loopback port: `POST /v1/traces` with an
/// `ExportTraceServiceRequest` in protobuf.
async fn receiver() -> (String, Spans) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans: Spans = Arc::default();
    let store = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let status = match ExportTraceServiceRequest::decode(body) {
                            Ok(r) if path == "/v1/traces" => {
                                let mut s = store.lock().unwrap();
                                for rs in r.resource_spans {
                                    for ss in rs.scope_spans {
                                        s.extend(ss.spans);
                                    }
                                }
                                200
                            }
                            _ => 400,
                        };
                        let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        resp.headers_mut()
                            .insert("content-type", "application/x-protobuf".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), spans)
}

struct Serve {
    server: ServeProcess,
    addr: String,
    _dir: TempDir,
}

fn serve(otlp: &str, components: &[&str]) -> Serve {
    let dir = TempDir::new("otlp");
    let db = dir.0.join("hub.db");
    for c in components {
        let path = repo_root().join(format!("target/guests/rust/{c}.wasm"));
        let db = db.to_str().unwrap();
        let (ok, _, err) = cairn_cli(&["--db", db, "deploy", path.to_str().unwrap()]);
        assert!(ok, "{err}");
    }
    let server = ServeProcess::start_with_env(&db, &["--otlp-endpoint", otlp], &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    let addr = server.addr.to_string();
    Serve {
        server,
        addr,
        _dir: dir,
    }
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn instance_of(span: &Span) -> String {
    match attr(span, "cairn.instance_id") {
        Some(AnyValue::StringValue(s)) => s,
        _ => String::new(),
    }
}

/// Waits until the root span of `instance` arrived; returns its spans.
async fn trace_of(spans: &Spans, instance: &str) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<Span> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| instance_of(s) == instance)
            .cloned()
            .collect();
        if got.iter().any(|s| s.name.starts_with("orchestration ")) {
            return got;
        }
        assert!(Instant::now() < deadline, "no root span of {instance}: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_fan_out_and_a_retry_form_one_tree_per_instance() {
    let (otlp, spans) = receiver().await;
    let s = serve(
        &otlp,
        &["fan-out-fan-in", "retry", "human-interaction", "sub-orchestration"],
    );
    let c = cairn::api::client::Client::new(&format!("http://{}", s.addr), None).unwrap();
    let post = |path: String, body: &'static str, extra: Vec<(&'static str, String)>| {
        let c = c.clone();
        async move {
            let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
            h.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            c.send(hyper::Method::POST, &path, &h, body.as_bytes().to_vec())
                .await
                .unwrap()
        }
    };
    let base = "/runtime/webhooks/durabletask/orchestrators";
    let r = post(format!("{base}/FanOutFanIn/fan-1?timeout=30"), r#"{"count":4}"#, vec![]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let r = post(
        format!("{base}/RetryFlaky/retry-1?timeout=30"),
        r#"{"fail_times":2}"#,
        vec![("traceparent", format!("00-{parent_trace}-{parent_span}-01"))],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    // A timer: the approval escalates after 50 ms.
    let r = post(
        format!("{base}/ApprovalWorkflow/timer-1?timeout=30"),
        r#"{"timeout_ms":50}"#,
        vec![],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());

    // The fan-out: one trace; the root has no parent; everything else hangs
    // under the root; four Square attempts run inside it.
    let fan = trace_of(&spans, "fan-1").await;
    let root = fan.iter().find(|s| s.name == "orchestration FanOutFanIn").unwrap();
    assert!(root.parent_span_id.is_empty(), "the root has no parent");
    assert!(fan.iter().all(|s| s.trace_id == root.trace_id), "one trace");
    let others: Vec<&Span> = fan.iter().filter(|s| s.span_id != root.span_id).collect();
    assert!(
        others.iter().all(|s| s.parent_span_id == root.span_id),
        "a tree under the root"
    );
    let count = |name: &str| fan.iter().filter(|s| s.name == name).count();
    assert_eq!(count("start FanOutFanIn"), 1);
    assert_eq!(count("activity Square"), 4);
    assert!(
        count("episode FanOutFanIn") >= 2,
        "{:?}",
        fan.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for s in &fan {
        assert!(s.start_time_unix_nano <= s.end_time_unix_nano, "{}", s.name);
        assert!(
            s.start_time_unix_nano >= root.start_time_unix_nano,
            "{} starts inside its root",
            s.name
        );
    }

    // The retry: the trace and the root's parent come from `traceparent`;
    // three attempts, the first two failed.
    let retry = trace_of(&spans, "retry-1").await;
    let root = retry.iter().find(|s| s.name == "orchestration RetryFlaky").unwrap();
    assert_eq!(hex::encode(&root.trace_id), parent_trace);
    assert_eq!(hex::encode(&root.parent_span_id), parent_span);
    assert!(retry.iter().all(|s| s.trace_id == root.trace_id));
    let mut attempts: Vec<(i64, i32)> = retry
        .iter()
        .filter(|s| s.name == "activity FlakyActivity")
        .map(|s| {
            assert_eq!(s.parent_span_id, root.span_id);
            let attempt = match attr(s, "cairn.attempt") {
                Some(AnyValue::IntValue(n)) => n,
                other => panic!("attempt: {other:?}"),
            };
            (attempt, s.status.as_ref().map_or(0, |st| st.code))
        })
        .collect();
    attempts.sort_unstable();
    // Status code 2 = error, 0 = unset.
    assert_eq!(attempts, [(1, 2), (2, 2), (3, 0)]);

    // A timer span from its creation to its due time.
    let timer = trace_of(&spans, "timer-1").await;
    let t = timer.iter().find(|s| s.name == "timer").expect("a timer span");
    let ms = (t.end_time_unix_nano - t.start_time_unix_nano) / 1_000_000;
    assert!((40..=60).contains(&ms), "due 50 ms after its creation: {ms} ms");

    // Sub-orchestrations join their parent's trace, under its root.
    let r = post(
        format!("{base}/ProvisionAll/parent-1?timeout=30"),
        r#"{"devices":["a"]}"#,
        vec![],
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let parent = trace_of(&spans, "parent-1").await;
    let parent_root = parent.iter().find(|s| s.name == "orchestration ProvisionAll").unwrap();
    let child_id = spans
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.name == "orchestration ProvisionDevice")
        .map(instance_of);
    let child = trace_of(&spans, &child_id.expect("the child's root span")).await;
    let child_root = child
        .iter()
        .find(|s| s.name == "orchestration ProvisionDevice")
        .unwrap();
    assert_eq!(child_root.trace_id, parent_root.trace_id, "one trace");
    assert_eq!(
        child_root.parent_span_id, parent_root.span_id,
        "under the parent's root"
    );

    // Ids are hex of the right lengths.
    let by_id: HashMap<Vec<u8>, &Span> = fan.iter().map(|s| (s.span_id.clone(), s)).collect();
    assert!(by_id.keys().all(|k| k.len() == 8));
}

//! Prometheus metrics (`GET /metrics`), through `prometheus-client`.
//!
//! [`Telemetry`] holds the metrics the engine and the API update as they
//! work (histograms of durations, counters per function and per HTTP
//! route); [`Telemetry::encode`] adds the gauges read at scrape time (task
//! hub counts and queues, hot instances) and writes the OpenMetrics text.
//!
//! Label values are bounded: function names come from deployed
//! components, routes are templates (`/instances/:id`), never ids.
//!
//! # Metric names
//! | name | type | labels |
//! |---|---|---|
//! | `cairn_build_info` | gauge (1) | `version`, `wasmtime` |
//! | `cairn_instances` | gauge | `status` |
//! | `cairn_episodes_total` | counter | |
//! | `cairn_episode_duration_seconds` | histogram | `name` (orchestrator) |
//! | `cairn_orchestration_duration_seconds` | histogram: start to completion | `name`, `status` |
//! | `cairn_activity_duration_seconds` | histogram: one attempt | `name` |
//! | `cairn_function_starts_total` | counter | `kind`, `name` |
//! | `cairn_function_completions_total` | counter | `kind`, `name` |
//! | `cairn_function_failures_total` | counter | `kind`, `name` |
//! | `cairn_function_retries_total` | counter: activity attempts, and child executions the parent's policy runs again | `kind`, `name` |
//! | `cairn_entity_operations_total` | counter: entity operations run, by entity name and outcome (`completed`, `failed`) | `name`, `outcome` |
//! | `cairn_queue_ready` | gauge: messages / work items ready now | `queue` |
//! | `cairn_queue_delayed` | gauge: timers and retries not yet due | `queue` |
//! | `cairn_queue_in_progress` | gauge: work items leased to a worker | `queue` |
//! | `cairn_queue_oldest_ready_age_seconds` | gauge | `queue` |
//! | `cairn_hot_cache_hits_total`, `cairn_hot_cache_misses_total` | counter | |
//! | `cairn_hot_instances` | gauge | |
//! | `cairn_hot_evictions_total` | counter | |
//! | `cairn_instance_leases_held` | gauge: instance leases this host holds | |
//! | `cairn_checkpoint_duration_seconds` | histogram | |
//! | `cairn_http_requests_total` | counter | `method`, `route`, `status` |
//! | `cairn_http_request_duration_seconds` | histogram | `method`, `route` |

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{QueueStats, RuntimeStatus};

/// Labels of a function's counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// `orchestrator` or `activity`.
    pub kind: &'static str,
    pub name: String,
}

/// Labels of the entity operation counter (the operation's name is left
/// out: clients choose it, so it would make the label set unbounded).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntityLabels {
    pub name: String,
    pub outcome: &'static str,
}

/// Labels of a per-name histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub name: String,
}

/// Labels of the start-to-completion histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub name: String,
    pub status: &'static str,
}

/// Labels of an HTTP request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: &'static str,
    pub status: u16,
}

/// Labels of an HTTP duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    wasmtime: &'static str,
}

/// The wasmtime version this build links (kept in step with Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

fn seconds_histogram() -> Histogram {
    // 0.5 ms .. ~4.6 h in 24 buckets (x2 each).
    Histogram::new(exponential_buckets(0.0005, 2.0, 25))
}

/// Metrics updated while the engine and the API work. Cheap to update
/// from any thread (atomics behind `Arc`s).
pub struct Telemetry {
    pub episode_seconds: Family<NameLabels, Histogram>,
    pub orchestration_seconds: Family<OutcomeLabels, Histogram>,
    pub activity_seconds: Family<NameLabels, Histogram>,
    pub checkpoint_seconds: Histogram,
    pub starts: Family<FunctionLabels, Counter>,
    pub completions: Family<FunctionLabels, Counter>,
    pub failures: Family<FunctionLabels, Counter>,
    pub retries: Family<FunctionLabels, Counter>,
    pub entity_operations: Family<EntityLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram>,
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub counts: Vec<(RuntimeStatus, u64)>,
    pub queues: QueueStats,
    pub hot_instances: u64,
    pub episodes: u64,
    pub hot_hits: u64,
    pub hot_misses: u64,
    pub evictions: u64,
    /// Unexpired instance leases held by this host's engine.
    pub instance_leases: u64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    #[must_use]
    pub fn new() -> Self {
        Self {
            episode_seconds: Family::new_with_constructor(seconds_histogram),
            orchestration_seconds: Family::new_with_constructor(seconds_histogram),
            activity_seconds: Family::new_with_constructor(seconds_histogram),
            checkpoint_seconds: seconds_histogram(),
            http_seconds: Family::new_with_constructor(seconds_histogram),
            starts: Family::default(),
            completions: Family::default(),
            failures: Family::default(),
            retries: Family::default(),
            entity_operations: Family::default(),
            http_requests: Family::default(),
        }
    }

    /// Counts one entity operation by its outcome.
    pub fn count_entity_operation(family: &Family<EntityLabels, Counter>, name: &str, outcome: &'static str) {
        family
            .get_or_create(&EntityLabels {
                name: name.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts one start, completion, failure or retry of a function.
    pub fn count(family: &Family<FunctionLabels, Counter>, kind: &'static str, name: &str) {
        family
            .get_or_create(&FunctionLabels {
                kind,
                name: name.to_owned(),
            })
            .inc();
    }

    /// Writes every metric as OpenMetrics text.
    ///
    /// # Errors
    /// Only a formatting error of the encoder (not expected).
    pub fn encode(&self, s: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut r = Registry::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                wasmtime: WASMTIME_VERSION,
            })
            .set(1);
        r.register("cairn_build_info", "Build of this cairn (always 1).", build);
        let instances = Family::<StatusLabels, Gauge>::default();
        for st in RuntimeStatus::ALL {
            let n = s.counts.iter().find(|(c, _)| *c == st).map_or(0, |(_, n)| *n);
            instances
                .get_or_create(&StatusLabels { status: st.as_str() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        r.register("cairn_instances", "Instances by runtime status.", instances);
        r.register("cairn_episodes", "Orchestration episodes run.", counter_of(s.episodes));
        r.register(
            "cairn_episode_duration_seconds",
            "Wall time of one orchestration episode (guest run and checkpoint).",
            self.episode_seconds.clone(),
        );
        r.register(
            "cairn_orchestration_duration_seconds",
            "Time from an orchestration's creation to its completion, failure or termination.",
            self.orchestration_seconds.clone(),
        );
        r.register(
            "cairn_activity_duration_seconds",
            "Wall time of one activity attempt.",
            self.activity_seconds.clone(),
        );
        r.register(
            "cairn_checkpoint_duration_seconds",
            "Time to commit an episode's checkpoint.",
            self.checkpoint_seconds.clone(),
        );
        r.register(
            "cairn_function_starts",
            "Orchestrations started and activity attempts begun, per function.",
            self.starts.clone(),
        );
        r.register(
            "cairn_function_completions",
            "Orchestrations and activities that completed, per function.",
            self.completions.clone(),
        );
        r.register(
            "cairn_function_failures",
            "Orchestrations and activities that failed for good, per function.",
            self.failures.clone(),
        );
        r.register(
            "cairn_function_retries",
            "Failed activity attempts that the retry policy runs again, per function.",
            self.retries.clone(),
        );
        r.register(
            "cairn_entity_operations",
            "Entity operations run, per entity name and outcome.",
            self.entity_operations.clone(),
        );
        let q = &s.queues;
        let gauge_of = |pairs: [(&'static str, u64); 2]| {
            let f = Family::<QueueLabels, Gauge>::default();
            for (queue, v) in pairs {
                f.get_or_create(&QueueLabels { queue })
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
            f
        };
        r.register(
            "cairn_queue_ready",
            "Messages and work items ready to be processed now.",
            gauge_of([("inbox", q.inbox_ready), ("work_items", q.work_ready)]),
        );
        r.register(
            "cairn_queue_delayed",
            "Messages and work items not yet due (durable timers, retry delays).",
            gauge_of([("inbox", q.inbox_delayed), ("work_items", q.work_delayed)]),
        );
        let leased = Family::<QueueLabels, Gauge>::default();
        leased
            .get_or_create(&QueueLabels { queue: "work_items" })
            .set(i64::try_from(q.work_leased).unwrap_or(i64::MAX));
        r.register("cairn_queue_in_progress", "Work items leased to a worker.", leased);
        let age = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
        age.get_or_create(&QueueLabels { queue: "inbox" })
            .set(q.inbox_oldest_ready_ms as f64 / 1000.0);
        age.get_or_create(&QueueLabels { queue: "work_items" })
            .set(q.work_oldest_ready_ms as f64 / 1000.0);
        r.register(
            "cairn_queue_oldest_ready_age_seconds",
            "Age of the oldest message or work item that is ready (0 when none).",
            age,
        );
        r.register(
            "cairn_hot_cache_hits",
            "Episodes that resumed a hot instance (no replay).",
            counter_of(s.hot_hits),
        );
        r.register(
            "cairn_hot_cache_misses",
            "Episodes that rebuilt the instance by replaying its history.",
            counter_of(s.hot_misses),
        );
        let hot = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        hot.set(i64::try_from(s.hot_instances).unwrap_or(i64::MAX));
        r.register("cairn_hot_instances", "Instances kept hot in memory.", hot);
        r.register(
            "cairn_hot_evictions",
            "Hot instances evicted from memory.",
            counter_of(s.evictions),
        );
        let leases = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        leases.set(i64::try_from(s.instance_leases).unwrap_or(i64::MAX));
        r.register(
            "cairn_instance_leases_held",
            "Instance leases this host holds (instances it runs or keeps hot; another host takes one over only after it expires).",
            leases,
        );
        r.register(
            "cairn_http_requests",
            "HTTP requests answered, by route template and status.",
            self.http_requests.clone(),
        );
        r.register(
            "cairn_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            self.http_seconds.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r)?;
        Ok(out)
    }
}

fn counter_of(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// Loads a counter of the engine's atomics.
#[must_use]
pub fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The route template of a request path, for metric labels (never an id
/// or a name: label values must stay few).
#[must_use]
pub fn route_template(path: &str) -> &'static str {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is = |i: usize, lit: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
    let n = segs.len();
    if n == 0 {
        return "/";
    }
    if n >= 3 && is(0, "runtime") && is(1, "webhooks") && is(2, "durabletask") {
        let rest = &segs[3..];
        let m = rest.len();
        let at = |i: usize, lit: &str| rest.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
        return match m {
            _ if at(0, "orchestrators") => "/runtime/webhooks/durabletask/orchestrators/:name",
            1 if at(0, "instances") => "/runtime/webhooks/durabletask/instances",
            _ if at(0, "instances") && m >= 4 && at(m - 2, "raiseEvent") => {
                "/runtime/webhooks/durabletask/instances/:id/raiseEvent/:event"
            }
            _ if at(0, "instances") && m >= 3 => match rest[m - 1].to_ascii_lowercase().as_str() {
                "terminate" => "/runtime/webhooks/durabletask/instances/:id/terminate",
                "suspend" => "/runtime/webhooks/durabletask/instances/:id/suspend",
                "resume" => "/runtime/webhooks/durabletask/instances/:id/resume",
                "rewind" => "/runtime/webhooks/durabletask/instances/:id/rewind",
                "restart" => "/runtime/webhooks/durabletask/instances/:id/restart",
                _ => "/runtime/webhooks/durabletask/instances/:id",
            },
            _ if at(0, "instances") => "/runtime/webhooks/durabletask/instances/:id",
            _ => "/runtime/webhooks/durabletask/other",
        };
    }
    if is(0, "api") && is(1, "console") {
        return match n {
            3 if is(2, "instances") => "/api/console/instances",
            4 if is(2, "instances") => "/api/console/instances/:id",
            5 if is(2, "instances") && is(4, "replay") => "/api/console/instances/:id/replay",
            3 if is(2, "components") => "/api/console/components",
            3 if is(2, "locks") => "/api/console/locks",
            3 if is(2, "session") => "/api/console/session",
            _ => "/api/console/other",
        };
    }
    if is(0, "api") {
        return match n {
            2 if is(1, "components") => "/api/components",
            3 if is(1, "components") => "/api/components/:hash",
            2 if is(1, "taskhub") => "/api/taskhub",
            2 if is(1, "openapi.yaml") => "/api/openapi.yaml",
            _ => "/api/other",
        };
    }
    match n {
        1 if is(0, "metrics") => "/metrics",
        1 if is(0, "healthz") => "/healthz",
        _ if is(0, "console") => "/console/:asset",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_hide_ids() {
        for (path, want) in [
            ("/", "/"),
            ("/metrics", "/metrics"),
            (
                "/runtime/webhooks/durabletask/instances/abc",
                "/runtime/webhooks/durabletask/instances/:id",
            ),
            (
                "/runtime/webhooks/durabletask/instances/abc/raiseEvent/Go",
                "/runtime/webhooks/durabletask/instances/:id/raiseEvent/:event",
            ),
            (
                "/runtime/webhooks/durabletask/instances/abc/Terminate",
                "/runtime/webhooks/durabletask/instances/:id/terminate",
            ),
            (
                "/runtime/webhooks/durabletask/orchestrators/Hello/x",
                "/runtime/webhooks/durabletask/orchestrators/:name",
            ),
            ("/api/console/instances/x/replay", "/api/console/instances/:id/replay"),
            ("/api/components/abc", "/api/components/:hash"),
            ("/console/app.js", "/console/:asset"),
            ("/nope/x", "other"),
        ] {
            assert_eq!(route_template(path), want, "{path}");
        }
    }

    #[test]
    fn exposition_has_every_family() {
        let t = Telemetry::new();
        Telemetry::count(&t.starts, "activity", "SayHello");
        t.activity_seconds
            .get_or_create(&NameLabels {
                name: "SayHello".into(),
            })
            .observe(0.01);
        let text = t.encode(&Snapshot::default()).unwrap_or_default();
        for name in [
            "cairn_build_info{",
            "cairn_function_starts_total{kind=\"activity\",name=\"SayHello\"} 1",
            "cairn_activity_duration_seconds_bucket{",
            "cairn_queue_ready{queue=\"inbox\"} 0",
            "cairn_hot_cache_hits_total 0",
            "cairn_instance_leases_held 0",
            "# EOF",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}

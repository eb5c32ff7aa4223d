//! `/metrics` through `prometheus-client`: the exposition parses as
//! Prometheus text, and its values move as instances run.

use prometheus_parse::{Scrape, Value};

use crate::{Server, df};

/// The scrape of `/metrics`.
async fn scrape(s: &Server) -> Scrape {
    let r = s.get("/metrics").await;
    r.expect(200);
    let text = r.text();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses")
}

/// The value of a counter, gauge or untyped sample (0 when absent); the
/// count of a histogram.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_work() {
    let s = Server::new(&["hello-cities", "retry", "features"]).await;
    let before = scrape(&s).await;
    assert_eq!(
        value(&before, "cairn_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert_eq!(
        value(&before, "cairn_function_starts_total", &[("name", "SayHello")]),
        0.0
    );

    s.post(&df("/orchestrators/HelloCities/mx1?timeout=20"), "")
        .await
        .expect(200);
    // Fails twice, then succeeds: two retries of FlakyActivity.
    s.post(&df("/orchestrators/RetryFlaky/mx2?timeout=20"), r#"{"fail_times":2}"#)
        .await
        .expect(200);
    // A child that always fails, run three times by its parent's policy:
    // two retries and one failure of FailingChild.
    s.post(&df("/orchestrators/RetriesChild/mx3?timeout=20"), "null")
        .await
        .expect(200);
    s.get(&df("/instances/mx1")).await.expect(200);
    let after = scrape(&s).await;

    let say = [("kind", "activity"), ("name", "SayHello")];
    assert_eq!(value(&after, "cairn_function_starts_total", &say), 3.0);
    assert_eq!(value(&after, "cairn_function_completions_total", &say), 3.0);
    let flaky = [("kind", "activity"), ("name", "FlakyActivity")];
    assert_eq!(value(&after, "cairn_function_starts_total", &flaky), 3.0);
    assert_eq!(value(&after, "cairn_function_retries_total", &flaky), 2.0);
    assert_eq!(value(&after, "cairn_function_completions_total", &flaky), 1.0);
    let hello = [("kind", "orchestrator"), ("name", "HelloCities")];
    assert_eq!(value(&after, "cairn_function_starts_total", &hello), 1.0);
    assert_eq!(value(&after, "cairn_function_completions_total", &hello), 1.0);
    let child = [("kind", "orchestrator"), ("name", "FailingChild")];
    assert_eq!(value(&after, "cairn_function_retries_total", &child), 2.0);
    assert_eq!(value(&after, "cairn_function_failures_total", &child), 1.0);
    assert_eq!(value(&after, "cairn_instances", &[("status", "Completed")]), 3.0);

    // Histograms: one observation per activity attempt and per finished
    // orchestration; episodes of HelloCities (one per activity + the start).
    assert_eq!(
        value(&after, "cairn_activity_duration_seconds", &[("name", "SayHello")]),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "cairn_orchestration_duration_seconds",
            &[("name", "HelloCities"), ("status", "Completed")]
        ),
        1.0
    );
    assert!(value(&after, "cairn_episode_duration_seconds", &[("name", "HelloCities")]) >= 4.0);
    assert!(value(&after, "cairn_episodes_total", &[]) > value(&before, "cairn_episodes_total", &[]));
    assert!(value(&after, "cairn_checkpoint_duration_seconds", &[]) >= 4.0);
    let hits = value(&after, "cairn_hot_cache_hits_total", &[]);
    let misses = value(&after, "cairn_hot_cache_misses_total", &[]);
    assert!(hits + misses >= 4.0, "hits {hits} misses {misses}");

    // Queues are drained; their gauges exist.
    for q in ["inbox", "work_items"] {
        assert_eq!(value(&after, "cairn_queue_ready", &[("queue", q)]), 0.0);
        assert_eq!(value(&after, "cairn_queue_delayed", &[("queue", q)]), 0.0);
        assert_eq!(
            value(&after, "cairn_queue_oldest_ready_age_seconds", &[("queue", q)]),
            0.0
        );
    }

    // HTTP requests by route template and status (ids never become labels).
    let started = [
        ("method", "POST"),
        ("route", "/runtime/webhooks/durabletask/orchestrators/:name"),
        ("status", "200"),
    ];
    assert_eq!(value(&after, "cairn_http_requests_total", &started), 3.0);
    let status = [
        ("route", "/runtime/webhooks/durabletask/instances/:id"),
        ("status", "200"),
    ];
    assert_eq!(value(&after, "cairn_http_requests_total", &status), 1.0);
    assert!(value(&after, "cairn_http_requests_total", &[("route", "/metrics")]) >= 1.0);
    assert!(
        !s.get("/metrics").await.text().contains("mx1"),
        "no instance id in labels"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_count_timers_not_yet_due_apart() {
    let s = Server::new(&["human-interaction"]).await;
    // Waits for an approval for 10 minutes: one durable timer not yet due.
    s.start("ApprovalWorkflow", r#"{"timeout_ms":600000}"#, "mq1").await;
    let mut delayed = 0.0;
    for _ in 0..200 {
        delayed = value(&scrape(&s).await, "cairn_queue_delayed", &[("queue", "inbox")]);
        if delayed >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(delayed, 1.0, "the timer is delayed, not ready");
    let now = scrape(&s).await;
    assert_eq!(value(&now, "cairn_queue_ready", &[("queue", "inbox")]), 0.0);
    s.stop().await;
}

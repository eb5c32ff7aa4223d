//! Cairn's own routes: components, health, metrics, OpenAPI.

use serde_json::Value;

use crate::common::guest;
use crate::{Server, df};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_health_metrics_openapi() {
    let s = Server::new(&[]).await;
    // Deploy over HTTP.
    let wasm = guest("hello-cities");
    let r = s
        .req(
            "POST",
            "/api/components",
            &[("Content-Type", "application/wasm")],
            &wasm,
        )
        .await;
    r.expect(200);
    let v = r.json();
    let hash = v["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    assert_eq!(v["size"], wasm.len());
    let mut names: Vec<(String, String)> = v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().into(), f["kind"].as_str().unwrap().into()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("HelloCities".to_owned(), "orchestrator".to_owned()),
            ("SayHello".to_owned(), "activity".to_owned())
        ]
    );
    let wasm_type = [("Content-Type", "application/wasm")];
    let r = s.req("POST", "/api/components", &wasm_type, b"not a component").await;
    r.expect(400);
    assert!(r.text().contains("not a WebAssembly binary"), "{}", r.text());
    s.req("POST", "/api/components", &wasm_type, b"").await.expect(400);
    s.req("POST", "/api/components", &[], &wasm).await.expect(415);

    // Grants travel as query parameters and need an API key.
    let http_client = guest("http-client");
    s.req(
        "POST",
        "/api/components?allowHttp=api.example.com",
        &wasm_type,
        &http_client,
    )
    .await
    .expect(403);
    let keyed = Server::with(
        &[],
        cairn::api::ApiConfig {
            api_key: Some("own-key".into()),
            ..Default::default()
        },
    )
    .await;
    let upload = |query: &'static str, body: Vec<u8>| {
        let keyed = &keyed;
        async move {
            keyed
                .req(
                    "POST",
                    &format!("/api/components{query}"),
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("x-functions-key", "own-key"),
                    ],
                    &body,
                )
                .await
        }
    };
    // wasi:http needs a grant.
    let r = upload("", http_client.clone()).await;
    r.expect(400);
    assert!(r.text().contains("--allow-http"), "{}", r.text());
    upload("?allowHttp=https%3A%2F%2Fx.com", http_client.clone())
        .await
        .expect(400);
    upload("?allowHttp=api.example.com", http_client.clone())
        .await
        .expect(200);
    upload("?allowEnv=PATH", wasm.clone()).await.expect(400); // orchestrator components get no grants
    keyed.stop().await;

    // List.
    let r = s.get("/api/components").await;
    r.expect(200);
    let functions = r.json()["functions"].as_array().unwrap().clone();
    let hello = functions.iter().find(|f| f["name"] == "HelloCities").unwrap();
    assert_eq!(hello["kind"], "orchestrator");
    assert_eq!(hello["latest"], hash.as_str());
    assert_eq!(hello["versions"][0]["hash"], hash.as_str());

    // Use it, then try to remove the version.
    let r = s.post(&df("/orchestrators/HelloCities/m1?timeout=20"), "").await;
    r.expect(200);
    s.start("HelloCities", "null", "m2").await;
    s.t.wait("m2").await;
    s.delete("/api/components/0000").await.expect(404);
    let r = s.delete(&format!("/api/components/{hash}")).await;
    r.expect(200);
    assert_eq!(r.json()["removed"], hash.as_str());
    s.post(&df("/orchestrators/HelloCities"), "").await.expect(400);

    // Health, metrics, OpenAPI.
    let r = s.get("/healthz").await;
    r.expect(200);
    assert_eq!(r.json()["status"], "ok");
    let r = s.get("/metrics").await;
    r.expect(200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(
        r.text().contains("cairn_instances{status=\"Completed\"} 2"),
        "{}",
        r.text()
    );
    let r = s.get("/api/openapi.yaml").await;
    r.expect(200);
    assert!(r.text().starts_with("openapi: 3"));
    for route in [
        "/runtime/webhooks/durabletask/orchestrators/{functionName}",
        "/runtime/webhooks/durabletask/instances/{instanceId}/raiseEvent/{eventName}",
        "/api/components",
        "/metrics",
        "/healthz",
    ] {
        assert!(r.text().contains(&format!("{route}:")), "{route} not documented");
    }

    // Unknown routes and methods.
    s.get("/nope").await.expect(404);
    s.get(&df("/nope")).await.expect(404);
    s.req("PUT", "/api/components", &[], b"").await.expect(405);
    s.req("POST", "/metrics", &[], b"").await.expect(405);
    let v: Value = s.get(&df("/instances")).await.json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    s.stop().await;
}

//! Durable HTTP: the request and response types of
//! [`OrchestrationContext::call_http`](crate::OrchestrationContext::call_http),
//! in Durable Functions' JSON shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name of the host's built-in HTTP activity.
pub(crate) const HTTP_ACTIVITY: &str = "BuiltIn::HttpActivity";

/// An HTTP request the host sends on the orchestrator's behalf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurableHttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `http://` or `https://` URI.
    pub uri: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl DurableHttpRequest {
    /// A request with `method` (e.g. `"POST"`) to `uri`.
    pub fn new(method: impl Into<String>, uri: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            uri: uri.into(),
            ..Self::default()
        }
    }

    /// `GET uri`.
    pub fn get(uri: impl Into<String>) -> Self {
        Self::new("GET", uri)
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the request body.
    #[must_use]
    pub fn with_content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }
}

/// The recorded response: any status, including 4xx and 5xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurableHttpResponse {
    /// HTTP status, e.g. 200 or 404.
    pub status_code: u16,
    /// Response headers (lowercase names).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body as text.
    #[serde(default)]
    pub content: String,
}

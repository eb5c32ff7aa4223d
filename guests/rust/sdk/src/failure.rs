//! The error type shared by orchestrators, activities and the host.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::__bindings::cairn::durable::types as wit;

/// A typed failure: what a function returns instead of a result, and what
/// awaiting a failed task yields.
///
/// Callers branch on [`error_type`](Failure::error_type); the
/// [`message`](Failure::message) is for people; [`details`](Failure::details)
/// carries optional structured data. Error types produced by the host include
/// `ActivityFailed`, `SubOrchestrationFailed`, `NonDeterminism`, `Timeout`,
/// `LimitExceeded`, `Trap`, `Panic`, `NotFound`, `InvalidInput`,
/// `Terminated`, `LockError` and `UnawaitedTask`.
///
/// It also reads the failure documents of the host's API and history
/// (`{"ErrorType", "Message", "Details"}`, e.g. a status's
/// `failureDetails`), whose fields are the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Machine-readable kind of the failure, e.g. `"ValidationError"`.
    #[serde(alias = "errorType", alias = "error-type", alias = "ErrorType")]
    pub error_type: String,
    /// Human-readable description.
    #[serde(alias = "Message")]
    pub message: String,
    /// Optional structured data about the failure.
    #[serde(default, alias = "Details", skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl Failure {
    /// A failure of type `error_type` with a message and no details.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            error_type: error_type.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Attaches structured details to this failure.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An `InvalidInput` failure: the input could not be understood.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Failure::new("InvalidInput", message)
    }

    /// A `NotFound` failure.
    pub fn not_found(message: impl Into<String>) -> Self {
        Failure::new("NotFound", message)
    }

    /// True when this failure's [`error_type`](Failure::error_type) is `error_type`.
    pub fn is(&self, error_type: &str) -> bool {
        self.error_type == error_type
    }

    /// The failure wrapped in [`details`](Failure::details), if the details
    /// hold one (as they do for the host's `ActivityFailed` and
    /// `SubOrchestrationFailed`).
    pub fn cause(&self) -> Option<Failure> {
        self.details
            .as_ref()
            .and_then(|d| Failure::deserialize(d).ok())
    }

    /// The innermost failure: follows [`cause`](Failure::cause) while the
    /// failure is a host wrapper (`ActivityFailed` or `SubOrchestrationFailed`).
    pub fn root_cause(&self) -> Failure {
        let mut current = self.clone();
        while current.is("ActivityFailed") || current.is("SubOrchestrationFailed") {
            match current.cause() {
                Some(inner) => current = inner,
                None => break,
            }
        }
        current
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for Failure {}

/// A JSON error becomes an `InvalidInput` failure: in a function it almost
/// always means that some input did not have the expected shape.
impl From<serde_json::Error> for Failure {
    fn from(err: serde_json::Error) -> Self {
        Failure::invalid_input(err.to_string())
    }
}

#[doc(hidden)]
impl From<wit::Failure> for Failure {
    fn from(f: wit::Failure) -> Self {
        Failure {
            error_type: f.error_type,
            message: f.message,
            // Details that are not JSON are kept as a JSON string.
            details: f
                .details
                .map(|raw| serde_json::from_str(&raw).unwrap_or(Value::String(raw))),
        }
    }
}

#[doc(hidden)]
impl From<Failure> for wit::Failure {
    fn from(f: Failure) -> Self {
        wit::Failure {
            error_type: f.error_type,
            message: f.message,
            details: f.details.map(|d| d.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_to_and_from_wit() {
        let failure = Failure::new("MyError", "custom failure").with_details(json!({"a": 1}));
        let wire: wit::Failure = failure.clone().into();
        assert_eq!(wire.details.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(Failure::from(wire), failure);
    }

    #[test]
    fn keeps_details_that_are_not_json() {
        let wire = wit::Failure {
            error_type: "X".into(),
            message: "m".into(),
            details: Some("not json".into()),
        };
        assert_eq!(Failure::from(wire).details, Some(json!("not json")));
    }

    #[test]
    fn unwraps_host_wrappers() {
        let inner = json!({"error_type": "ValidationError", "message": "bad input"});
        let outer = Failure::new("ActivityFailed", "activity failed").with_details(inner);
        assert_eq!(
            outer.cause(),
            Some(Failure::new("ValidationError", "bad input"))
        );
        assert!(outer.root_cause().is("ValidationError"));
        assert_eq!(Failure::new("A", "b").root_cause(), Failure::new("A", "b"));
    }

    #[test]
    fn reads_the_hosts_failure_documents() {
        let doc =
            json!({"ErrorType": "OutOfStock", "Message": "gone", "Details": {"sku": "sku-42"}});
        assert_eq!(
            Failure::deserialize(&doc).unwrap(),
            Failure::new("OutOfStock", "gone").with_details(json!({"sku": "sku-42"}))
        );
    }

    #[test]
    fn json_errors_are_invalid_input() {
        let err = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let failure = Failure::from(err);
        assert!(failure.is("InvalidInput"));
        assert_eq!(
            failure.to_string(),
            format!("InvalidInput: {}", failure.message)
        );
    }
}

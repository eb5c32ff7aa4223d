//! Decoding the JSON values that come from outside clients.
//!
//! Some Durable Functions clients JSON-encode inputs and event data twice:
//! the Python client (`azure-functions-durable`) sends
//! `start_new("F", None, {"timeout_ms": 60000})` as the JSON *string*
//! `"{\"timeout_ms\": 60000}"`, and `raise_event(id, "Approval", True)` as
//! `"true"`. An orchestration's input and the payload of an external event
//! are therefore decoded with one rule, the same in every Cairn SDK:
//!
//! > When the value is a JSON string whose text is itself a JSON object,
//! > array, number, `true`, `false` or `null`, and the declared type accepts
//! > that inner value, the function gets the inner value. Otherwise it gets
//! > the value as sent.
//!
//! So a `String` parameter always gets the string as sent (`"Tokyo"` stays
//! `"Tokyo"`, and so does `"true"`), a `bool` gets `true` from `"true"`, a
//! struct gets its fields from `"{\"timeout_ms\":60000}"`, and an untyped
//! `serde_json::Value` gets the inner value (as JavaScript and Python
//! functions do). A string holding a JSON *string* (`"\"Tokyo\""`) is never
//! unwrapped: strings are only ever taken as sent.
//!
//! Activity inputs and task results come from SDKs, which encode once; they
//! are decoded as sent.

use serde::de::DeserializeOwned;

/// Decodes `text` (an orchestration input or an event payload) into `T`,
/// unwrapping a double-encoded non-string value when `T` accepts it.
///
/// # Errors
/// The error of decoding `text` as sent, when neither form fits `T`.
pub(crate) fn from_client_json<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    if let Some(inner) = double_encoded(text)
        && let Ok(value) = serde_json::from_str::<T>(&inner)
    {
        return Ok(value);
    }
    serde_json::from_str(text)
}

/// The text inside `text` when `text` is a JSON string holding a JSON
/// document that is not itself a string.
fn double_encoded(text: &str) -> Option<String> {
    if !text.trim_start().starts_with('"') {
        return None;
    }
    let inner: String = serde_json::from_str(text).ok()?;
    let parsed: serde_json::Value = serde_json::from_str(&inner).ok()?;
    (!parsed.is_string()).then_some(inner)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::from_client_json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Approval {
        timeout_ms: u64,
    }

    #[test]
    fn unwraps_a_double_encoded_value_the_declared_type_accepts() {
        let sent = r#""{\"timeout_ms\": 60000}""#;
        assert_eq!(
            from_client_json::<Approval>(sent).unwrap(),
            Approval { timeout_ms: 60000 }
        );
        assert!(from_client_json::<bool>(r#""true""#).unwrap());
        assert!(!from_client_json::<bool>(r#""false""#).unwrap());
        assert_eq!(from_client_json::<u32>(r#""42""#).unwrap(), 42);
        assert_eq!(from_client_json::<Option<u32>>(r#""null""#).unwrap(), None);
        assert_eq!(from_client_json::<Vec<u8>>(r#""[1, 2]""#).unwrap(), [1, 2]);
        assert_eq!(
            from_client_json::<Value>(r#""{\"a\":1}""#).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(from_client_json::<Value>(r#""true""#).unwrap(), json!(true));
    }

    #[test]
    fn strings_stay_as_sent() {
        assert_eq!(from_client_json::<String>(r#""true""#).unwrap(), "true");
        assert_eq!(from_client_json::<String>(r#""42""#).unwrap(), "42");
        assert_eq!(from_client_json::<String>(r#""Tokyo""#).unwrap(), "Tokyo");
        assert_eq!(
            from_client_json::<Value>(r#""Tokyo""#).unwrap(),
            json!("Tokyo")
        );
        assert_eq!(
            from_client_json::<Value>(r#""\"Tokyo\"""#).unwrap(),
            json!("\"Tokyo\"")
        );
        assert_eq!(
            from_client_json::<String>(r#""{\"a\":1}""#).unwrap(),
            r#"{"a":1}"#
        );
    }

    #[test]
    fn values_sent_once_decode_as_before() {
        assert_eq!(
            from_client_json::<Approval>(r#"{"timeout_ms": 5}"#).unwrap(),
            Approval { timeout_ms: 5 }
        );
        assert!(from_client_json::<bool>("true").unwrap());
        assert_eq!(from_client_json::<()>("null").unwrap(), ());
        let err = from_client_json::<Approval>(r#""{\"other\": 1}""#).unwrap_err();
        assert!(
            err.to_string().contains("expected struct Approval"),
            "{err}"
        );
    }
}

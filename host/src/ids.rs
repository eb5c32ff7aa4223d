//! Validated identifiers. Every id that enters the host from a user, a CLI
//! argument, an HTTP request or a guest passes through these constructors.

use std::fmt;

/// Longest instance id accepted (characters, as Durable Functions).
pub const MAX_INSTANCE_ID_CHARS: usize = 100;
/// Longest function or event name accepted (bytes). Bounds the size of
/// history rows and index keys a caller can create.
pub const MAX_NAME_BYTES: usize = 256;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("instance id must not be empty")]
    Empty,
    #[error("instance id is {0} characters long; the limit is 100")]
    TooLong(usize),
    #[error("instance id must not start with '@'")]
    LeadingAt,
    #[error("instance id must not contain {0:?} (the characters / \\ # ? and control characters are not allowed)")]
    ForbiddenChar(char),
    #[error("instance id must not be {0:?}: a URL path segment of only dots is removed by URL normalisation")]
    DotSegment(&'static str),
    #[error("entity id {got:?}: {why}")]
    BadEntityId { got: String, why: &'static str },
    #[error("{what} must be 1..={max} bytes of printable text without control characters, got {got:?}")]
    BadName {
        what: &'static str,
        max: usize,
        got: String,
    },
}

/// An orchestration instance id: 1–100 characters, not starting with `@`,
/// none of `/ \ # ?`, no control characters (Durable Functions' rules),
/// and not `.` or `..`: URL normalisation (by clients, proxies and the URL
/// parsers of browsers, also when percent-encoded as `%2E`) removes such a
/// path segment, so its status URLs would address another resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// Validates `raw` as an instance id.
    ///
    /// # Errors
    /// [`IdError`] naming the rule that `raw` breaks.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        let chars = raw.chars().count();
        if chars > MAX_INSTANCE_ID_CHARS {
            return Err(IdError::TooLong(chars));
        }
        if raw.starts_with('@') {
            return Err(IdError::LeadingAt);
        }
        match raw {
            "." => return Err(IdError::DotSegment(".")),
            ".." => return Err(IdError::DotSegment("..")),
            _ => {}
        }
        if let Some(c) = raw
            .chars()
            .find(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
        {
            return Err(IdError::ForbiddenChar(c));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh random id: 32 lowercase hex characters (a GUID without dashes).
    #[must_use]
    pub fn generate() -> Self {
        Self(random_hex())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest entity key accepted (bytes).
pub const MAX_ENTITY_KEY_BYTES: usize = 256;

/// An entity id, written `name@key`: `name` is the entity function's name
/// (a function name without `@`), `key` any text up to
/// [`MAX_ENTITY_KEY_BYTES`] bytes without control characters or `/ \ # ?`
/// (it is a URL path segment of the entity routes), possibly empty.
/// Entities live in the task hub as instances with the id `@name@key`
/// (Durable Functions' scheme), which no orchestration id can take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    name: String,
    key: String,
}

impl EntityId {
    /// Validates a name and a key.
    ///
    /// # Errors
    /// [`IdError::BadEntityId`] naming the broken rule.
    pub fn new(name: &str, key: &str) -> Result<Self, IdError> {
        let bad = |why| IdError::BadEntityId {
            got: format!("{}@{}", clip(name), clip(key)),
            why,
        };
        if validate_name("entity name", name).is_err() {
            return Err(bad("the name must be 1..=256 bytes of printable text"));
        }
        if let Some(c) = name.chars().find(|c| matches!(c, '@' | '/' | '\\' | '#' | '?')) {
            return Err(match c {
                '@' => bad("the name must not contain '@'"),
                _ => bad("the name must not contain / \\ # or ?"),
            });
        }
        if key.len() > MAX_ENTITY_KEY_BYTES {
            return Err(bad("the key is longer than 256 bytes"));
        }
        if key
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
        {
            return Err(bad("the key must not contain / \\ # ? or control characters"));
        }
        Ok(Self {
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Parses `name@key` (split at the first `@`).
    ///
    /// # Errors
    /// [`IdError::BadEntityId`] when there is no `@` or a part is invalid.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        match raw.split_once('@') {
            Some((name, key)) => Self::new(name, key),
            None => Err(IdError::BadEntityId {
                got: clip(raw),
                why: "an entity id is written name@key",
            }),
        }
    }

    /// The entity behind a task hub instance id `@name@key`, if it is one.
    #[must_use]
    pub fn from_instance_id(id: &str) -> Option<Self> {
        Self::parse(id.strip_prefix('@')?).ok()
    }

    /// Whether a task hub instance id names an entity.
    #[must_use]
    pub fn is_entity_instance(id: &str) -> bool {
        id.starts_with('@')
    }

    /// The task hub instance id: `@name@key`.
    #[must_use]
    pub fn instance_id(&self) -> String {
        format!("@{}@{}", self.name, self.key)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.key)
    }
}

fn clip(raw: &str) -> String {
    let mut got: String = raw.chars().take(64).collect();
    if got.len() < raw.len() {
        got.push('…');
    }
    got
}

/// Validates a function or event name.
///
/// # Errors
/// [`IdError::BadName`] when empty, longer than [`MAX_NAME_BYTES`] or
/// containing control characters.
pub fn validate_name(what: &'static str, raw: &str) -> Result<(), IdError> {
    if raw.is_empty() || raw.len() > MAX_NAME_BYTES || raw.chars().any(char::is_control) {
        return Err(IdError::BadName {
            what,
            max: MAX_NAME_BYTES,
            got: clip(raw),
        });
    }
    Ok(())
}

/// 32 random lowercase hex characters (a v4 GUID without dashes): instance,
/// execution and worker ids. The one place the host draws randomness for
/// ids; never called on the replay path.
#[must_use]
#[expect(clippy::disallowed_methods, reason = "the one reviewed source of random ids")]
pub fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_rules() {
        let cases: &[(&str, bool)] = &[
            ("abc", true),
            ("a-b_c.d:e", true),
            ("", false),
            ("@x", false),
            ("a/b", false),
            ("a\\b", false),
            ("a#b", false),
            ("a?b", false),
            ("a\u{7f}b", false),
            ("a\u{85}b", false),
            ("a\nb", false),
            (".", false),
            ("..", false),
            ("...", true),
            (".a", true),
            ("a..", true),
        ];
        for (raw, ok) in cases {
            assert_eq!(InstanceId::parse(raw).is_ok(), *ok, "{raw:?}");
        }
        assert!(InstanceId::parse(&"x".repeat(100)).is_ok());
        assert!(InstanceId::parse(&"é".repeat(100)).is_ok());
        assert_eq!(InstanceId::parse(&"x".repeat(101)), Err(IdError::TooLong(101)));
        let g = InstanceId::generate();
        assert_eq!(g.as_str().len(), 32);
        assert!(
            g.as_str()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn entity_ids() {
        let e = EntityId::parse("Counter@a@b").unwrap();
        assert_eq!((e.name(), e.key()), ("Counter", "a@b"));
        assert_eq!(e.instance_id(), "@Counter@a@b");
        assert_eq!(EntityId::from_instance_id("@Counter@a@b"), Some(e.clone()));
        assert_eq!(e.to_string(), "Counter@a@b");
        assert_eq!(EntityId::parse("Counter@").unwrap().key(), "");
        for bad in ["Counter", "@x", "a/b@k", "C@k/1", "C@k?", "C@\n", ""] {
            assert!(EntityId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(EntityId::new("C", &"k".repeat(257)).is_err());
        assert_eq!(EntityId::from_instance_id("plain"), None);
    }

    #[test]
    fn names() {
        assert!(validate_name("function name", "SayHello").is_ok());
        assert!(validate_name("function name", "").is_err());
        assert!(validate_name("function name", "a\tb").is_err());
        assert!(validate_name("function name", &"n".repeat(257)).is_err());
    }
}

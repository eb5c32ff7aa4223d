//! Errors of the management interface, the same for every implementation.

/// What went wrong, by kind: the command line maps kinds to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such instance, entity, component or route.
    #[error("{0}")]
    NotFound(String),
    /// The request was wrong (bad argument, bad JSON, bad component...).
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the instance's state (e.g. rewinding an
    /// instance that did not fail, purging a running one).
    #[error("{0}")]
    Conflict(String),
    /// The API key was missing or wrong, or the request was refused.
    #[error("{0}")]
    Unauthorized(String),
    /// The server is busy (try again later) or the task hub unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// The server or task hub could not be reached.
    #[error("{0}")]
    Connect(String),
    /// Anything else: the message says what.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The message, without the kind.
    #[must_use]
    pub fn message(&self) -> &str {
        match self {
            Self::NotFound(m)
            | Self::BadRequest(m)
            | Self::Conflict(m)
            | Self::Unauthorized(m)
            | Self::Unavailable(m)
            | Self::Connect(m)
            | Self::Other(m) => m,
        }
    }
}

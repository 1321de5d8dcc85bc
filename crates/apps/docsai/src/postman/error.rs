//! The Postman layer's one error type. Every error has a [`ErrorKind`] the server maps to
//! one HTTP status (exhaustively: a new kind nobody maps does not compile), and a message
//! that names where in the file the problem is.

/// What went wrong, for the status of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is over the size limit (413).
    TooLarge,
    /// The bytes are not JSON (400).
    NotJson,
    /// JSON, but not a Postman collection v2.0 / v2.1 (the schema URL) (400 / 422).
    WrongSchema,
    /// A collection whose parts do not have the shapes the format allows (422).
    Invalid,
    /// Folders (or JSON) nested deeper than the limit (422).
    TooDeep,
    /// More folders, requests or responses than the limit (413).
    TooManyItems,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("the collection file is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the collection file is not JSON: {0}")]
    NotJson(String),
    #[error("not a Postman collection v2.0 or v2.1: {0}")]
    WrongSchema(String),
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error("{what} nested deeper than {limit} levels")]
    TooDeep { what: &'static str, limit: usize },
    #[error("more than {limit} {what} in one collection")]
    TooManyItems { what: &'static str, limit: usize },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::NotJson(_) => ErrorKind::NotJson,
            Error::WrongSchema(_) => ErrorKind::WrongSchema,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::TooDeep { .. } => ErrorKind::TooDeep,
            Error::TooManyItems { .. } => ErrorKind::TooManyItems,
        }
    }

    pub(crate) fn invalid(path: &str, problem: impl Into<String>) -> Error {
        Error::Invalid {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            problem: problem.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

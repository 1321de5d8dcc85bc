//! The migration reader's one error type, with a kind the CLI maps to its exit status
//! and message.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database cannot be opened or read.
    Source,
    /// The mapping file does not parse or contradicts itself.
    Mapping,
    /// The mapping names tables or columns the database does not have.
    Schema,
    /// A value does not convert as its column's cast says.
    Cast,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("cannot read the SQLite database: {0}")]
    Source(String),
    #[error("mapping: {0}")]
    Mapping(String),
    #[error("the mapping does not fit the database:\n  {}", .0.join("\n  "))]
    Schema(Vec<String>),
    #[error("{table} row {key}, column {column}: {problem}")]
    Cast {
        table: String,
        key: String,
        column: String,
        problem: String,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Source(_) => ErrorKind::Source,
            Error::Mapping(_) => ErrorKind::Mapping,
            Error::Schema(_) => ErrorKind::Schema,
            Error::Cast { .. } => ErrorKind::Cast,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Source(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

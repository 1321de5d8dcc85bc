//! `bucketbase migrate sqlite`: moving a Django SQLite database into collections.
//!
//! The reading half: the mapping format ([`mapping`]), the database opened read-only and
//! the mapping checked against its schema ([`source`]), Django's storage forms cast to
//! JSON ([`cast`]), and one document per top-level row with its nested children
//! ([`reader`]). The writing half ([`writer`]): transactions with the audit source
//! `migration:<run id>`, progress per table ([`progress`]), and the closing check
//! ([`check`]).

pub mod cast;
pub mod check;
pub mod error;
pub mod mapping;
pub mod progress;
pub mod reader;
mod rows;
pub mod source;
pub mod writer;

pub use check::Check;
pub use error::{Error, ErrorKind, Result};
pub use mapping::Mapping;
pub use reader::{Document, ReadOptions, TableStats};
pub use source::{CheckReport, Source};

/// The mapping for docsai's own Django schema.
pub const DOCSAI_MAPPING: &str = include_str!("../../migrations/docsai.toml");

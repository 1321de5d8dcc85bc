//! `bucketbase migrate sqlite`: moving a Django SQLite database into collections.
//!
//! This module is the reading half: the mapping format ([`mapping`]), the database
//! opened read-only and the mapping checked against its schema ([`source`]), Django's
//! storage forms cast to JSON ([`cast`]), and one document per top-level row with its
//! nested children ([`reader`]). The writing half (transactions with the audit source
//! `migration:<run id>`, progress, the closing check) is a loop over
//! [`Source::read_table`]'s documents.

pub mod cast;
pub mod error;
pub mod mapping;
pub mod reader;
mod rows;
pub mod source;

pub use error::{Error, ErrorKind, Result};
pub use mapping::Mapping;
pub use reader::{Document, ReadOptions, TableStats};
pub use source::{CheckReport, Source};

/// The mapping for docsai's own Django schema.
pub const DOCSAI_MAPPING: &str = include_str!("../../migrations/docsai.toml");

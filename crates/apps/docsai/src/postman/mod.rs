//! Postman collections (v2.0 and v2.1) in and out of docsai's `api_collections`: the
//! format as types ([`model`], [`tree`]), its mapping onto one record with `requests`
//! and `mocks` items ([`record`]), and which values are credentials ([`secrets`]).
//!
//! Pure data, no HTTP and no engine: the import route and `bucketbase import postman`
//! call [`import`] and write what it returns; the export route reads the record and its
//! items and calls [`export`]. Reading then writing then reading again gives the same
//! record (tests/postman.rs checks it on every fixture), which is what makes a
//! re-import of an exported file an "unchanged".

pub mod error;
pub mod model;
pub mod parts;
pub mod record;
pub mod reimport;
pub mod secrets;
pub mod tree;

pub use error::{Error, ErrorKind, Result};
pub use record::Imported;
pub use tree::{Collection, Limits};

use serde_json::Value;

/// Reads a collection file into what docsai stores.
pub fn import(bytes: &[u8], limits: &Limits) -> Result<(Collection, Imported)> {
    let collection = tree::parse(bytes, limits)?;
    let imported = record::to_record(&collection);
    Ok((collection, imported))
}

/// Writes a stored collection back as a v2.1 document.
pub fn export(stored: &Imported, limits: &Limits) -> Result<Value> {
    Ok(record::from_record(stored, limits)?.to_json())
}

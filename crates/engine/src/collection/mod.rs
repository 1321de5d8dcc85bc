//! Collections: what turns the log of documents into a database with integrity.
//!
//! - [`definition`]: the declared shape and rules of a collection;
//! - [`integrity`]: commit-time checks and the indexes behind them;
//! - [`records`]: record operations (create, update, soft delete, restore, purge, nested
//!   items) with metadata and audit events;
//! - [`query`]: filters, sorting and pages over a snapshot; [`audit`]: the audit trail.

pub mod audit;
pub mod definition;
pub mod expr;
pub mod integrity;
pub mod keys;
pub mod overlap;
pub mod query;
pub mod records;
pub mod secret;

pub use definition::{Compiled, Definition, FieldError, OnDelete};
pub use records::{Action, Change, Hook, Secrets};

//! Collections: what turns the log of documents into a database with integrity.
//!
//! This folder is a layer of rules, not of actions: nothing here changes a state or a
//! transaction. The pure rules (`definition`, `document`, `expr`, `keys`, `overlap`,
//! `secret`, `render`, `integrity`'s indexes) import nothing from `state`, `txn` or `db`;
//! the state applies them (`state/integrity.rs`), transactions call them (`txn/`), and
//! readers (`query`, `audit`) read a snapshot or the log with them.
//!
//! - [`definition`]: the declared shape and rules of a collection, and its compiled form;
//! - [`document`]: rules on one record document (metadata, merge patch, size limits);
//! - [`integrity`]: the indexes behind the commit-time checks (`unique`, `exclude`, sort);
//! - [`keys`], [`overlap`], [`expr`], [`secret`]: index keys, ranges, CEL, encryption;
//! - [`ops`]: what one log operation (a whole document or a nested item operation) does
//!   to a record;
//! - [`render`]: how a stored record is shown (secrets omitted, masked or revealed);
//! - [`query`]: filters, sorting and pages over a snapshot; [`audit`]: the audit trail;
//!   [`created`]: create events stored by reference to their record's `put`.
//!
//! Record operations (create, update, delete, nested items, cascades, audit events) are
//! methods of `Txn` and live in `txn/`; [`records`] keeps the rendering API at its
//! earlier path.

pub mod audit;
pub mod created;
pub mod definition;
pub mod document;
pub mod event;
pub mod expr;
pub mod integrity;
pub mod keys;
pub mod ops;
pub mod overlap;
pub mod query;
pub mod records;
pub mod render;
pub mod secret;
pub mod stored;

pub use definition::{Compiled, Definition, FieldError, OnDelete};
pub use event::{AuditEvent, Source};
pub use render::Secrets;
// Hooks live with transactions (`txn::hooks`); re-exported under their earlier path.
pub use crate::txn::{Action, Change, Hook};

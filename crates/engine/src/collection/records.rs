//! The record rendering API under its earlier path (see [`super::render`]). Record
//! operations live with transactions, in `txn/`.

pub use super::render::{MASK, Secrets, render, render_item};

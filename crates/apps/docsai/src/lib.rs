//! Placeholder: this crate is built out by a later issue (see DESIGN.md §1).

pub mod definitions;
pub mod migrate;
pub mod postman;

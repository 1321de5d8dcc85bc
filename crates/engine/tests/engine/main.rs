//! Integration tests of the storage engine. Every backend-independent behaviour runs on
//! each store in `support::backends()`: memory, local disk and (when the test script
//! started one, and always under `CI=true`) a real S3 API server.

mod audit;
mod collections;
mod concurrency;
mod conformance;
mod faults;
mod fixtures;
mod format;
mod nested;
mod nested_effects;
mod nested_model;
mod processes;
mod recovery;
mod revert;
mod secrets;
mod support;
mod tamper;
mod validation;

//! Support shared by the workspace's tests and benchmarks, so that no test reaches into
//! another crate's test tree with `#[path]`. Only ever a dev-dependency.
//!
//! - [`process`]: `bucketbase serve` as a child process on a root, with an HTTP client.
//! - [`sse`]: a Server-Sent Events client for the change feed.

pub mod process;
pub mod sse;

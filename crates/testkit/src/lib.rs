//! Support shared by the workspace's tests and benchmarks, so that no test reaches into
//! another crate's test tree with `#[path]`. Only ever a dev-dependency.
//!
//! - [`bench`]: percentiles, medians over runs and the view's lag, for the apps' benches.
//! - [`django`]: the test venv's Django, and a database a Django project makes.
//! - [`process`]: `bucketbase serve` as a child process on a root, with an HTTP client.
//! - [`fake_identity`]: a fake appointment360 GraphQL identity service.
//! - [`fake_jwks`]: a fake OIDC issuer (JWKS endpoint, RS256 keys, rotation).
//! - [`workbook`]: booking workbooks (.xlsx) as a channel manager exports them.
//! - `aristay` (feature `aristay`): a server serving the aristay app on a fresh local
//!   database, with a user of every role and request helpers.
//! - [`sse`]: a Server-Sent Events client for the change feed.
//! - `served` (feature `served`): any app served in process on a fresh local database,
//!   with users and request helpers (aristay's and docsai's test support wrap it).

#[cfg(feature = "aristay")]
pub mod aristay;
pub mod bench;
pub mod django;
pub mod fake_identity;
pub mod fake_jwks;
pub mod process;
#[cfg(feature = "served")]
pub mod served;
pub mod sse;
pub mod workbook;

//! docsai, the documentation / API-studio / workflow platform (DESIGN.md §7): its
//! collection definitions, the Postman collection model (import and export) and the
//! Django SQLite migration reader. Its routes and commands arrive with the rest of its
//! issue; until then [`Docsai`] plugs into the server through the `App` trait with
//! nothing of its own, so `bucketbase serve --app docsai` serves only the operator's
//! definitions and `/api/v1/docsai/...` stays reserved for its routes.

pub mod definitions;
pub mod migrate;
pub mod postman;

use bucketbase_server::app::App;

/// The docsai app.
#[derive(Debug, Clone, Copy, Default)]
pub struct Docsai;

impl App for Docsai {
    fn name(&self) -> &'static str {
        "docsai"
    }
}

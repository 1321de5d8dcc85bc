//! The HTTP API, over real HTTP against a server on port 0.

mod access;
mod auth;
mod definitions;
mod envelope;
mod events;
mod filters;
mod jwks;
mod metrics;
mod openapi;
mod outage;
mod records;
mod redaction;
mod support;

#[path = "../support/fake_identity.rs"]
mod fake_identity;
#[path = "../support/fake_jwks.rs"]
mod fake_jwks;

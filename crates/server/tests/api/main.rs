//! The HTTP API, over real HTTP against a server on port 0.

mod access;
mod admin;
mod admin_pages;
mod auth;
mod definitions;
mod envelope;
mod events;
mod filters;
mod jwks;
mod metrics;
mod nested;
mod openapi;
mod outage;
mod records;
mod redaction;
mod renew;
mod renew_graphql;
mod support;

use bucketbase_testkit::{fake_identity, fake_jwks};

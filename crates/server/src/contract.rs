//! The HTTP contract of one resource, written once: each route's path, its handlers and
//! its OpenAPI operations are given together, so a route cannot exist without its
//! documentation (or an explicit reason it has none) and a path cannot be spelt two ways.
//!
//! Every resource module (`routes::*`, and an app's routes) builds a [`Resource`]; its
//! `router()` and its OpenAPI paths both come from that one value. `/api/openapi.json`
//! merges the paths of every resource the server routes (see `routes::docs`), and a test
//! walks [`Resource::routed`] to check that each routed path is in the document.
//!
//! Paths are kept as JSON path items: the server's own operations are built with utoipa's
//! typed builders and serialised here, an app may write its path items as JSON directly
//! (multipart bodies and binary answers are easier to state that way), and the document
//! is JSON in the end either way.

use axum::Router;
use axum::routing::MethodRouter;
use serde_json::{Map, Value};
use utoipa::openapi::path::{HttpMethod, Operation};

use crate::AppState;

/// How a routed path is documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Documented {
    /// By the operations given with the route.
    Here,
    /// Once per user collection, with `{collection}` (and `{nested}`) replaced by names,
    /// by `openapi::collections` (the generic record routes).
    PerCollection,
    /// Not in the document, for the reason given (static assets of the docs page...).
    Not(&'static str),
}

/// One routed path and how it is documented.
#[derive(Debug, Clone)]
pub struct Routed {
    pub path: String,
    pub documented: Documented,
}

/// A resource's routes together with their OpenAPI path items.
#[derive(Default)]
pub struct Resource {
    router: Router<AppState>,
    paths: Map<String, Value>,
    routed: Vec<Routed>,
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Delete => "delete",
        HttpMethod::Options => "options",
        HttpMethod::Head => "head",
        HttpMethod::Patch => "patch",
        HttpMethod::Trace => "trace",
    }
}

impl Resource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `path` to `handlers` and documents it with `operations` (one per method).
    pub fn route(
        mut self,
        path: &str,
        handlers: MethodRouter<AppState>,
        operations: impl IntoIterator<Item = (HttpMethod, Operation)>,
    ) -> Self {
        let item = self.item(path);
        for (method, op) in operations {
            let op = serde_json::to_value(op).unwrap_or_default();
            item.insert(method_name(&method).to_string(), op);
        }
        self.add_route(path, handlers, Documented::Here)
    }

    /// Routes `path` to `handlers` and documents it with a path item written as JSON
    /// (`{"post": {...}}`).
    pub fn route_json(
        mut self,
        path: &str,
        handlers: MethodRouter<AppState>,
        path_item: Value,
    ) -> Self {
        if let Value::Object(methods) = path_item {
            self.item(path).extend(methods);
        }
        self.add_route(path, handlers, Documented::Here)
    }

    /// Routes a generic record path, documented once per collection.
    pub fn route_per_collection(self, path: &str, handlers: MethodRouter<AppState>) -> Self {
        self.add_route(path, handlers, Documented::PerCollection)
    }

    /// Routes a path the document leaves out, saying why.
    pub fn route_undocumented(
        self,
        path: &str,
        handlers: MethodRouter<AppState>,
        why: &'static str,
    ) -> Self {
        self.add_route(path, handlers, Documented::Not(why))
    }

    fn item(&mut self, path: &str) -> &mut Map<String, Value> {
        let entry = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        entry.as_object_mut().expect("an object was just put there")
    }

    fn add_route(
        mut self,
        path: &str,
        handlers: MethodRouter<AppState>,
        documented: Documented,
    ) -> Self {
        self.router = self.router.route(path, handlers);
        self.routed.push(Routed {
            path: path.to_string(),
            documented,
        });
        self
    }

    /// Both resources' routes and paths.
    pub fn merge(mut self, other: Resource) -> Self {
        self.router = self.router.merge(other.router);
        for (path, item) in other.paths {
            if let Value::Object(methods) = item {
                self.item(&path).extend(methods);
            }
        }
        self.routed.extend(other.routed);
        self
    }

    /// The routes, for axum.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }

    /// The OpenAPI path items, by path.
    pub fn paths(&self) -> &Map<String, Value> {
        &self.paths
    }

    /// Every routed path and how it is documented.
    pub fn routed(&self) -> &[Routed] {
        &self.routed
    }

    /// Splits into the router and the path items.
    pub fn into_parts(self) -> (Router<AppState>, Map<String, Value>) {
        (self.router, self.paths)
    }
}

//! Templates (minijinja, embedded with `include_str!`, HTML-escaped by default) and the
//! parts every page shares: the signed-in user, the CSRF token, the navigation.

use std::sync::{Arc, LazyLock};

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde_json::{Value, json};

use bucketbase_engine::{CollectionName, Database};

use super::NavEntry;
use super::error::AdminError;
use super::session::Ctx;

/// The nav entries apps add, and the database whose definitions decide which of them a
/// caller sees (an entry that [`NavEntry::requires`] an action the caller could never do
/// on its collection is left out, with the same [`super::could`] the pages use).
#[derive(Clone, Default)]
pub struct Nav {
    pub entries: Arc<Vec<NavEntry>>,
    pub db: Option<Arc<Database>>,
}

impl Nav {
    /// The entries `ctx`'s caller may use.
    fn visible(&self, ctx: &Ctx) -> Vec<&NavEntry> {
        let snapshot = self.db.as_ref().map(|db| db.snapshot());
        self.entries
            .iter()
            .filter(|e| match (&e.requires, &snapshot) {
                (None, _) => true,
                (Some((c, action)), Some(s)) => CollectionName::parse(c)
                    .ok()
                    .and_then(|c| s.definition(&c).cloned())
                    .is_some_and(|def| super::could(ctx.caller(), &def, *action)),
                (Some(_), None) => false,
            })
            .collect()
    }
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../assets/admin/templates/", $name)))),*]
    };
}

/// The generic templates (`base.html`, `macros.html`, the pages), which an app's own
/// templates may extend and import.
const GENERIC: &[(&str, &str)] = &templates!(
    "base.html",
    "macros.html",
    "error.html",
    "login.html",
    "dashboard.html",
    "collection.html",
    "record.html",
    "new.html",
    "trash.html",
    "conflict.html",
    "purge.html",
    "audit.html",
    "revert.html",
    "verify.html",
    "definitions.html",
    "definition.html",
);

static ENV: LazyLock<Templates> = LazyLock::new(|| Templates::with(&[]));

/// A set of templates: the generic ones plus an app's (see [`super::AdminPages`]). An
/// app's templates `{% extends "base.html" %}` and `{% import "macros.html" %}` like the
/// generic pages, so every page has the same layout, nav, CSRF field and escaping.
pub struct Templates(Environment<'static>);

impl Templates {
    /// The generic templates plus `extra` (name, source). A template that does not
    /// compile is a bug of the binary, caught by a unit test: it panics here.
    pub fn with(extra: &[(&'static str, &'static str)]) -> Templates {
        let mut env = Environment::new();
        for (name, source) in GENERIC.iter().chain(extra) {
            if let Err(e) = env.add_template(name, source) {
                panic!("admin template {name} does not compile: {e:#}");
            }
        }
        Templates(env)
    }

    fn render(
        &self,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> Result<Response, AdminError> {
        let html = self.0.get_template(template)?.render(ctx)?;
        Ok((status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
    }
}

/// Renders `template` with `ctx` as an HTML answer.
pub fn page(status: StatusCode, template: &str, ctx: Value) -> Result<Response, AdminError> {
    ENV.render(status, template, ctx)
}

impl Ctx {
    /// A page for the signed-in user: `ctx` plus `me`, `csrf` and the nav.
    pub fn page(&self, template: &str, ctx: Value) -> Result<Response, AdminError> {
        self.page_with(StatusCode::OK, template, ctx)
    }

    pub fn page_with(
        &self,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> Result<Response, AdminError> {
        self.render_with(&ENV, status, template, ctx)
    }

    /// A page of an app's own `templates` (see [`Templates::with`]), with the same `me`,
    /// `csrf` and nav as the generic pages.
    pub fn render(
        &self,
        templates: &Templates,
        template: &str,
        ctx: Value,
    ) -> Result<Response, AdminError> {
        self.render_with(templates, StatusCode::OK, template, ctx)
    }

    pub fn render_with(
        &self,
        templates: &Templates,
        status: StatusCode,
        template: &str,
        mut ctx: Value,
    ) -> Result<Response, AdminError> {
        let p = &self.session.caller.principal;
        ctx["me"] = json!({"email": p.email, "role": p.role, "uuid": p.uuid,
                           "super_admin": self.caller().is_super_admin()});
        ctx["csrf"] = json!(self.session.csrf);
        ctx["app_nav"] = json!(self.nav.visible(self));
        templates.render(status, template, ctx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        assert!(super::ENV.0.templates().count() >= 16);
    }
}

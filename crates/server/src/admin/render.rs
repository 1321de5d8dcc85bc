//! Templates (minijinja, embedded with `include_str!`, HTML-escaped by default) and the
//! parts every page shares: the signed-in user, the CSRF token, the navigation.

use std::sync::{Arc, LazyLock};

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde_json::{Value, json};

use super::NavEntry;
use super::error::AdminError;
use super::session::Ctx;

/// The nav entries apps add.
#[derive(Clone, Default)]
pub struct Nav(pub Arc<Vec<NavEntry>>);

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../assets/admin/templates/", $name)))),*]
    };
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in templates!(
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
    ) {
        if let Err(e) = env.add_template(name, source) {
            panic!("admin template {name} does not compile: {e:#}");
        }
    }
    env
});

/// Renders `template` with `ctx` as an HTML answer.
pub fn page(status: StatusCode, template: &str, ctx: Value) -> Result<Response, AdminError> {
    let html = ENV.get_template(template)?.render(ctx)?;
    Ok((status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
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
        mut ctx: Value,
    ) -> Result<Response, AdminError> {
        let p = &self.session.caller.principal;
        ctx["me"] = json!({"email": p.email, "role": p.role, "uuid": p.uuid,
                           "super_admin": self.caller().is_super_admin()});
        ctx["csrf"] = json!(self.session.csrf);
        ctx["app_nav"] = json!(self.nav.0.as_ref());
        page(status, template, ctx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        assert!(super::ENV.templates().count() >= 16);
    }
}

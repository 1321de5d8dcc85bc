//! docsai's pages in the admin UI (issue 13 §5, issue 17 §6), mounted through
//! `App::admin_pages`; the generic pages already serve every docsai collection.
//!
//! - [`postman`]: upload a Postman collection file (with a dry run) and read the
//!   import's report, or the reason a bad file was refused;
//! - [`workflows`]: a workflow's executions, paged, each with its log lines, paged, the
//!   newest lines appearing while they are written (the change feed, followed by the
//!   generic `live.js`: no script of docsai's own).
//!
//! Like the generic pages and aristay's, these read and write only through the JSON API
//! in process (`bucketbase_server::admin::Api`, as the signed-in user): the Postman
//! import is the API's own route, so its limits, checks and report are one
//! implementation, and docsai's owner rules (which bind SuperAdmin too) decide what a
//! page shows: another owner's workflow is a 404 page, as it is a 404 answer.

mod postman;
mod workflows;

use std::sync::LazyLock;

use axum::Router;
use bucketbase_server::AppState;
use bucketbase_server::access::Action;
use bucketbase_server::admin::{AdminPages, NavEntry, Templates};

/// The generic templates plus docsai's, which extend `base.html`.
static TEMPLATES: LazyLock<Templates> = LazyLock::new(|| {
    Templates::with(&[
        ("docsai/postman.html", include_str!("html/postman.html")),
        ("docsai/workflows.html", include_str!("html/workflows.html")),
        ("docsai/workflow.html", include_str!("html/workflow.html")),
        ("docsai/execution.html", include_str!("html/execution.html")),
    ])
});

/// docsai's pages and their nav entries.
pub fn pages() -> AdminPages {
    AdminPages {
        nav: vec![
            NavEntry::new("Import Postman", "/admin/docsai/postman")
                .requires("api_collections", Action::Create),
            NavEntry::new("Workflows", "/admin/docsai/workflows")
                .requires("workflows", Action::List),
        ],
        routes: Router::<AppState>::new()
            .merge(postman::router())
            .merge(workflows::router()),
    }
}

/// A page number from the query (`?page=`): anything that is not a positive number is
/// the first page, never an error page.
fn page_number(text: Option<&str>) -> Option<usize> {
    text.and_then(|t| t.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// Previous / next links of a pager over `pages` pages (`href` of a page number).
fn pager(page: usize, pages: usize, href: impl Fn(usize) -> String) -> serde_json::Value {
    serde_json::json!({
        "page": page,
        "pages": pages,
        "prev": (page > 1).then(|| href(page - 1)),
        "next": (page < pages).then(|| href(page + 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        // Compiling happens when the set is built; a broken template panics here.
        let _ = &*TEMPLATES;
    }

    #[test]
    fn page_numbers_are_lenient() {
        assert_eq!(page_number(Some("3")), Some(3));
        assert_eq!(page_number(Some("0")), None);
        assert_eq!(page_number(Some("-1")), None);
        assert_eq!(page_number(Some("x")), None);
        assert_eq!(page_number(None), None);
    }

    #[test]
    fn a_pager_links_only_pages_that_exist() {
        let p = pager(1, 1, |n| n.to_string());
        assert!(p["prev"].is_null() && p["next"].is_null());
        let p = pager(2, 3, |n| n.to_string());
        assert_eq!(
            (p["prev"].as_str(), p["next"].as_str()),
            (Some("1"), Some("3"))
        );
    }
}

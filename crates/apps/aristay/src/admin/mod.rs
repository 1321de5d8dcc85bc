//! aristay's pages in the admin UI (DESIGN.md §5, issue 13 §4), mounted through
//! `App::admin_pages`:
//!
//! - [`auto_tasks`]: auto-task templates, a list and an editor whose *preview* shows the
//!   tasks the unsaved template would create for the bookings of the next 30 days,
//!   computed by the automation's own [`crate::automation::AutoTasks::planned_task`];
//! - [`import`]: booking import from an .xlsx: upload, a saved mapping or one built from
//!   the detected headers, a dry run with the bad rows by number, then the commit;
//! - [`calendar`]: bookings per property as bars over the days of a month;
//! - [`tasks`]: "my tasks" for staff, on a phone: mark one done, upload a photo.
//!
//! Like the generic pages, these read and write only through the JSON API in process
//! (`bucketbase_server::admin::Api`, as the signed-in user), so the role rules are the
//! API's: a staff member's list holds their tasks because the API lists no other, and a
//! nav entry is shown only to callers who could do what its page needs
//! (`NavEntry::requires`, the check the generic pages use to offer a button).

mod auto_tasks;
mod calendar;
mod import;
mod stash;
mod tasks;

use std::sync::LazyLock;

use axum::Router;
use bucketbase_server::AppState;
use bucketbase_server::access::Action;
use bucketbase_server::admin::{AdminPages, Ctx, NavEntry, Templates};
use chrono::NaiveDate;

/// The generic templates plus aristay's, which extend `base.html`.
static TEMPLATES: LazyLock<Templates> = LazyLock::new(|| {
    Templates::with(&[
        (
            "aristay/templates.html",
            include_str!("html/templates.html"),
        ),
        ("aristay/template.html", include_str!("html/template.html")),
        ("aristay/import.html", include_str!("html/import.html")),
        (
            "aristay/import_map.html",
            include_str!("html/import_map.html"),
        ),
        (
            "aristay/import_report.html",
            include_str!("html/import_report.html"),
        ),
        ("aristay/calendar.html", include_str!("html/calendar.html")),
        ("aristay/tasks.html", include_str!("html/tasks.html")),
    ])
});

/// aristay's pages and their nav entries.
pub fn pages() -> AdminPages {
    AdminPages {
        nav: vec![
            NavEntry::new("Task templates", "/admin/aristay/templates")
                .requires("auto_task_templates", Action::List),
            NavEntry::new("Import bookings", "/admin/aristay/import")
                .requires("bookings", Action::Create),
            NavEntry::new("Calendar", "/admin/aristay/calendar").requires("bookings", Action::List),
            NavEntry::new("My tasks", "/admin/aristay/my-tasks").requires("tasks", Action::Update),
        ],
        routes: Router::<AppState>::new()
            .merge(auto_tasks::router())
            .merge(import::router())
            .merge(calendar::router())
            .merge(tasks::router()),
    }
}

/// Could the caller do `action` on some record of `collection`? What a page offers
/// (a "New template" link, the import form) follows this, the generic pages' check.
fn could(st: &AppState, ctx: &Ctx, collection: &'static str, action: Action) -> bool {
    st.db
        .snapshot()
        .definition(&crate::coll(collection))
        .is_some_and(|def| bucketbase_server::admin::could(ctx.caller(), def, action))
}

/// Today on the database's clock (the one audit timestamps use).
fn today(st: &AppState) -> NaiveDate {
    st.db.now().date_naive()
}

/// A CEL string literal of `s` (dates and ids only reach here, but quote them properly).
fn cel_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The fixed notice a redirect names (`?notice=`); unknown names show nothing.
fn notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "saved" => "Saved.",
        "created" => "Created.",
        "done" => "Marked done.",
        "photo" => "Photo uploaded.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        // Compiling happens when the set is built; a broken template panics here.
        let _ = &*super::TEMPLATES;
    }
}

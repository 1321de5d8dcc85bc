//! docsai's collection definitions (DESIGN.md §7), shipped as commented TOML files in
//! `definitions/` and compiled into the binary with `include_str!`, as aristay does: a
//! definition is data an operator can read and export, and the binary carries the
//! version it was tested with.
//!
//! Every collection is SuperAdmin-only (the deployment's `require_role`) and scoped to
//! its owner by CEL rules on `created_by` that bind SuperAdmin too (decision 0021).

use bucketbase_engine::collection::Definition;

/// The definitions, in dependency order (referenced collections first).
const DEFINITIONS: [(&str, &str); 15] = [
    ("knowledge", include_str!("../definitions/knowledge.toml")),
    (
        "ai_sessions",
        include_str!("../definitions/ai_sessions.toml"),
    ),
    ("operations", include_str!("../definitions/operations.toml")),
    (
        "roadmap_items",
        include_str!("../definitions/roadmap_items.toml"),
    ),
    ("templates", include_str!("../definitions/templates.toml")),
    (
        "accessibility_scans",
        include_str!("../definitions/accessibility_scans.toml"),
    ),
    (
        "test_suites",
        include_str!("../definitions/test_suites.toml"),
    ),
    (
        "credentials",
        include_str!("../definitions/credentials.toml"),
    ),
    ("workflows", include_str!("../definitions/workflows.toml")),
    (
        "workflow_templates",
        include_str!("../definitions/workflow_templates.toml"),
    ),
    (
        "api_collections",
        include_str!("../definitions/api_collections.toml"),
    ),
    (
        "environments",
        include_str!("../definitions/environments.toml"),
    ),
    (
        "request_history",
        include_str!("../definitions/request_history.toml"),
    ),
    ("tasks", include_str!("../definitions/tasks.toml")),
    ("json_store", include_str!("../definitions/json_store.toml")),
];

/// The names of docsai's collections, in dependency order.
pub fn names() -> impl Iterator<Item = &'static str> {
    DEFINITIONS.iter().map(|(name, _)| *name)
}

/// docsai's collection definitions.
pub fn definitions() -> Vec<Definition> {
    DEFINITIONS
        .iter()
        .map(|(name, toml)| {
            Definition::from_toml(toml)
                .unwrap_or_else(|e| panic!("the shipped definition of {name} is invalid: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_definitions_parse_and_compile() {
        let defs = definitions();
        assert_eq!(defs.len(), 15);
        for (d, name) in defs.iter().zip(names()) {
            assert_eq!(d.name, name, "file and name agree");
            d.compile().unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
    }

    #[test]
    fn every_collection_is_owner_scoped() {
        for d in definitions() {
            assert_eq!(d.owner_field.as_deref(), Some("created_by"), "{}", d.name);
            assert!(
                d.rules.bind_super_admin,
                "{}: the owner rule binds SuperAdmin",
                d.name
            );
            let rules = [
                &d.rules.list,
                &d.rules.view,
                &d.rules.create,
                &d.rules.update,
                &d.rules.delete,
            ];
            for r in rules {
                assert_eq!(
                    r.as_deref(),
                    Some("record.created_by == auth.uuid"),
                    "{}",
                    d.name
                );
            }
        }
    }

    #[test]
    fn the_nested_arrays_of_design_7() {
        let nested = |name: &str| -> Vec<String> {
            let d = definitions().into_iter().find(|d| d.name == name).unwrap();
            d.nested.keys().cloned().collect()
        };
        assert_eq!(nested("ai_sessions"), ["messages"]);
        assert_eq!(nested("test_suites"), ["runs"]);
        assert_eq!(nested("workflows"), ["connections", "executions", "nodes"]);
        let workflows = definitions()
            .into_iter()
            .find(|d| d.name == "workflows")
            .unwrap();
        let executions = &workflows.nested["executions"];
        assert_eq!(executions.nested.keys().collect::<Vec<_>>(), ["logs"]);
        assert_eq!(executions.max_items, Some(10_000));
        assert_eq!(executions.max_age.as_deref(), Some("14d"));
        assert_eq!(executions.nested["logs"].max_items, Some(1000));
        assert_eq!(nested("api_collections"), ["mocks", "requests"]);
        assert_eq!(nested("environments"), ["variables"]);
        assert_eq!(nested("tasks"), ["comments"]);
        let creds = definitions()
            .into_iter()
            .find(|d| d.name == "credentials")
            .unwrap();
        assert_eq!(creds.secret, ["data"]);
    }
}

//! The apps this binary can serve: the one place the CLI names them. Everything else
//! reaches an app through `bucketbase_server::app::App` (decision 0014).

use bucketbase_server::app::App;

/// `--app none`: only the operator's own definitions.
pub const NONE: &str = "none";

/// Every app, by name.
pub fn registry() -> Vec<Box<dyn App>> {
    vec![
        Box::new(bucketbase_aristay::Aristay),
        Box::new(bucketbase_docsai::Docsai),
    ]
}

/// The names of every app. Each app owns `/api/v1/<name>/...`, so no collection may take
/// one of these names, whichever app a server runs (a database keeps working when it
/// moves to another app).
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|app| app.name()).collect()
}

/// The values `--app` / `app` take: every app's name and `none`.
pub fn choices() -> Vec<&'static str> {
    names().into_iter().chain([NONE]).collect()
}

/// The app named `name` (`None` for `none`); an unknown name is an error listing the
/// choices.
pub fn find(name: &str) -> anyhow::Result<Option<Box<dyn App>>> {
    if name == NONE {
        return Ok(None);
    }
    registry()
        .into_iter()
        .find(|app| app.name() == name)
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("app must be one of {}, not {name:?}", choices().join(", ")))
}

/// The command groups the apps add, merged by group name (two apps' `import` commands
/// become one `import` with both subcommands).
pub fn command_groups() -> Vec<clap::Command> {
    let mut groups: Vec<clap::Command> = Vec::new();
    for app in registry() {
        for group in app.commands() {
            match groups.iter_mut().find(|g| g.get_name() == group.get_name()) {
                Some(existing) => {
                    let merged = std::mem::replace(existing, clap::Command::new("placeholder"));
                    *existing = merged.subcommands(group.get_subcommands().cloned());
                }
                None => groups.push(group),
            }
        }
    }
    groups
}

/// The app that owns subcommand `sub` of `group`.
pub fn owner(group: &str, sub: &str) -> Option<Box<dyn App>> {
    registry().into_iter().find(|app| {
        app.commands()
            .iter()
            .any(|g| g.get_name() == group && g.find_subcommand(sub).is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_name_is_reserved_and_found() {
        assert_eq!(names(), ["aristay", "docsai"]);
        for name in names() {
            assert_eq!(find(name).unwrap().unwrap().name(), name);
            assert!(crate::serve::reserved_names().contains(&name), "{name}");
        }
        for name in ["audit", "collections", "events"] {
            assert!(crate::serve::reserved_names().contains(&name), "{name}");
        }
        assert!(find(NONE).unwrap().is_none());
        let err = find("nope").err().unwrap().to_string();
        assert!(err.contains("aristay, docsai, none"), "{err}");
    }

    #[test]
    fn app_commands_are_merged_into_groups() {
        let groups = command_groups();
        let import = groups.iter().find(|g| g.get_name() == "import").unwrap();
        assert!(import.find_subcommand("bookings").is_some());
        assert_eq!(owner("import", "bookings").unwrap().name(), "aristay");
        assert!(import.find_subcommand("postman").is_some());
        assert_eq!(owner("import", "postman").unwrap().name(), "docsai");
        assert_eq!(owner("migrate", "sqlite").unwrap().name(), "docsai");
        assert!(owner("import", "nothing").is_none());
    }
}

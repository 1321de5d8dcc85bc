//! Real Django for tests that need a database Django made (docsai's migration): the
//! test venv's python (`.venv`, or `BUCKETBASE_VENV`), where `scripts/test` installs the
//! pinned Django, and a project's `manage.py migrate` + `fill` run with it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python when it has Django, or `None` to skip (never under `CI=true`,
/// where a missing Django fails the test instead).
pub fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("BUCKETBASE_VENV")
        .map(PathBuf::from)
        .map(|v| if v.is_absolute() { v } else { repo().join(v) })
        .unwrap_or_else(|| repo().join(".venv"));
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import django"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Django is not installed in the test venv (scripts/test installs it)"
        );
        eprintln!("skipped: Django is not installed in the test venv");
    }
    ok.then_some(py)
}

/// Makes `db` (an SQLite file) with the Django project at `project`: `manage.py migrate`,
/// then `manage.py fill` (the project's command that fills it), the database's path in
/// `DOCSAI_DB`.
pub fn make_db(py: &Path, project: &Path, db: &Path) {
    for args in [
        &["manage.py", "migrate", "-v0"][..],
        &["manage.py", "fill"][..],
    ] {
        let out = Command::new(py)
            .args(args)
            .current_dir(project)
            .env("DOCSAI_DB", db)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

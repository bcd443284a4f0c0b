//! Architecture rules that can be checked mechanically, checked (in the
//! spirit of rust-analyzer's `tidy.rs`); docs/ARCHITECTURE.md states them:
//!
//! - the bridge links no database and no HTTP server: no `sqlx`, no `axum`
//!   in its dependency tree;
//! - the 14 measurement names are spelled, as string literals, only in the
//!   schema (`src/observation.rs`); everything else asks `Field::name`
//!   (unit-test modules may use them as data);
//! - every Rust source file opens with a module doc (`//!`);
//! - nothing in the repository points at a path outside it: a clone is all
//!   a contributor has.

use std::path::{Path, PathBuf};
use std::process::Command;

use buoycast::observation::Field;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name ends with one of `extensions`, skipping
/// build output, installed packages and VCS data.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | ".git" | "artifacts" | "coverage") {
                    pending.push(path);
                }
            } else if extensions.iter().any(|extension| name.ends_with(extension)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).display().to_string()
}

/// The packages in the bridge's normal and build dependency tree, as cargo
/// resolves it for the bridge alone (its features, not the workspace's).
fn bridge_dependencies() -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "-p", "buoycast-bridges", "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(repo_root())
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_bridge_links_no_database_and_no_http_server() {
    let packages = bridge_dependencies();
    assert!(
        packages.iter().any(|package| package == "buoycast"),
        "the tree was read (the bridge depends on buoycast): {packages:?}"
    );
    let forbidden: Vec<&String> = packages
        .iter()
        .filter(|package| {
            package.as_str() == "axum" || package.starts_with("axum-") || package.starts_with("sqlx")
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "the bridge must not link a database or an HTTP server, but its tree has {forbidden:?}; \
         keep buoycast's `server` feature off for bridges/ (default-features = false)"
    );
}

#[test]
fn measurement_names_are_spelled_only_in_the_schema() {
    let schema = repo_root().join("src/observation.rs");
    let mut offences = Vec::new();
    for dir in ["src", "bridges/src"] {
        for path in files(&repo_root().join(dir), &[".rs"]) {
            if path == schema {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            // Unit-test modules (at the end of a file) may spell names as data,
            // e.g. a map file's text; the code above them may not.
            let text = text.split("\n#[cfg(test)]").next().unwrap_or_default();
            for field in Field::ALL {
                for literal in [format!("\"{}\"", field.name()), format!("\\\"{}\\\"", field.name())] {
                    for (number, line) in text.lines().enumerate() {
                        if line.contains(&literal) {
                            offences.push(format!("{}:{}: {}", relative(&path), number + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "measurement names belong to src/observation.rs (use Field::name / Field::from_name):\n{}",
        offences.join("\n")
    );
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for dir in ["src", "tests", "benches", "bridges", "fuzz/fuzz_targets"] {
        for path in files(&repo_root().join(dir), &[".rs"]) {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            checked += 1;
            if !text.trim_start().starts_with("//!") {
                missing.push(relative(&path));
            }
        }
    }
    assert!(checked > 50, "found the sources ({checked} files)");
    assert!(
        missing.is_empty(),
        "these files lack a `//!` module doc saying what they are for:\n{}",
        missing.join("\n")
    );
}

#[test]
fn nothing_points_outside_the_repository() {
    // Spelled in pieces so this file does not match itself.
    let needles = [
        ["..", "/shared"].concat(),
        ["/work", "/shared"].concat(),
        ["SPEC", ".md"].concat(),
        ["BUOYCAST", "_FIXTURES"].concat(),
    ];
    let cited_section = |line: &str| {
        line.match_indices(&["SP", "EC "].concat())
            .any(|(at, matched)| line[at + matched.len()..].starts_with(|c: char| c.is_ascii_digit()))
    };
    let mut offences = Vec::new();
    let mut checked = 0;
    // Every file; those that are not UTF-8 text are skipped.
    for path in files(&repo_root(), &[""]) {
        // Applied migrations never change (sqlx checksums them, comments
        // included), so their old comments stay as they were written.
        let frozen = path.starts_with(repo_root().join("migrations"))
            && ["0001_init.sql", "0002_worker.sql"].iter().any(|name| path.ends_with(name));
        if frozen || path.starts_with(repo_root().join("tests/fixtures")) || path.ends_with("Cargo.lock") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        checked += 1;
        for (number, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle.as_str())) || cited_section(line) {
                offences.push(format!("{}:{}: {}", relative(&path), number + 1, line.trim()));
            }
        }
    }
    assert!(checked > 100, "found the repository's files ({checked})");
    assert!(
        offences.is_empty(),
        "these lines point outside the repository (cite docs/ and read tests/fixtures/ instead):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_fixtures_are_in_the_repository() {
    let root = repo_root().join("tests/fixtures/ndbc");
    assert!(
        root.join("SOURCES.md").is_file(),
        "tests/fixtures/ndbc/SOURCES.md says where each file came from"
    );
    for file in ["realtime2/41002.txt", "latest_obs/latest_obs.txt", "stations/activestations.xml"] {
        assert!(root.join(file).is_file(), "tests/fixtures/ndbc/{file}");
    }
}

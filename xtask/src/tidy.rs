//! `cargo xtask tidy`: the checks no compiler makes. Every `.rs` file says what it is for and
//! stays under [`MAX_LINES`] outside tests; and the layering of ARCHITECTURE.md holds:
//! `catalog-core` builds on its own with its short list of dependencies, no adapter depends
//! on another adapter, the application layer on no adapter, no crate on a binary, and
//! `replay` links neither the Kafka client nor the HTTP server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::{run, visit};

/// The longest a source file may grow outside `tests/` and `benches/`: past it, split it by
/// responsibility.
pub(crate) const MAX_LINES: usize = 500;

/// What `catalog-core` may depend on: no runtime, no I/O, no clock.
const CORE_DEPENDENCIES: &[&str] = &["chrono", "compact_str", "serde", "serde_json", "thiserror", "uuid"];

/// Crates that talk to one outside system each: stores and sources. None depends on another.
const ADAPTERS: &[&str] = &["catalog-postgres", "catalog-sqlite", "catalog-kafka", "catalog-file", "catalog-feed"];

/// Crates no binary's dependency tree of `replay` may contain.
const NOT_IN_REPLAY: &[&str] = &["rdkafka", "rdkafka-sys", "axum", "sync-worker", "admin-api"];

/// One package as `cargo metadata` describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) manifest_path: PathBuf,
    pub(crate) dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Dependency {
    pub(crate) name: String,
    /// `None` for a normal dependency, `dev` or `build` otherwise.
    pub(crate) kind: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

/// Runs every tidy check; fails with every problem found, each on its own line.
pub(crate) fn tidy(root: &Path) -> Result<()> {
    let mut problems = file_problems(root)?;
    let metadata = std::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !metadata.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&metadata.stderr));
    }
    let metadata: Metadata = serde_json::from_slice(&metadata.stdout).context("reading cargo metadata")?;
    problems.extend(layering_problems(root, &metadata.packages));
    problems.extend(replay_problems(root)?);
    if !problems.is_empty() {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    // Checked on its own, so features the workspace merges in cannot hide what it needs.
    run(root, "cargo", &["check", "--locked", "-p", "catalog-core"]).context("catalog-core does not build on its own")
}

/// Every `.rs` file starts with a `//!` line saying what it is for, and none outside tests
/// and benches is longer than [`MAX_LINES`].
fn file_problems(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for directory in ["crates", "bins", "xtask"] {
        visit(&root.join(directory), &mut |path| {
            if path.extension().is_none_or(|extension| extension != "rs") {
                return Ok(());
            }
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
            if !text.starts_with("//!") {
                problems.push(format!("{shown} does not start with a `//!` line saying what it is for"));
            }
            let in_tests = path.components().any(|part| matches!(part.as_os_str().to_str(), Some("tests" | "benches")));
            if shown.starts_with("crates/catalog-sqlite/src") {
                problems.extend(sqlite_read_problems(&shown, &text));
            }
            let n_lines = text.lines().count();
            if !in_tests && n_lines > MAX_LINES {
                problems
                    .push(format!("{shown} has {n_lines} lines, more than {MAX_LINES}: split it by responsibility"));
            }
            Ok(())
        })?;
    }
    Ok(problems)
}

/// The dependency rules between the workspace's own crates.
pub(crate) fn layering_problems(root: &Path, packages: &[Package]) -> Vec<String> {
    let binaries: BTreeSet<&str> = packages
        .iter()
        .filter(|package| package.manifest_path.strip_prefix(root).is_ok_and(|path| path.starts_with("bins")))
        .map(|package| package.name.as_str())
        .collect();
    let mut problems = Vec::new();
    for package in packages {
        let name = package.name.as_str();
        for dependency in &package.dependencies {
            let on = dependency.name.as_str();
            let normal = dependency.kind.is_none();
            if binaries.contains(on) {
                problems.push(format!("{name} depends on the binary {on}: move what it needs into a library crate"));
            }
            if name == "catalog-core" && normal && !CORE_DEPENDENCIES.contains(&on) {
                problems.push(format!("catalog-core depends on {on}: the core stays pure ({CORE_DEPENDENCIES:?})"));
            }
            if ADAPTERS.contains(&name) && ADAPTERS.contains(&on) && normal {
                problems.push(format!("the adapter {name} depends on the adapter {on}: adapters meet in a binary"));
            }
            if name == "catalog-app" && ADAPTERS.contains(&on) && normal {
                problems
                    .push(format!("catalog-app depends on the adapter {on}: it defines ports, binaries wire adapters"));
            }
        }
    }
    problems
}

/// `replay` links neither the Kafka client nor the HTTP server, nor another binary.
/// The SQLite store reads every statement to its end: sqlx's `fetch_optional` and
/// `fetch_one` can leave a statement un-reset on the connection's worker thread, and an
/// un-reset statement holds that connection's read snapshot, so later reads on it miss
/// newer commits (launchbadge/sqlx#2543; seen here as a stale audit log).
fn sqlite_read_problems(shown: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(".fetch_optional(") || line.contains(".fetch_one("))
        .map(|(index, _)| {
            format!(
                "{shown}:{}: a partial fetch keeps a stale read snapshot; use fetch_all and take the first row",
                index + 1
            )
        })
        .collect()
}

fn replay_problems(root: &Path) -> Result<Vec<String>> {
    let tree = std::process::Command::new("cargo")
        .args(["tree", "--locked", "-p", "replay", "-e", "normal", "--prefix", "none"])
        .current_dir(root)
        .output()
        .context("running cargo tree")?;
    if !tree.status.success() {
        bail!("cargo tree -p replay failed: {}", String::from_utf8_lossy(&tree.stderr));
    }
    let tree = String::from_utf8_lossy(&tree.stdout);
    let linked: BTreeSet<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    Ok(NOT_IN_REPLAY
        .iter()
        .filter(|name| linked.contains(**name))
        .map(|name| format!("replay links {name}: it needs the store and the application layer only"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, directory: &str, dependencies: &[(&str, Option<&str>)]) -> Package {
        Package {
            name: name.to_owned(),
            manifest_path: PathBuf::from(format!("/repo/{directory}/{name}/Cargo.toml")),
            dependencies: dependencies
                .iter()
                .map(|(name, kind)| Dependency { name: (*name).to_owned(), kind: kind.map(str::to_owned) })
                .collect(),
        }
    }

    #[test]
    fn a_sound_workspace_has_no_layering_problems() {
        let packages = [
            package("catalog-core", "crates", &[("serde", None), ("proptest", Some("dev"))]),
            package("catalog-app", "crates", &[("catalog-core", None), ("catalog-sqlite", Some("dev"))]),
            package("catalog-kafka", "crates", &[("catalog-app", None), ("rdkafka", None)]),
            package("replay", "bins", &[("catalog-app", None)]),
        ];
        assert_eq!(layering_problems(Path::new("/repo"), &packages), Vec::<String>::new());
    }

    #[test]
    fn each_broken_rule_is_named() {
        let packages = [
            package("catalog-core", "crates", &[("tokio", None)]),
            package("catalog-app", "crates", &[("catalog-kafka", None)]),
            package("catalog-file", "crates", &[("catalog-sqlite", None)]),
            package("replay", "bins", &[("sync-worker", None)]),
            package("sync-worker", "bins", &[]),
        ];
        let problems = layering_problems(Path::new("/repo"), &packages);
        insta::assert_snapshot!(problems.join("\n"), @r#"
        catalog-core depends on tokio: the core stays pure (["chrono", "compact_str", "serde", "serde_json", "thiserror", "uuid"])
        catalog-app depends on the adapter catalog-kafka: it defines ports, binaries wire adapters
        the adapter catalog-file depends on the adapter catalog-sqlite: adapters meet in a binary
        replay depends on the binary sync-worker: move what it needs into a library crate
        "#);
        let read = "let row = query.fetch_optional(pool).await?;\nlet n = count.fetch_one(pool).await?;\nlet all = q.fetch_all(pool);";
        insta::assert_snapshot!(sqlite_read_problems("crates/catalog-sqlite/src/read.rs", read).join("\n"), @r"
        crates/catalog-sqlite/src/read.rs:1: a partial fetch keeps a stale read snapshot; use fetch_all and take the first row
        crates/catalog-sqlite/src/read.rs:2: a partial fetch keeps a stale read snapshot; use fetch_all and take the first row
        ");
    }
}

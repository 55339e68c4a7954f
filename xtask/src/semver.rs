//! `cargo xtask semver`: checks `catalog-core`'s public API against its last release with
//! cargo-semver-checks, so a breaking change cannot land without the version announcing it.
//!
//! The last release is the newest version heading of `crates/catalog-core/CHANGELOG.md`, and
//! its commit is the one that set that version in `crates/catalog-core/Cargo.toml`: no tag is
//! needed, only the repository's history (a shallow clone fails with a clear error).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

const CHANGELOG: &str = "crates/catalog-core/CHANGELOG.md";
const MANIFEST: &str = "crates/catalog-core/Cargo.toml";

pub(crate) fn semver(root: &Path) -> Result<()> {
    let changelog = std::fs::read_to_string(root.join(CHANGELOG)).with_context(|| format!("reading {CHANGELOG}"))?;
    let released = last_release(&changelog).with_context(|| format!("{CHANGELOG} lists no release"))?;
    let baseline = release_commit(root, &released)?;
    eprintln!("xtask: catalog-core {released} was released at {baseline}");
    crate::run(root, "cargo", &["semver-checks", "check-release", "-p", "catalog-core", "--baseline-rev", &baseline])
        .context("catalog-core's public API breaks its last release: raise its version and say why in CHANGELOG.md")
}

/// The version of the newest `## x.y.z` heading (`## Unreleased` is skipped).
fn last_release(changelog: &str) -> Option<String> {
    changelog.lines().filter_map(|line| line.strip_prefix("## ")).find_map(|heading| {
        let version = heading.split_whitespace().next()?;
        let numbers: Vec<&str> = version.split('.').collect();
        let is_version =
            numbers.len() == 3 && numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        is_version.then(|| version.to_owned())
    })
}

/// The oldest commit whose manifest sets `version = "{version}"`.
fn release_commit(root: &Path, version: &str) -> Result<String> {
    let shallow = git(root, &["rev-parse", "--is-shallow-repository"])?;
    if shallow.trim() == "true" {
        // The check needs the history back to the release: fetch it where the clone came from.
        eprintln!("xtask: this clone is shallow; fetching its history for the semver check");
        git(root, &["fetch", "--unshallow"]).with_context(|| {
            format!("the semver check needs the history back to catalog-core {version}, and this clone is shallow")
        })?;
    }
    let needle = format!("version = \"{version}\"");
    let commits = git(root, &["log", "--format=%H", "--reverse", "-S", &needle, "--", MANIFEST])?;
    commits.lines().next().map(str::to_owned).with_context(|| format!("no commit sets {needle} in {MANIFEST}"))
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git").args(args).current_dir(root).output().context("running git")?;
    if !output.status.success() {
        bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    String::from_utf8(output.stdout).context("git printed non-UTF-8")
}

#[cfg(test)]
mod tests {
    use super::last_release;

    #[test]
    fn the_newest_version_heading_is_the_last_release() {
        let changelog = "# Changelog\n\n## Unreleased\n\n- a\n\n## 0.2.0 (2027-01-01)\n\n## 0.1.0 (2026-12-02)\n";
        assert_eq!(last_release(changelog).as_deref(), Some("0.2.0"));
        assert_eq!(last_release("# Changelog\n\n## Unreleased\n"), None);
    }
}

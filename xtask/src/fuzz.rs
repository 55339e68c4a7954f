//! `cargo xtask fuzz`: runs every fuzz target for a while from its corpus in the repository
//! (new inputs go to a scratch directory, so the run leaves the repository as it was), and
//! reports how many inputs each executed. A crash or a failed assertion is a finding: the
//! input is kept under fuzz/artifacts and the run fails.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The fuzz targets of fuzz/Cargo.toml.
const TARGETS: &[&str] = &["decode", "lines"];

#[allow(clippy::print_stderr)] // The report is for the operator running it.
pub(crate) fn fuzz(root: &Path, seconds: u32) -> Result<()> {
    for target in TARGETS {
        let scratch = std::env::temp_dir().join(format!("catalog-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
        let corpus = root.join("fuzz/corpus").join(target);
        eprintln!("xtask: fuzzing {target} for {seconds} s from {}", corpus.display());
        // cargo-fuzz builds with libFuzzer and sanitizers, which need nightly flags; stable
        // rustc accepts them with RUSTC_BOOTSTRAP (the machine has only the stable toolchain).
        let output = Command::new("cargo")
            .args(["fuzz", "run", target])
            .arg(&scratch)
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1"])
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(root)
            .output()
            .context("running cargo fuzz (install it with `cargo install cargo-fuzz`)")?;
        let _ = std::fs::remove_dir_all(&scratch);
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            bail!(
                "fuzz target {target} found a problem (input kept under fuzz/artifacts/{target}):\n{}",
                tail.join("\n")
            );
        }
        let stat = |name: &str| {
            log.lines()
                .find_map(|line| line.strip_prefix(&format!("stat::{name}:")))
                .map(|value| value.trim().to_owned())
                .unwrap_or_else(|| "?".to_owned())
        };
        eprintln!(
            "xtask: fuzz/{target}: {} executions in {seconds} s, {} new corpus inputs this run, peak RSS {} MB, 0 findings",
            stat("number_of_executed_units"),
            stat("new_units_added"),
            stat("peak_rss_mb"),
        );
    }
    Ok(())
}

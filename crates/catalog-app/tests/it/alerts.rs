//! The operations files are checked against the worker: docs/alerts.yml passes `promtool check
//! rules` and its unit tests (docs/alerts.test.yml), and every catalog metric that the alerts
//! and the Grafana dashboard name is one the worker exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use catalog_app::Metrics;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// promtool from `CATALOG_PROMTOOL` or PATH. `.ci/run` installs it (Debian's prometheus
/// package, unpacked into its cache); a machine without it fails here, never skips.
fn promtool(args: &[&str]) -> String {
    let program = std::env::var("CATALOG_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let output = Command::new(&program).args(args).current_dir(docs()).output().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}): install it (`bash .ci/run` does) or set CATALOG_PROMTOOL")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

/// Every `catalog_*` metric name in `text`, with a histogram's `_bucket`/`_sum`/`_count`
/// suffix taken off when the worker exports the histogram itself.
fn metric_names(text: &str, exported: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("catalog_") {
        let start = at + found;
        let preceded_by_word = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |length| start + length);
        if !preceded_by_word {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|base| exported.contains(base)))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        at = end;
    }
    names
}

fn assert_every_metric_is_exported(file: &str) {
    let metrics = Metrics::new();
    let exported: BTreeSet<&str> = metrics.family_names().iter().map(String::as_str).collect();
    let text = std::fs::read_to_string(docs().join(file)).expect("the file is in docs/");
    let named = metric_names(&text, &exported);
    assert!(named.len() >= 10, "{file} names {} catalog metrics: {named:?}", named.len());
    let unknown: Vec<&String> = named.iter().filter(|name| !exported.contains(name.as_str())).collect();
    assert!(unknown.is_empty(), "{file} names metrics the worker does not export: {unknown:?}");
}

#[test]
fn the_alert_rules_are_valid_and_fire_on_their_failure_mode() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_runbook_that_exists() {
    let alerts = std::fs::read_to_string(docs().join("alerts.yml")).expect("docs/alerts.yml");
    let operations = std::fs::read_to_string(docs().join("operations.md")).expect("docs/operations.md");
    let names: Vec<&str> =
        alerts.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).map(str::trim).collect();
    assert!(names.len() >= 19, "{} alerts", names.len());
    for name in names {
        let anchor = name.to_lowercase();
        assert!(alerts.contains(&format!("runbook: docs/operations.md#{anchor}")), "{name} links its runbook");
        assert!(operations.contains(&format!("\n### {name}\n")), "docs/operations.md has a runbook for {name}");
    }
}

#[test]
fn alerts_name_only_metrics_the_worker_exports() {
    assert_every_metric_is_exported("alerts.yml");
}

#[test]
fn the_dashboard_names_only_metrics_the_worker_exports() {
    assert_every_metric_is_exported("grafana/catalog-sync.json");
}

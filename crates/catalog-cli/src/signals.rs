//! The launch signals' targets, owners and periods, and the gate's, as options: the worker
//! judges with them and the admin service shows and gates with the same ones.

use catalog_core::{GateSettings, SignalSettings, Target, Threshold};
use chrono::Duration;
use clap::Args;

use crate::options::naming_env;

/// Targets, owners and measuring periods of the four launch signals (decision 0017). Global,
/// as the store options are: `admin-api gate check` takes them after `check`.
#[derive(Debug, Clone, Args)]
pub struct SignalArgs {
    /// Stale items are green while their share of a tenant's items is below this (above 0, at
    /// most 1: no share is below 0).
    #[arg(long, env = "CATALOG_STALE_ITEMS_TARGET", default_value_t = 0.01, value_parser = naming_env(parse_share_above_0), global = true)]
    pub stale_items_target: f64,

    /// The team that answers for stale items.
    #[arg(long, env = "CATALOG_STALE_ITEMS_OWNER", default_value = "storefront-integration", global = true)]
    pub stale_items_owner: String,

    /// Queue lag is green while below this many seconds (more than 0).
    #[arg(long, env = "CATALOG_QUEUE_LAG_TARGET_SECS", default_value_t = 90.0, value_parser = naming_env(parse_positive_seconds), global = true)]
    pub queue_lag_target_secs: f64,

    /// The team that answers for queue lag.
    #[arg(long, env = "CATALOG_QUEUE_LAG_OWNER", default_value = "catalog-sync-oncall", global = true)]
    pub queue_lag_owner: String,

    /// Publish errors are green while failed attempts ÷ attempts is below this (above 0, at
    /// most 1: no share is below 0).
    #[arg(long, env = "CATALOG_PUBLISH_ERRORS_TARGET", default_value_t = 0.005, value_parser = naming_env(parse_share_above_0), global = true)]
    pub publish_errors_target: f64,

    /// The team that answers for publish errors.
    #[arg(long, env = "CATALOG_PUBLISH_ERRORS_OWNER", default_value = "storefront-integration", global = true)]
    pub publish_errors_owner: String,

    /// Trace coverage is green while at least this share of items re-derives (0 to 1).
    #[arg(long, env = "CATALOG_TRACE_COVERAGE_TARGET", default_value_t = 1.0, value_parser = naming_env(parse_share), global = true)]
    pub trace_coverage_target: f64,

    /// The team that answers for trace coverage.
    #[arg(long, env = "CATALOG_TRACE_COVERAGE_OWNER", default_value = "catalog-support", global = true)]
    pub trace_coverage_owner: String,

    /// An item changed less than this many seconds ago is not stale yet; 0: none, an item is
    /// stale from its change until every channel accepted it.
    #[arg(long, env = "CATALOG_STALE_GRACE_SECS", default_value_t = 60, global = true)]
    pub stale_grace_secs: u32,

    /// Publish errors are counted over a sliding window of this many seconds (at least 1: a
    /// window of 0 counts no attempt, and the signal is green whatever fails).
    #[arg(long, env = "CATALOG_PUBLISH_WINDOW_SECS", default_value_t = 900, value_parser = naming_env(clap::value_parser!(u32).range(1..)), global = true)]
    pub publish_window_secs: u32,

    /// A source partition not reported for this many seconds lags by its silence (at least 1,
    /// and above the worker's `--progress-interval-secs`, or every partition lags between two
    /// reports).
    #[arg(long, env = "CATALOG_STALL_AFTER_SECS", default_value_t = 30, value_parser = naming_env(clap::value_parser!(u32).range(1..)), global = true)]
    pub stall_after_secs: u32,

    /// An item changed less than this many seconds ago need not be traced yet; 0: none, an
    /// item is untraced from its change until the tracer checked it.
    #[arg(long, env = "CATALOG_TRACE_GRACE_SECS", default_value_t = 300, global = true)]
    pub trace_grace_secs: u32,
}

impl SignalArgs {
    pub fn settings(&self) -> SignalSettings {
        let target = |threshold, owner: &str| Target { threshold, owner: owner.to_owned() };
        SignalSettings {
            stale_items: target(Threshold::Below(self.stale_items_target), &self.stale_items_owner),
            queue_lag: target(Threshold::Below(self.queue_lag_target_secs), &self.queue_lag_owner),
            publish_errors: target(Threshold::Below(self.publish_errors_target), &self.publish_errors_owner),
            trace_coverage: target(Threshold::AtLeast(self.trace_coverage_target), &self.trace_coverage_owner),
            stale_grace: Duration::seconds(self.stale_grace_secs.into()),
            publish_window: Duration::seconds(self.publish_window_secs.into()),
            stall_after: Duration::seconds(self.stall_after_secs.into()),
            trace_grace: Duration::seconds(self.trace_grace_secs.into()),
        }
    }
}

/// A ratio target a share must reach (`--trace-coverage-target`): a finite number from 0 to 1.
fn parse_share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("expected a share from 0 to 1, e.g. 0.99".to_owned()),
    }
}

/// A ratio target a share must stay below (`--stale-items-target`, `--publish-errors-target`):
/// a finite number above 0, at most 1. At 0 the signal is red for ever, the gate closed.
fn parse_share_above_0(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err("expected a share above 0, at most 1, e.g. 0.01 (a share below 0 is none: red for ever)".to_owned()),
    }
}

/// A target in seconds (`--queue-lag-target-secs`): a finite number above 0.
fn parse_positive_seconds(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(seconds),
        _ => Err("expected a number of seconds above 0, e.g. 90".to_owned()),
    }
}

/// What the launch gate asks before widening or opening a rollout. Global, as the store
/// options are.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Signals must have stayed green this many hours, without a gap, to widen or open.
    #[arg(long, env = "CATALOG_GATE_GREEN_HOURS", default_value_t = 24, global = true)]
    pub gate_green_hours: u32,

    /// Traces support must sign off before widening or opening.
    #[arg(long, env = "CATALOG_GATE_SIGN_OFFS", default_value_t = 3, global = true)]
    pub gate_sign_offs: usize,

    /// Two signal samples further apart than this many seconds leave a gap in the green run.
    #[arg(long, env = "CATALOG_GATE_MAX_SAMPLE_GAP_SECS", default_value_t = 300, global = true)]
    pub gate_max_sample_gap_secs: u32,
}

impl GateArgs {
    pub fn settings(&self) -> GateSettings {
        GateSettings {
            green_for: Duration::hours(self.gate_green_hours.into()),
            sign_offs: self.gate_sign_offs,
            max_sample_gap: Duration::seconds(self.gate_max_sample_gap_secs.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::SignalArgs;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        signals: SignalArgs,
    }

    fn parsed(arguments: &[&str]) -> Result<SignalArgs, String> {
        let arguments = [&["worker"][..], arguments].concat();
        Cli::try_parse_from(arguments).map(|cli| cli.signals).map_err(|error| error.to_string())
    }

    /// The ratio targets are shares (0 to 1; above 0 for a share that must stay below it), the
    /// queue lag target a number of seconds above 0: NaN, an infinity, a negative number, a
    /// share above 1, or 0 for a share that must stay below it, would make a signal green or
    /// red for ever. A refusal names the flag and its variable.
    #[test]
    fn a_target_outside_its_range_is_refused() {
        let given =
            parsed(&["--stale-items-target", "0.5", "--publish-errors-target", "1", "--trace-coverage-target", "0"]);
        let given = given.expect("shares");
        assert_eq!(
            (given.stale_items_target, given.publish_errors_target, given.trace_coverage_target),
            (0.5, 1.0, 0.0)
        );
        assert_eq!(parsed(&["--queue-lag-target-secs", "0.5"]).expect("seconds").queue_lag_target_secs, 0.5);
        let defaults = parsed(&[]).expect("the defaults");
        assert_eq!(defaults.settings(), catalog_core::SignalSettings::default());
        for (flag, variable, values) in [
            ("--stale-items-target", "CATALOG_STALE_ITEMS_TARGET", &["NaN", "-0.1", "0", "1.5", "inf", "1%"][..]),
            ("--publish-errors-target", "CATALOG_PUBLISH_ERRORS_TARGET", &["nan", "-1", "0", "2"][..]),
            ("--trace-coverage-target", "CATALOG_TRACE_COVERAGE_TARGET", &["NaN", "-0.5", "1.01"][..]),
            ("--queue-lag-target-secs", "CATALOG_QUEUE_LAG_TARGET_SECS", &["NaN", "0", "-5", "inf"][..]),
        ] {
            for value in values {
                let error = parsed(&[&format!("{flag}={value}")]).expect_err(&format!("{flag} {value} is refused"));
                assert!(error.contains(flag) && error.contains(variable), "{error}");
            }
        }
    }

    /// A publish window of 0 counts no attempt (publish errors green whatever fails), a
    /// stall-after of 0 makes every partition lag by its silence (queue lag red): refused. A
    /// grace of 0 is none, which is a setting.
    #[test]
    fn a_period_of_zero_is_refused_where_it_means_nothing() {
        for (flag, variable) in [
            ("--publish-window-secs", "CATALOG_PUBLISH_WINDOW_SECS"),
            ("--stall-after-secs", "CATALOG_STALL_AFTER_SECS"),
        ] {
            let error = parsed(&[flag, "0"]).expect_err("0 is refused");
            assert!(error.contains(flag) && error.contains(variable), "{error}");
            parsed(&[flag, "1"]).expect("1 s is a period");
        }
        let graces = parsed(&["--stale-grace-secs", "0", "--trace-grace-secs", "0"]).expect("no grace");
        assert_eq!((graces.stale_grace_secs, graces.trace_grace_secs), (0, 0));
    }
}

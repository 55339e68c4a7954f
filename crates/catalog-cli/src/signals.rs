//! The launch signals' targets, owners and periods, and the gate's, as options: the worker
//! judges with them and the admin service shows and gates with the same ones.

use catalog_core::{GateSettings, SignalSettings, Target, Threshold};
use chrono::Duration;
use clap::Args;

/// Targets, owners and measuring periods of the four launch signals (decision 0017). Global,
/// as the store options are: `admin-api gate check` takes them after `check`.
#[derive(Debug, Clone, Args)]
pub struct SignalArgs {
    /// Stale items are green while their share of a tenant's items is below this (0 to 1).
    #[arg(long, env = "CATALOG_STALE_ITEMS_TARGET", default_value_t = 0.01, global = true)]
    pub stale_items_target: f64,

    /// The team that answers for stale items.
    #[arg(long, env = "CATALOG_STALE_ITEMS_OWNER", default_value = "storefront-integration", global = true)]
    pub stale_items_owner: String,

    /// Queue lag is green while below this many seconds.
    #[arg(long, env = "CATALOG_QUEUE_LAG_TARGET_SECS", default_value_t = 90.0, global = true)]
    pub queue_lag_target_secs: f64,

    /// The team that answers for queue lag.
    #[arg(long, env = "CATALOG_QUEUE_LAG_OWNER", default_value = "catalog-sync-oncall", global = true)]
    pub queue_lag_owner: String,

    /// Publish errors are green while failed attempts ÷ attempts is below this (0 to 1).
    #[arg(long, env = "CATALOG_PUBLISH_ERRORS_TARGET", default_value_t = 0.005, global = true)]
    pub publish_errors_target: f64,

    /// The team that answers for publish errors.
    #[arg(long, env = "CATALOG_PUBLISH_ERRORS_OWNER", default_value = "storefront-integration", global = true)]
    pub publish_errors_owner: String,

    /// Trace coverage is green while at least this share of items re-derives (0 to 1).
    #[arg(long, env = "CATALOG_TRACE_COVERAGE_TARGET", default_value_t = 1.0, global = true)]
    pub trace_coverage_target: f64,

    /// The team that answers for trace coverage.
    #[arg(long, env = "CATALOG_TRACE_COVERAGE_OWNER", default_value = "catalog-support", global = true)]
    pub trace_coverage_owner: String,

    /// An item changed less than this many seconds ago is not stale yet.
    #[arg(long, env = "CATALOG_STALE_GRACE_SECS", default_value_t = 60, global = true)]
    pub stale_grace_secs: u32,

    /// Publish errors are counted over a sliding window of this many seconds.
    #[arg(long, env = "CATALOG_PUBLISH_WINDOW_SECS", default_value_t = 900, global = true)]
    pub publish_window_secs: u32,

    /// A source partition not reported for this many seconds lags by its silence.
    #[arg(long, env = "CATALOG_STALL_AFTER_SECS", default_value_t = 30, global = true)]
    pub stall_after_secs: u32,

    /// An item changed less than this many seconds ago need not be traced yet.
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

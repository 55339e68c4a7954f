//! The metrics of journal retention (decision 0019): what each pass archived, dropped and
//! pruned, and how passes failed.

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec};

/// What journal retention did, counted pass after pass.
#[derive(Debug, Clone)]
pub struct RetentionMetrics {
    /// Journal segments (Postgres partitions, SQLite days) archived and dropped by retention.
    pub journal_segments_dropped: IntCounter,
    /// Journal rows archived before they were dropped.
    pub journal_rows_archived: IntCounter,
    /// Journal segments past the retention kept because they hold held events, by reason.
    pub journal_segments_kept: IntGaugeVec,
    /// Event id claims forgotten past the dedupe horizon.
    pub claims_pruned: IntCounter,
    /// Days of publish attempts dropped past the retention (decision 0030).
    pub attempt_days_dropped: IntCounter,
    /// Drifts deleted past the retention.
    pub drifts_pruned: IntCounter,
    pub dead_letters_pruned: IntCounter,
    pub feed_windows_compacted: IntCounter,
    /// Retention passes that failed, by failure class (`retryable`, `needs_operator`, …).
    pub retention_failures: IntCounterVec,
    /// Rounds of the signals sampler whose drop of samples past their keep failed.
    pub signal_samples_prune_failures: IntCounter,
}

impl RetentionMetrics {
    /// Registers each through the registry's constructors.
    pub(super) fn new(
        counter: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec,
        unlabelled: &dyn Fn(&str, &str) -> IntCounter,
        gauge: &dyn Fn(&str, &str, &[&str]) -> IntGaugeVec,
    ) -> Self {
        let journal_segments_dropped = unlabelled(
            "catalog_journal_segments_dropped_total",
            "Journal segments (partitions, days) archived and dropped by retention.",
        );
        let journal_rows_archived =
            unlabelled("catalog_journal_rows_archived_total", "Journal rows archived before they were dropped.");
        let journal_segments_kept = gauge(
            "catalog_journal_segments_kept_past_retention",
            "Journal segments past the retention kept because they hold pending work, by reason.",
            &["reason"],
        );
        let claims_pruned =
            unlabelled("catalog_claims_pruned_total", "Event id claims forgotten past the dedupe horizon.");
        let attempt_days_dropped = unlabelled(
            "catalog_publish_attempt_days_dropped_total",
            "Days of publish attempts dropped past the retention (not archived).",
        );
        let drifts_pruned = unlabelled("catalog_drifts_pruned_total", "Drifts deleted past the retention.");
        let dead_letters_pruned = unlabelled(
            "catalog_dead_letters_pruned_total",
            "Dead letters resolved before the retention's cutoff, deleted (open ones are kept).",
        );
        let feed_windows_compacted = unlabelled(
            "catalog_feed_windows_compacted_total",
            "Feed window rows merged away: old windows that overlap or touch kept as one row.",
        );
        let retention_failures =
            counter("catalog_retention_failures_total", "Journal retention passes that failed, by class.", &["class"]);
        let signal_samples_prune_failures = unlabelled(
            "catalog_signal_samples_prune_failures_total",
            "Sampler rounds whose drop of signal samples past --signals-keep-days failed (the round's samples are kept and its gauges set; the next round drops them).",
        );
        Self {
            journal_segments_dropped,
            journal_rows_archived,
            journal_segments_kept,
            claims_pruned,
            attempt_days_dropped,
            drifts_pruned,
            dead_letters_pruned,
            feed_windows_compacted,
            retention_failures,
            signal_samples_prune_failures,
        }
    }
}

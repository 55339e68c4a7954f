//! Prometheus metrics, named after what can go wrong at each handoff. Each is emitted once,
//! where the thing happens; label values are bounded (outcomes, reasons, partitions, channels).

mod retention;

use std::cell::RefCell;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub use retention::RetentionMetrics;

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Every family registered, sampled or not, so alert rules and dashboards can be checked
    /// against what the worker really exports.
    family_names: Vec<String>,
    /// Events by outcome and reason (`rejected`/`malformed_sku`, `applied`/`clock_drift_clamped`…).
    pub events: IntCounterVec,
    /// Redeliveries of an event id already journaled, by whether the payload differed.
    pub redeliveries: IntCounterVec,
    /// Time to make one batch durable, retries included.
    pub batch_apply_seconds: HistogramVec,
    /// Batches whose commit went unconfirmed but the checkpoints showed durable, by source kind.
    pub batches_commit_unconfirmed: IntCounterVec,
    /// The events of those batches: decided, but counted here rather than in `events`.
    pub events_commit_unconfirmed: IntCounterVec,
    /// Store failures that were retried, by kind (`unavailable`, `conflict`, …).
    pub store_retries: IntCounterVec,
    /// How long the longest-failing source partition's batch has failed to become durable,
    /// every attempt since its first failure failing (0 while every batch commits): a store
    /// that answers reads but refuses writes (a read-only standby after a failover, a full
    /// disk), or refuses one partition's batch, retried with backoff.
    pub store_writes_failing_seconds: IntGauge,
    /// Items whose quantity changed (each gets a new version and a publish).
    pub items_changed: IntCounter,
    /// Now minus the broker timestamp of the last applied message, per partition.
    pub queue_lag_seconds: IntGaugeVec,
    /// High watermark minus the next offset to apply, per partition.
    pub queue_lag_messages: IntGaugeVec,
    /// Messages another worker (or run of a feed) applied first, fenced off, per partition.
    pub skipped_below_checkpoint: IntCounterVec,
    /// Messages read again below where the reading stands and skipped, per partition and reason.
    pub rereads: IntCounterVec,
    /// Failures inside a source, by kind of source and where they happened (`kafka`/`commit`…).
    pub source_errors: IntCounterVec,
    /// Positions deleted from a source (retention) before they were applied, per partition.
    pub offset_gaps: IntCounterVec,
    pub checkpoints_beyond_end: IntCounterVec,
    /// Batches of a topic since created again (their checkpoint not written), per partition.
    pub batches_of_a_replaced_topic: IntCounterVec,
    /// `traceparent` headers dropped as invalid, by reason (`malformed`, `version_ff`, …).
    pub traceparent_invalid: IntCounterVec,
    /// Publish attempts by channel and result.
    pub publish_attempts: IntCounterVec,
    /// Time from sending a publish to its answer, per channel.
    pub publish_latency_seconds: HistogramVec,
    /// Item versions dead-lettered, by channel and reason.
    pub dead_letters: IntCounterVec,
    /// Dead letters resolved by a version at least as new being taken, by channel and resolution.
    pub dead_letters_resolved: IntCounterVec,
    /// What auto-heal did to dead letters, by channel and result (`requeued`, `quarantined`).
    pub dead_letter_heals: IntCounterVec,
    /// Dead letters not resolved, quarantined ones included, per channel.
    pub dead_letters_open: IntGaugeVec,
    /// Dead letters auto-heal gave up on (an operator must look), per channel.
    pub dead_letters_quarantined: IntGaugeVec,
    /// Claimed versions not sent because their lease ran too short, per channel (claimed again).
    pub publish_lease_ran_out: IntCounterVec,
    /// Sends a channel refused for want of valid credentials, by channel and reason
    /// (`token_refused`, `unauthorized`): the channel is held, its items wait unspent.
    pub publish_credentials_refused: IntCounterVec,
    /// Renewals of the claims of rounds that outlast the configured lease (marketplace
    /// feeds), by channel and result: `held`, `lapsed` (some claims had passed their lease,
    /// another worker may be sending them), `failed` (the store did not answer).
    pub publish_lease_renewals: IntCounterVec,
    /// Publish rounds recorded, by channel and whether the claim came back `full` or `partial`.
    pub publish_rounds: IntCounterVec,
    /// Where each round's time went, by channel and step (`claim`, `send`, `record`).
    pub publish_round_seconds: HistogramVec,
    /// Items waiting in the outbox (each once, at its newest version), per channel.
    pub outbox_pending: IntGaugeVec,
    /// Seconds since the longest-waiting item's oldest unsent version was queued, per channel.
    pub outbox_oldest_seconds: IntGaugeVec,
    /// Items whose published version on a channel lags their catalog version.
    pub stale_items: IntGaugeVec,
    /// Drift reconciliation found, by channel and kind (`missing`, `quantity_differs`, …).
    pub drifts_detected: IntCounterVec,
    /// Drifts corrected with a new item version, per channel.
    pub drifts_corrected: IntCounterVec,
    /// Drifts found again within an hour of their correction, per channel (`CatalogDriftNotHealing`).
    pub drifts_recurring: IntCounterVec,
    /// Differences not corrected: the item moved on since the sweep read it, per channel.
    pub drift_corrections_moved_on: IntCounterVec,
    /// Reconciliation sweeps by channel and result (`complete`, or the failure class).
    pub reconcile_sweeps: IntCounterVec,
    /// Time one reconciliation sweep took, per channel.
    pub reconcile_sweep_seconds: HistogramVec,
    /// Read-back requests that failed, by channel and kind (`throttled`, `transient`, …).
    pub reconcile_read_errors: IntCounterVec,
    /// Each launch signal's value per tenant (`all`: overall; `tenant:all`: the tenant `all`), as last
    /// judged: a ratio for `stale_items`, `publish_errors` and `trace_coverage`, seconds for `queue_lag`.
    pub signal_value: GaugeVec,
    /// 1 while a launch signal is green, 0 while red, per tenant (`all`: overall; `tenant:all`: the tenant `all`).
    pub signal_green: IntGaugeVec,
    /// When a report last read what its gauges show, by report (`signals`, `outbox`), in
    /// seconds since the epoch: a report whose reads fail keeps its gauges as last read, and
    /// this says how old they are.
    pub report_succeeded_at: IntGaugeVec,
    /// Items the tracer re-derived from the journal, by result (`traced`, or the gap found).
    pub trace_checks: IntCounterVec,
    /// Journal rows the tracer read to check items: what its checks cost, bounded by how far
    /// back each offer's latest snapshot lies, not by the journal's size.
    pub trace_rows_read: IntCounter,
    /// Records pulled from supplier feeds, per feed (`tenant/supplier`) and result (`valid`,
    /// or `rejected` by the rules before the store saw them).
    pub feed_records: IntCounterVec,
    /// Pages pulled from supplier feeds, per feed.
    pub feed_pages: IntCounterVec,
    /// Feed requests asked again, by reason (`throttled`, `server_error`, `timeout`,
    /// `connection`, `invalid_page`, `cursor_expired`).
    pub feed_retries: IntCounterVec,
    /// Now minus the end of the feed's newest completed window, per feed.
    pub feed_window_lag_seconds: IntGaugeVec,
    /// 1 while a feed's last run failed (its pull dead letter is open), else 0, per feed;
    /// read from the store, so every worker reports every feed.
    pub feed_failing: IntGaugeVec,
    /// 1 for a feed's state by its sync frequency (`current`, `behind`, `stale`, or
    /// `not_live` before its go-live date), 0 for the others, per feed and state.
    pub feed_state: IntGaugeVec,
    /// 1 while a feed is switched on (one switched off goes stale by design), else 0, per feed.
    pub feed_sync_enabled: IntGaugeVec,
    /// Differences a full refresh found against the supplier's snapshot (each corrected as
    /// an event), per feed and kind (`quantity_differs`, `not_listed`, `not_stored`).
    pub feed_drift: IntCounterVec,
    /// What journal retention did and how its passes failed (`retention::RetentionMetrics`).
    pub retention: RetentionMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let family_names = RefCell::new(Vec::new());
        let register = |metric: Box<dyn Collector>| {
            family_names.borrow_mut().extend(metric.desc().iter().map(|desc| desc.fq_name.clone()));
            registry.register(metric).expect("each metric is registered once");
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
            register(Box::new(metric.clone()));
            metric
        };
        let unlabelled = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("static metric definition is valid");
            register(Box::new(metric.clone()));
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
            register(Box::new(metric.clone()));
            metric
        };
        let events = counter("catalog_events_total", "Supplier events by outcome and reason.", &["outcome", "reason"]);
        let redeliveries =
            counter("catalog_redeliveries_total", "Deliveries of an event id already journaled.", &["payload_differs"]);
        let batch_apply_seconds = HistogramVec::new(
            HistogramOpts::new("catalog_batch_apply_seconds", "Time to make one batch durable, retries included.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["source"],
        )
        .expect("static metric definition is valid");
        register(Box::new(batch_apply_seconds.clone()));
        let store_retries = counter("catalog_store_retries_total", "Store failures retried, by kind.", &["kind"]);
        let store_writes_failing_seconds = IntGauge::new(
            "catalog_store_writes_failing_seconds",
            "How long the longest-failing source partition's batch has failed to become durable, no attempt since its first failure succeeding; 0 while every batch commits.",
        )
        .expect("static metric definition is valid");
        register(Box::new(store_writes_failing_seconds.clone()));
        let batches_commit_unconfirmed = counter(
            "catalog_batches_commit_unconfirmed_total",
            "Batches whose commit failed to confirm but whose checkpoint the store holds: durable, not applied again.",
            &["source"],
        );
        let events_commit_unconfirmed = counter(
            "catalog_events_commit_unconfirmed_total",
            "Events of batches whose commit failed to confirm: decided (outcomes in the journal), not in catalog_events_total.",
            &["source"],
        );
        let items_changed = unlabelled("catalog_items_changed_total", "Items whose quantity changed.");
        let queue_lag_seconds = gauge(
            "catalog_queue_lag_seconds",
            "Now minus the broker timestamp of the last applied message; 0 once a batch reaches the partition's end, or at its assignment when nothing waits.",
            &["partition"],
        );
        let queue_lag_messages = gauge(
            "catalog_queue_lag_messages",
            "High watermark minus the next offset to apply, from the partition's assignment on.",
            &["partition"],
        );
        let skipped_below_checkpoint = counter(
            "catalog_skipped_below_checkpoint_total",
            "Messages another worker (or another run of a feed) applied first: skipped by the store's fence.",
            &["partition"],
        );
        let rereads = counter(
            "catalog_rereads_total",
            "Messages a source read again below where its reading stands and skipped, by reason: start_check (stepping back to check where a fetch starts, or a group offset behind the checkpoint), refetch (delivered again while reading).",
            &["partition", "reason"],
        );
        let source_errors = counter(
            "catalog_source_errors_total",
            "Failures inside a source, by kind of source, where they happened and their class (retryable, needs_supplier, needs_operator, fatal).",
            &["source", "operation", "class"],
        );
        let offset_gaps = counter(
            "catalog_offset_gaps_total",
            "Positions deleted from a source (retention) before they were applied.",
            &["partition"],
        );
        let checkpoints_beyond_end = counter(
            "catalog_checkpoints_beyond_partition_end_total",
            "Stored checkpoints of offsets the broker no longer holds (beyond their partition's end: \
             a topic truncated or recreated; or written under a topic id the topic no longer has: \
             recreated) moved back to its low watermark, by partition.",
            &["partition"],
        );
        let batches_of_a_replaced_topic = counter(
            "catalog_batches_of_a_replaced_topic_total",
            "Batches of a topic since created again (a member still reading the old one after the checkpoint moved back to the new one), by partition: applied by their event ids, neither fenced by the checkpoint nor moving it.",
            &["partition"],
        );
        let traceparent_invalid = counter(
            "catalog_traceparent_invalid_total",
            "Invalid traceparent headers, dropped (the event is applied without one), by reason.",
            &["reason"],
        );
        let publish_attempts = counter(
            "catalog_publish_attempts_total",
            "Publish attempts by channel and result.",
            &["channel", "result"],
        );
        let publish_latency_seconds = HistogramVec::new(
            HistogramOpts::new("catalog_publish_latency_seconds", "Time from sending a publish to its answer.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["channel"],
        )
        .expect("static metric definition is valid");
        register(Box::new(publish_latency_seconds.clone()));
        let dead_letters = counter(
            "catalog_dead_letters_total",
            "Item versions dead-lettered, by channel and reason.",
            &["channel", "reason"],
        );
        let dead_letters_resolved = counter(
            "catalog_dead_letters_resolved_total",
            "Dead letters resolved because the channel took a version at least as new.",
            &["channel", "resolution"],
        );
        let dead_letter_heals = counter(
            "catalog_dead_letter_heals_total",
            "Dead letters auto-heal requeued or quarantined, by channel and result.",
            &["channel", "result"],
        );
        let dead_letters_open =
            gauge("catalog_dead_letters_open", "Dead letters not resolved, quarantined ones included.", &["channel"]);
        let dead_letters_quarantined = gauge(
            "catalog_dead_letters_quarantined",
            "Dead letters auto-heal gave up on: an operator must look.",
            &["channel"],
        );
        let publish_lease_ran_out = counter(
            "catalog_publish_lease_ran_out_total",
            "Claimed item versions not sent because their lease had run too short.",
            &["channel"],
        );
        let publish_credentials_refused = counter(
            "catalog_publish_credentials_refused_total",
            "Sends a channel refused for want of valid credentials (token_refused, unauthorized): the channel is held and its items wait, spending no attempt, until an operator renews the credentials.",
            &["channel", "reason"],
        );
        let publish_lease_renewals = counter(
            "catalog_publish_lease_renewals_total",
            "Renewals of the claims of publish rounds that outlast the lease (marketplace feeds), by result: held, lapsed, failed.",
            &["channel", "result"],
        );
        let publish_rounds = counter(
            "catalog_publish_rounds_total",
            "Publish rounds recorded, by channel and whether their claim came back full (the channel is behind) or partial.",
            &["channel", "claim"],
        );
        let publish_round_seconds = HistogramVec::new(
            HistogramOpts::new(
                "catalog_publish_round_seconds",
                "Time each publish round spent claiming, sending and recording, by step.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 1800.0]),
            &["channel", "step"],
        )
        .expect("static metric definition is valid");
        register(Box::new(publish_round_seconds.clone()));
        let outbox_pending =
            gauge("catalog_outbox_pending", "Items waiting to be published, each at its newest version.", &["channel"]);
        let outbox_oldest_seconds = gauge(
            "catalog_outbox_oldest_seconds",
            "Seconds since the longest-waiting item's oldest unsent version was queued.",
            &["channel"],
        );
        let stale_items =
            gauge("catalog_stale_items", "Items whose published version lags their catalog version.", &["channel"]);
        let drifts_detected = counter(
            "catalog_drifts_detected_total",
            "Drift found by reconciliation: a channel showing other than it accepted, by kind.",
            &["channel", "kind"],
        );
        let drifts_corrected =
            counter("catalog_drifts_corrected_total", "Drifts corrected with a new item version.", &["channel"]);
        let drifts_recurring = counter(
            "catalog_drifts_recurring_total",
            "Drifts found on an item corrected within the hour before: the channel does not keep its corrections.",
            &["channel"],
        );
        let drift_corrections_moved_on = counter(
            "catalog_drift_corrections_moved_on_total",
            "Differences not corrected: the item had a newer version than the sweep read (one in flight, not drift).",
            &["channel"],
        );
        let reconcile_sweeps = counter(
            "catalog_reconcile_sweeps_total",
            "Reconciliation sweeps by result: complete, or the class of the failure that stopped one.",
            &["channel", "result"],
        );
        let reconcile_sweep_seconds = HistogramVec::new(
            HistogramOpts::new("catalog_reconcile_sweep_seconds", "Time one reconciliation sweep took.")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["channel"],
        )
        .expect("static metric definition is valid");
        register(Box::new(reconcile_sweep_seconds.clone()));
        let reconcile_read_errors = counter(
            "catalog_reconcile_read_errors_total",
            "Read-back requests that failed, by kind.",
            &["channel", "kind"],
        );
        let signal_value = GaugeVec::new(
            Opts::new(
                "catalog_signal_value",
                "Each launch signal's value per tenant (all: overall; tenant:all: the tenant all): a ratio, or seconds for queue_lag.",
            ),
            &["tenant", "signal"],
        )
        .expect("static metric definition is valid");
        register(Box::new(signal_value.clone()));
        let signal_green = gauge(
            "catalog_signal_green",
            "1 while a launch signal is green, 0 while red, per tenant (all: overall; tenant:all: the tenant all).",
            &["tenant", "signal"],
        );
        let report_succeeded_at = gauge(
            "catalog_report_last_success_timestamp_seconds",
            "When a report last read what its gauges show (signals, outbox, feeds), seconds since the epoch; \
             its start until its first read succeeds, so one that never succeeds is seen growing old.",
            &["report"],
        );
        let trace_checks = counter(
            "catalog_trace_checks_total",
            "Items re-derived from the journal by the tracer, by result (traced, the gap, or unreadable: its journal could not be read).",
            &["result"],
        );
        let trace_rows_read = unlabelled(
            "catalog_trace_rows_read_total",
            "Journal rows the tracer read to re-derive items (the newest rows of each, enough to settle it).",
        );
        let feed_records = counter(
            "catalog_feed_records_total",
            "Records pulled from supplier feeds, by result.",
            &["feed", "result"],
        );
        let feed_pages = counter("catalog_feed_pages_total", "Pages pulled from supplier feeds.", &["feed"]);
        let feed_retries = counter("catalog_feed_retries_total", "Feed requests asked again, by reason.", &["reason"]);
        let feed_window_lag_seconds = gauge(
            "catalog_feed_window_lag_seconds",
            "Now minus the end of the feed's newest completed window.",
            &["feed"],
        );
        let feed_failing = gauge(
            "catalog_feed_failing",
            "1 while the feed's last run failed (a pull dead letter is open), else 0.",
            &["feed"],
        );
        let feed_state = gauge(
            "catalog_feed_state",
            "1 for the feed's state by its sync frequency (current, behind, stale; not_live before its go-live date), 0 for the others.",
            &["feed", "state"],
        );
        let feed_sync_enabled =
            gauge("catalog_feed_sync_enabled", "1 while the feed is switched on, else 0.", &["feed"]);
        let feed_drift = counter(
            "catalog_feed_drift_total",
            "Differences a full refresh found against the supplier's snapshot, each corrected, by kind.",
            &["feed", "kind"],
        );
        let retention = RetentionMetrics::new(&counter, &unlabelled, &gauge);
        let family_names = family_names.into_inner();
        Self {
            registry,
            family_names,
            events,
            redeliveries,
            batch_apply_seconds,
            batches_commit_unconfirmed,
            events_commit_unconfirmed,
            store_retries,
            store_writes_failing_seconds,
            items_changed,
            queue_lag_seconds,
            queue_lag_messages,
            skipped_below_checkpoint,
            rereads,
            source_errors,
            offset_gaps,
            checkpoints_beyond_end,
            batches_of_a_replaced_topic,
            traceparent_invalid,
            publish_attempts,
            publish_latency_seconds,
            dead_letters,
            dead_letters_resolved,
            dead_letter_heals,
            dead_letters_open,
            dead_letters_quarantined,
            publish_lease_ran_out,
            publish_credentials_refused,
            publish_lease_renewals,
            publish_rounds,
            publish_round_seconds,
            outbox_pending,
            outbox_oldest_seconds,
            stale_items,
            drifts_detected,
            drifts_corrected,
            drifts_recurring,
            drift_corrections_moved_on,
            reconcile_sweeps,
            reconcile_sweep_seconds,
            reconcile_read_errors,
            signal_value,
            signal_green,
            report_succeeded_at,
            trace_checks,
            trace_rows_read,
            feed_records,
            feed_pages,
            feed_retries,
            feed_window_lag_seconds,
            feed_failing,
            feed_state,
            feed_sync_enabled,
            feed_drift,
            retention,
        }
    }

    /// The name of every metric family registered, whether or not it has a sample yet.
    pub fn family_names(&self) -> &[String] {
        &self.family_names
    }

    /// A report read what its gauges show, now.
    pub fn report_succeeded(&self, report: &str) {
        self.report_succeeded_at.with_label_values(&[report]).set(chrono::Utc::now().timestamp());
    }

    /// A report starts: its last success reads as now until its first read, so that one whose
    /// reads fail from the start ages like one whose reads stopped (`CatalogReportsStale`),
    /// where no series at all would never fire.
    pub fn report_started(&self, report: &str) {
        self.report_succeeded(report);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding gathered metrics into memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

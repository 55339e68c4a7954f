//! The catalog-sync worker: wires a source (Kafka, an NDJSON file, stdin) to the store
//! through the application layer's applier, drains the outbox with the publishers, and
//! serves metrics. Everything it runs lives in the crates under it; this is the wiring.

pub mod config;
mod finish;
pub mod http;
pub mod ready;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use catalog_app::{channels, publishing, reconcile, signals, Applier, BatchSink, Metrics, Totals};
use catalog_cli::{open_store, Switch};
use catalog_feed::{FeedSource, OnceScope, SystemClock};
use catalog_file::FileSource;
use catalog_kafka::{ClientOption, KafkaSource, KafkaSourceConfig};
use catalog_store::ReconcileStore;
use futures::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{FeedArgs, SourceSpec, WorkerArgs};
use crate::ready::Readiness;

/// What a run did, for the one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub totals: Totals,
    pub published: u64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n_events: u64 = self.totals.events_by_outcome.values().sum::<u64>() + self.totals.events_unconfirmed;
        write!(f, "summary: events={n_events}")?;
        for outcome in ["applied", "stale", "superseded", "duplicate", "held", "rejected"] {
            write!(f, " {outcome}={}", self.totals.events_by_outcome.get(outcome).copied().unwrap_or(0))?;
        }
        // Only after a commit that failed to confirm: those events' outcomes are in the journal.
        if self.totals.events_unconfirmed > 0 {
            write!(f, " commit_unconfirmed={}", self.totals.events_unconfirmed)?;
        }
        // Only when another worker applied some of what this one read: not decided here.
        if self.totals.events_applied_elsewhere > 0 {
            write!(f, " applied_by_another_worker={}", self.totals.events_applied_elsewhere)?;
        }
        write!(f, " items_changed={} published={}", self.totals.items_changed, self.published)
    }
}

/// How often a pulling worker reports its feeds' state gauges from the store.
const FEED_REPORT_INTERVAL: Duration = Duration::from_secs(15);

/// The pull source: feeds bootstrapped from `--feeds-file`, then pulled once (`--once`) or
/// on their schedules until `shutdown`. `Ok(Some(error))`: a `--once` run some of whose feeds
/// failed; what the others pulled is published before the run reports it.
async fn pull(
    args: &WorkerArgs,
    store: Arc<dyn catalog_store::CatalogStore>,
    sink: Arc<dyn BatchSink>,
    metrics: Metrics,
    shutdown: &CancellationToken,
) -> Result<Option<anyhow::Error>> {
    let source = FeedSource::new(args.pull_settings(), store, sink, metrics, catalog_feed::tokens_from_environment())?;
    if let Some(path) = &args.feeds.feeds_file {
        let feeds = catalog_feed::read_feeds_file(path).with_context(|| format!("reading {}", path.display()))?;
        source.bootstrap(&feeds).await.context("storing the feeds")?;
    }
    if !args.feeds.once {
        return source.run(Arc::new(SystemClock), shutdown.clone()).await.context("pull source").map(|()| None);
    }
    if let (Some(since), Some(until)) = (args.feeds.backfill_since, args.feeds.backfill_until) {
        let asked = source.request_backfill(&args.feeds.only, since, until, "sync-worker --backfill-since").await?;
        tracing::info!(n_feeds = asked.len(), "backfill asked for; running it now");
    }
    let scope = if args.feeds.full { OnceScope::WithFullRefresh } else { OnceScope::Due };
    let report = source.run_once_for(scope, &args.feeds.only, shutdown).await.context("pull source")?;
    tracing::info!(n_feeds = report.n_feeds, n_failed = report.failed.len(), "feeds pulled once");
    Ok(match report.failed.as_slice() {
        [] => None,
        failed => {
            let names: Vec<String> = failed.iter().map(|(feed, error)| format!("{feed}: {error}")).collect();
            Some(anyhow::anyhow!(
                "{} of {} feeds failed (each has a pull dead letter): {}",
                failed.len(),
                report.n_feeds,
                names.join("; ")
            ))
        }
    })
}

/// What clap cannot check, options that make no sense together, refused at start before the
/// store is opened, each flag named with its variable: feed options another source would
/// ignore (`--source kafka --once` consumed for ever); progress reported less often than a
/// silent partition is taken for stalled (queue lag red for good); a tracer that checks no
/// item (trace coverage red for good).
pub fn check_options(args: &WorkerArgs) -> Result<()> {
    let feed_only = pull_only_options(&args.feeds);
    anyhow::ensure!(
        args.source == SourceSpec::Pull || feed_only.is_empty(),
        "{} only {} with --source pull (CATALOG_SOURCE=pull), the supplier feeds: --source {} would ignore {}",
        feed_only.join(", "),
        if feed_only.len() == 1 { "works" } else { "work" },
        args.source,
        if feed_only.len() == 1 { "it" } else { "them" },
    );
    // Judged by this worker only with `--signals on`: an apply-only worker's progress is
    // judged by the workers (or the admin service) that sample, with their own stall-after.
    let (progress, stall_after) = (args.signals.progress_interval_secs, args.signals.targets.stall_after_secs);
    anyhow::ensure!(
        args.signals.signals_mode == Switch::Off || progress < u64::from(stall_after),
        "--progress-interval-secs (CATALOG_PROGRESS_INTERVAL_SECS) {progress} is not under --stall-after-secs \
         (CATALOG_STALL_AFTER_SECS) {stall_after}: every partition would lag by its silence between two reports, \
         queue lag red for good; keep the interval well under"
    );
    let signals = &args.signals;
    anyhow::ensure!(
        signals.signals_mode == Switch::Off || signals.trace_changed_per_round > 0 || signals.trace_sweep_per_round > 0,
        "--trace-changed-per-round (CATALOG_TRACE_CHANGED_PER_ROUND) and --trace-sweep-per-round \
         (CATALOG_TRACE_SWEEP_PER_ROUND) are both 0: the tracer would check no item, trace coverage red for good"
    );
    Ok(())
}

/// The options given that only a pull source reads, each with its variable.
fn pull_only_options(feeds: &FeedArgs) -> Vec<&'static str> {
    let given = [
        (feeds.feeds_file.is_some(), "--feeds-file (CATALOG_FEEDS_FILE)"),
        (feeds.once, "--once (CATALOG_FEED_ONCE)"),
        (feeds.full, "--full (CATALOG_FEED_FULL)"),
        (!feeds.only.is_empty(), "--feed (CATALOG_FEED_ONLY)"),
        (feeds.backfill_since.is_some(), "--backfill-since (CATALOG_FEED_BACKFILL_SINCE)"),
        (feeds.backfill_until.is_some(), "--backfill-until (CATALOG_FEED_BACKFILL_UNTIL)"),
    ];
    given.into_iter().filter_map(|(given, option)| given.then_some(option)).collect()
}

/// Runs the worker until the source ends (files) or `shutdown` fires (Kafka, or a signal),
/// then finishes in-flight batches and, for files, publishes everything before returning.
/// Options that make no sense together are refused first ([`check_options`]).
pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> Result<RunSummary> {
    check_options(&args)?;
    let metrics = Metrics::new();
    let publish_settings = args.publish.settings();
    // A worker that only applies sends nothing: it needs the channels' routes, not their
    // credentials.
    let http_channels = match args.publish.mode {
        Switch::On => channels::http_channels(&publish_settings)?,
        Switch::Off => channels::http_channels_with(&publish_settings, &channels::credentials_unread)?,
    };
    let routes = channels::routes(&http_channels);
    let channel_names: Vec<String> = routes.iter().map(|route| route.name.clone()).collect();
    let store = open_store(&args.store, routes).await?;
    let readiness = Readiness::default();
    let mut services: JoinSet<Result<()>> = JoinSet::new();
    let stop_services = CancellationToken::new();
    if args.metrics_addr != "off" {
        let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
            .await
            .with_context(|| format!("binding --metrics-addr {}", args.metrics_addr))?;
        tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let health = http::Health { metrics: metrics.clone(), readiness: readiness.clone() };
        let stop = stop_services.clone();
        services.spawn(async move { http::serve(listener, health, stop).await.context("metrics server") });
    }
    services
        .spawn(publishing::report_outbox(store.clone(), channel_names, metrics.clone(), stop_services.clone()).map(Ok));
    services.spawn(readiness.clone().watch_store(store.clone(), stop_services.clone()).map(Ok));

    let applier = Arc::new(Applier::new(store.clone(), metrics.clone(), shutdown.clone()));
    readiness.follow_writes(applier.write_health());
    let drained = CancellationToken::new();
    let mut publishers: JoinSet<Result<u64>> = JoinSet::new();
    match args.publish.mode {
        Switch::Off => tracing::info!("--publish off: queuing publishes for other workers, sending none"),
        Switch::On => {
            let work = applier.publish_work();
            let built = channels::build_channels(http_channels)?;
            if args.publish.reconcile == Switch::On {
                let reconcile_store: Arc<dyn ReconcileStore> = store.clone();
                let settings = args.publish.reconcile_settings();
                for reconciler in reconcile::reconcilers(&built, reconcile_store, settings, &metrics, work) {
                    services.spawn(reconciler.run(stop_services.clone()).map(Ok));
                }
            }
            for publisher in publishing::publishers(built, &publish_settings, store.clone(), &metrics, work) {
                let (stop, drained) = (stop_services.clone(), drained.clone());
                let running = readiness.publisher_started();
                publishers.spawn(async move {
                    // Not ready from the moment the task ends, however it ends.
                    let _running = running;
                    Ok(publisher.run(stop, drained).await?)
                });
            }
            let heal = publishing::heal_dead_letters(
                store.clone(),
                args.publish.heal_settings(),
                metrics.clone(),
                work.clone(),
                stop_services.clone(),
            );
            services.spawn(heal.map(Ok));
        }
    }

    // Every worker reports its source's progress, `--signals off` too: queue lag, judged by
    // the workers that sample, must see the partitions that workers only applying hold.
    let progress = signals::report_progress(
        applier.clone(),
        store.clone(),
        args.signals.progress_interval(),
        stop_services.clone(),
    );
    services.spawn(progress.map(Ok));
    if args.signals.signals_mode == Switch::On {
        let sampler = signals::Sampler::new(store.clone(), args.signals.sampler_settings(), metrics.clone());
        services.spawn(sampler.run(stop_services.clone()).map(Ok));
        let tracer =
            signals::Tracer::new(store.clone(), args.signals.tracer_settings(args.store.clock()), metrics.clone());
        services.spawn(tracer.run(stop_services.clone()).map(Ok));
    }

    if args.retention.journal_retention == Switch::On {
        let settings = args.retention.settings(args.store.clock());
        let (store, metrics, stop) = (store.clone(), metrics.clone(), stop_services.clone());
        // A signal stops a pass at its next safe point; a file run that ends lets it finish.
        let interrupt = shutdown.clone();
        services.spawn(async move {
            catalog_app::retention::run(&*store, settings, metrics, stop, interrupt).await;
            Ok(())
        });
    }

    let sink: Arc<dyn BatchSink> = applier.clone();
    let source_result = match &args.source {
        SourceSpec::Kafka => {
            let mut extra = vec![ClientOption::new("fetch.wait.max.ms", args.kafka.kafka_fetch_wait_ms.to_string())];
            extra.extend(args.kafka.client_options().cloned());
            let config = KafkaSourceConfig {
                brokers: args.kafka.kafka_brokers.clone(),
                topic: args.kafka.topic.clone(),
                group: args.kafka.group.clone(),
                batch_size: args.batch_size,
                batch_max_wait: args.batch_max_wait(),
                session_timeout: Duration::from_millis(args.kafka.kafka_session_timeout_ms),
                start_without_checkpoint: args.kafka.kafka_start_without_checkpoint.into(),
                stalled_partition_after: Duration::from_secs(args.kafka.kafka_stalled_partition_secs),
                max_bytes_in_flight: args.max_bytes_in_flight,
                extra,
            };
            // Option keys only: their values may be secrets.
            let option_keys: Vec<&str> = args.kafka.client_options().map(|option| option.key.as_str()).collect();
            tracing::info!(brokers = %config.brokers, topic = %config.topic, group = %config.group, ?option_keys, "consuming");
            let source = KafkaSource::new(config, sink).context("creating the Kafka consumer")?;
            readiness.follow_brokers(source.broker_status());
            readiness.source_running(true);
            source.run(shutdown.clone()).await.context("kafka source").map(|()| None)
        }
        SourceSpec::File(path) => {
            let source = FileSource {
                path: Some(path.clone()),
                batch_size: args.batch_size,
                batch_max_wait: args.batch_max_wait(),
                max_bytes_in_flight: args.max_bytes_in_flight,
            };
            readiness.source_running(true);
            source.run(sink, shutdown.clone()).await.context("file source").map(|()| None)
        }
        SourceSpec::Pull => {
            let feeds: Arc<dyn catalog_store::FeedStore> = store.clone();
            let report =
                catalog_app::feeds::report_feeds(feeds, metrics.clone(), FEED_REPORT_INTERVAL, stop_services.clone());
            services.spawn(report.map(Ok));
            readiness.source_running(true);
            pull(&args, store.clone(), sink, metrics.clone(), &shutdown).await
        }
        SourceSpec::Stdin => {
            let source = FileSource {
                path: None,
                batch_size: args.batch_size,
                batch_max_wait: args.batch_max_wait(),
                max_bytes_in_flight: args.max_bytes_in_flight,
            };
            readiness.source_running(true);
            source.run(sink, shutdown.clone()).await.context("stdin source").map(|()| None)
        }
    };
    readiness.source_running(false);

    // A finite source ends by itself: publish everything it changed before exiting. After a
    // signal or a failed source, stop publishing now; what is queued stays in the outbox for
    // the next run. A `--once` pull whose some feeds failed publishes what the others pulled.
    if shutdown.is_cancelled() || source_result.is_err() {
        stop_services.cancel();
    }
    drained.cancel();
    let finished = finish::join(publishers, services, &shutdown, &stop_services).await;
    let source_error = match source_result {
        Ok(failed_in_part) => failed_in_part,
        Err(error) => Some(error),
    };
    match finish::one_error(source_error.into_iter().chain(finished.failures).collect()) {
        Some(error) => Err(error),
        None => Ok(RunSummary { totals: applier.totals(), published: finished.published }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_events_of_unconfirmed_commits_and_names_them_only_when_there_are_some() {
        let mut totals = Totals { items_changed: 1, ..Totals::default() };
        totals.events_by_outcome.insert("applied", 2);
        let summary = RunSummary { totals: totals.clone(), published: 1 };
        assert_eq!(
            summary.to_string(),
            "summary: events=2 applied=2 stale=0 superseded=0 duplicate=0 held=0 rejected=0 items_changed=1 published=1"
        );
        totals.events_unconfirmed = 3;
        let summary = RunSummary { totals, published: 1 };
        assert_eq!(
            summary.to_string(),
            "summary: events=5 applied=2 stale=0 superseded=0 duplicate=0 held=0 rejected=0 commit_unconfirmed=3 items_changed=1 published=1"
        );
    }

    #[test]
    fn the_summary_names_messages_another_worker_applied_only_when_there_are_some() {
        let totals = Totals { events_applied_elsewhere: 7_520, ..Totals::default() };
        assert_eq!(
            RunSummary { totals, published: 0 }.to_string(),
            "summary: events=0 applied=0 stale=0 superseded=0 duplicate=0 held=0 rejected=0 applied_by_another_worker=7520 items_changed=0 published=0"
        );
    }
}

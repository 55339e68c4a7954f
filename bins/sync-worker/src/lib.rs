//! The catalog-sync worker: wires a source (Kafka, an NDJSON file, stdin) to the store
//! through the application layer's applier, drains the outbox with the publishers, and
//! serves metrics. Everything it runs lives in the crates under it; this is the wiring.

pub mod config;
pub mod http;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use catalog_app::{channels, publishing, Applier, BatchSink, Metrics, Totals};
use catalog_cli::{open_store, Switch};
use catalog_file::FileSource;
use catalog_kafka::{KafkaSource, KafkaSourceConfig};
use futures::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{SourceSpec, WorkerArgs};

/// What a run did, for the one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub totals: Totals,
    pub published: u64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n_events: u64 = self.totals.events_by_outcome.values().sum();
        write!(f, "summary: events={n_events}")?;
        for outcome in ["applied", "stale", "superseded", "duplicate", "held", "rejected"] {
            write!(f, " {outcome}={}", self.totals.events_by_outcome.get(outcome).copied().unwrap_or(0))?;
        }
        write!(f, " items_changed={} published={}", self.totals.items_changed, self.published)
    }
}

/// Runs the worker until the source ends (files) or `shutdown` fires (Kafka, or a signal),
/// then finishes in-flight batches and, for files, publishes everything before returning.
pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> Result<RunSummary> {
    let metrics = Metrics::new();
    let http_channels = channels::http_channels(&args.publish.settings())?;
    let routes = channels::routes(&http_channels);
    let channel_names: Vec<String> = routes.iter().map(|route| route.name.clone()).collect();
    let store = open_store(&args.store, routes).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let mut services: JoinSet<Result<()>> = JoinSet::new();
    let stop_services = CancellationToken::new();
    if args.metrics_addr != "off" {
        let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
            .await
            .with_context(|| format!("binding --metrics-addr {}", args.metrics_addr))?;
        tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let health = http::Health { metrics: metrics.clone(), ready: Arc::clone(&ready) };
        let stop = stop_services.clone();
        services.spawn(async move { http::serve(listener, health, stop).await.context("metrics server") });
    }
    services
        .spawn(publishing::report_outbox(store.clone(), channel_names, metrics.clone(), stop_services.clone()).map(Ok));

    let applier = Arc::new(Applier::new(store.clone(), metrics.clone(), shutdown.clone()));
    let drained = CancellationToken::new();
    let mut publishers: JoinSet<Result<u64>> = JoinSet::new();
    match args.publish.mode {
        Switch::Off => tracing::info!("--publish off: queuing publishes for other workers, sending none"),
        Switch::On => {
            for publisher in publishing::publishers(http_channels, store.clone(), &metrics, applier.publish_work())? {
                let (stop, drained) = (stop_services.clone(), drained.clone());
                publishers.spawn(async move { Ok(publisher.run(stop, drained).await?) });
            }
        }
    }

    ready.store(true, Ordering::Relaxed);
    let sink: Arc<dyn BatchSink> = applier.clone();
    let source_result = match &args.source {
        SourceSpec::Kafka => {
            let config = KafkaSourceConfig {
                brokers: args.kafka.kafka_brokers.clone(),
                topic: args.kafka.topic.clone(),
                group: args.kafka.group.clone(),
                batch_size: args.batch_size,
                batch_max_wait: args.batch_max_wait(),
                session_timeout: Duration::from_millis(args.kafka.kafka_session_timeout_ms),
                extra: vec![("fetch.wait.max.ms".to_owned(), args.kafka.kafka_fetch_wait_ms.to_string())],
            };
            tracing::info!(brokers = %config.brokers, topic = %config.topic, group = %config.group, "consuming");
            let source = KafkaSource::new(config, sink).context("creating the Kafka consumer")?;
            source.run(shutdown.clone()).await.context("kafka source")
        }
        SourceSpec::File(path) => {
            let source = FileSource {
                path: Some(path.clone()),
                batch_size: args.batch_size,
                batch_max_wait: args.batch_max_wait(),
            };
            source.run(sink, shutdown.clone()).await.context("file source")
        }
        SourceSpec::Stdin => {
            let source = FileSource { path: None, batch_size: args.batch_size, batch_max_wait: args.batch_max_wait() };
            source.run(sink, shutdown.clone()).await.context("stdin source")
        }
    };
    ready.store(false, Ordering::Relaxed);

    // A finite source ends by itself: publish everything it changed before exiting. After a
    // signal or a failed source, stop publishing now; what is queued stays in the outbox for
    // the next run.
    if shutdown.is_cancelled() || source_result.is_err() {
        stop_services.cancel();
    }
    drained.cancel();
    let mut published = 0;
    while let Some(publisher) = publishers.join_next().await {
        published += publisher.context("publisher task")??;
    }
    stop_services.cancel();
    while let Some(service) = services.join_next().await {
        service.context("service task")??;
    }
    source_result?;
    Ok(RunSummary { totals: applier.totals(), published })
}

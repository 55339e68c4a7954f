//! The catalog-sync worker: wires a source (Kafka, an NDJSON file, stdin) to the store
//! through the batch applier, drains the outbox with the publisher, and serves metrics.

pub mod apply;
pub mod channels;
pub mod config;
pub mod file_source;
pub mod http;
pub mod metrics;
pub mod publish;
pub mod telemetry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use catalog_core::ClockPolicy;
use catalog_kafka::{KafkaSource, KafkaSourceConfig};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_sqlite::SqliteStore;
use catalog_store::{CatalogStore, ChannelRoute, StoreConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applier, Totals};
use crate::config::{SourceSpec, StoreArgs, Switch, WorkerArgs};
use crate::file_source::FileSource;
use crate::metrics::Metrics;
use crate::publish::LogPublisher;

/// The channel the outbox is filled for and the log publisher drains.
pub const STOREFRONT_CHANNEL: &str = "storefront";

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

/// Opens the store a `--database-url` names, applying migrations.
pub async fn open_store(args: &StoreArgs, channels: Vec<ChannelRoute>) -> Result<Arc<dyn CatalogStore>> {
    let config = StoreConfig {
        default_sync_enabled: args.default_sync == Switch::On,
        channels,
        clock: ClockPolicy { max_skew: chrono::Duration::seconds(i64::from(args.max_clock_skew_secs)) },
    };
    let url = args.database_url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions { offer_cache_capacity: args.offer_cache_size, ..PostgresOptions::default() };
        let store = PostgresStore::connect(url, config, options).await.context("opening the PostgreSQL store")?;
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, config).await.context("opening the SQLite store")?;
        Ok(Arc::new(store))
    } else {
        bail!("--database-url must start with postgres://, postgresql:// or sqlite:, got {url:?}")
    }
}

/// Runs the worker until the source ends (files) or `shutdown` fires (Kafka, or a signal),
/// then finishes in-flight batches and, for files, publishes everything before returning.
pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> Result<RunSummary> {
    let metrics = Metrics::new();
    let http_channels = channels::http_channels(&args.publish)?;
    let routes = if http_channels.is_empty() {
        vec![ChannelRoute::all(STOREFRONT_CHANNEL)]
    } else {
        http_channels.iter().map(|(_, route)| route.clone()).collect()
    };
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

    {
        let (store, metrics, stop) = (Arc::clone(&store), metrics.clone(), stop_services.clone());
        services.spawn(async move {
            publish::report_outbox(store, channel_names, metrics, stop).await;
            Ok(())
        });
    }

    let applier = Arc::new(Applier::new(Arc::clone(&store), metrics.clone(), shutdown.clone()));
    let drained = CancellationToken::new();
    let mut publishers: JoinSet<Result<u64>> = JoinSet::new();
    match args.publish.mode {
        Switch::Off => tracing::info!("--publish off: queuing publishes for other workers, sending none"),
        Switch::On if http_channels.is_empty() => {
            let publisher = LogPublisher {
                store: Arc::clone(&store),
                channel: STOREFRONT_CHANNEL.to_owned(),
                metrics: metrics.clone(),
                work: Arc::clone(&applier.published_work),
            };
            let (stop, drained) = (stop_services.clone(), drained.clone());
            publishers.spawn(async move { publisher.run(stop, drained).await });
        }
        Switch::On => {
            for (channel, _) in http_channels {
                tracing::info!(channel = %channel.name, base_url = %channel.base_url, "publishing over HTTP");
                let events = Arc::new(publish::PublishMetrics(metrics.clone()));
                let publisher = catalog_publish::ChannelPublisher::new(channel, Arc::clone(&store), events)?;
                let (stop, drained) = (stop_services.clone(), drained.clone());
                publishers.spawn(async move { Ok(publisher.run(stop, drained).await?) });
            }
        }
    }

    ready.store(true, Ordering::Relaxed);
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
            let source = KafkaSource::new(config, Arc::clone(&applier) as Arc<dyn catalog_kafka::BatchSink>)
                .context("creating the Kafka consumer")?;
            source.run(shutdown.clone()).await.context("kafka source")
        }
        SourceSpec::File(path) => {
            let source = FileSource {
                path: Some(path.clone()),
                batch_size: args.batch_size,
                batch_max_wait: args.batch_max_wait(),
            };
            source.run(Arc::clone(&applier), shutdown.clone()).await
        }
        SourceSpec::Stdin => {
            let source = FileSource { path: None, batch_size: args.batch_size, batch_max_wait: args.batch_max_wait() };
            source.run(Arc::clone(&applier), shutdown.clone()).await
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

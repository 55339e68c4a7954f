//! `cargo xtask chaos`: the proof that no message is lost whatever brokers, databases and
//! storefronts do. A tansu broker fed by a batching producer, two workers in one group, a
//! PostgreSQL server, and a storefront that fails and throttles, all of the run's own;
//! workers are SIGKILLed at random points and restarted, PostgreSQL is crashed and restarted
//! once, and, when the broker keeps its messages on disk (`--broker-storage sqlite`), the
//! broker is restarted once, mid-stream. The run ends with the
//! store equal to `catalog-core`'s reference for what the broker holds, every message in the
//! journal exactly once, and the storefront at every item's final version; it prints the
//! figures (docs/reliability.md) and fails on any problem. A bench target, for a release
//! build with the worker binary at hand; `cargo test` never runs it.

mod broker;
mod postgres;
mod storefront;
mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::StoreConfig;
use catalog_testkit::feed::{feed, Lcg};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::broker::OwnBroker;
use crate::postgres::OwnPostgres;

/// The chaos run's settings.
#[derive(Debug, Parser)]
struct ChaosArgs {
    /// Messages produced (a hostile feed: duplicates, drift, poison, wrong keys).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Workers SIGKILLed (and restarted) at random points.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Messages produced per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The workers' batch size: small batches put their checkpoints inside the producer's
    /// record batches, where a restart must resume.
    #[arg(long, default_value_t = 50)]
    worker_batch_size: usize,
    /// Seed of the feed, of the storefront's failures and of the kill schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of storefront calls answered 503.
    #[arg(long, default_value_t = 0.2)]
    storefront_failures: f64,
    /// Share of storefront calls answered 429.
    #[arg(long, default_value_t = 0.05)]
    storefront_throttles: f64,
    /// The tansu binary (default: the one `.ci/run` builds into its cache).
    #[arg(long, env = "CATALOG_TANSU")]
    tansu: Option<PathBuf>,
    /// How long the system may take to converge once the last message is produced, in seconds.
    #[arg(long, default_value_t = 300)]
    converge_within_secs: u64,
    /// Where the broker keeps messages: `memory` (fast, and a fetch starting inside a record
    /// batch skips it, as the worker must survive) or `sqlite` (survives a restart, which
    /// the run then does once).
    #[arg(long, value_enum, default_value_t = broker::Storage::Memory)]
    broker_storage: broker::Storage,
    /// Set by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

const WORKER: &str = env!("CARGO_BIN_EXE_sync-worker");

fn tansu_binary(args: &ChaosArgs) -> PathBuf {
    args.tansu.clone().unwrap_or_else(|| {
        let cache = std::env::var("CATALOG_CI_CACHE").unwrap_or_else(|_| "/var/cache/catalog-sync".to_owned());
        PathBuf::from(cache).join("tansu/bin/tansu")
    })
}

/// One worker process, restarted after each kill.
struct Worker {
    arguments: Vec<String>,
    log: PathBuf,
    process: Child,
}

impl Worker {
    fn start(arguments: Vec<String>, log: PathBuf) -> Self {
        let process = spawn_worker(&arguments, &log);
        Self { arguments, log, process }
    }

    fn kill_and_restart(&mut self, pause: Duration) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        std::thread::sleep(pause);
        self.process = spawn_worker(&self.arguments, &self.log);
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.process.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.process.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn spawn_worker(arguments: &[String], log: &PathBuf) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("worker log");
    Command::new(WORKER)
        .args(arguments)
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start sync-worker")
}

#[allow(clippy::print_stdout)] // A chaos run's report is its output.
fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let args = ChaosArgs::parse();
    // Kept after the run, failed or not: the logs of every process are there.
    let directory = tempfile::Builder::new().prefix("catalog-chaos-").tempdir().expect("work directory").keep();
    println!("chaos: working in {} (logs of every process there)", directory.display());
    let mut broker = OwnBroker::start(tansu_binary(&args), &directory, args.broker_storage);
    let postgres = OwnPostgres::start(&directory);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let report = runtime.block_on(run(&args, &postgres, &mut broker, &directory));
    println!("{report}");
    if let Some(problems) = report.problems() {
        panic!("chaos run failed after {:.0?}; logs in {}:\n{problems}", started.elapsed(), directory.display());
    }
    drop((postgres, broker));
    let _ = std::fs::remove_dir_all(&directory);
}

/// What happened, and what was wrong at the end.
struct Report {
    lines: Vec<String>,
    problems: Vec<String>,
}

impl Report {
    fn problems(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| self.problems.join("\n"))
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "chaos: {line}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "chaos: every check passed")
        } else {
            self.problems.iter().try_for_each(|problem| writeln!(f, "chaos: PROBLEM {problem}"))
        }
    }
}

async fn run(args: &ChaosArgs, postgres: &OwnPostgres, broker: &mut OwnBroker, directory: &std::path::Path) -> Report {
    let database_url = postgres.database_url("chaos");
    let topic = "supplier.inventory.v1";
    let group = "catalog-sync";
    create_topic(&broker.address(), topic, args.partitions).await;
    let (storefront_url, shown, calls) =
        storefront::start(args.seed, args.storefront_failures, args.storefront_throttles).await;
    let messages = feed(args.seed, args.events).messages;

    let batch_size = args.worker_batch_size.to_string();
    let arguments = || -> Vec<String> {
        [
            "--source",
            "kafka",
            "--database-url",
            &database_url,
            "--kafka-brokers",
            &broker.address(),
            "--topic",
            topic,
            "--group",
            group,
            "--storefront-url",
            &storefront_url,
            "--storefront-rate",
            "1000",
            "--metrics-addr",
            "off",
            "--kafka-session-timeout-ms",
            "6000",
            // A member SIGKILLed while its successor joins keeps its partitions in tansu's
            // group until a rebalance: found and rejoined for within 20 s.
            "--kafka-stalled-partition-secs",
            "20",
            "--batch-size",
            &batch_size,
            "--db-transaction-timeout-ms",
            "20000",
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let mut workers: Vec<Worker> =
        (0..args.workers).map(|n| Worker::start(arguments(), directory.join(format!("worker-{n}.log")))).collect();

    // Produce at a steady rate in the background, batching as every real producer does.
    let brokers = broker.address();
    let rate = args.rate;
    let producing = tokio::spawn(async move { produce_steadily(&brokers, topic, messages, rate).await });
    let production = Duration::from_secs_f64(args.events as f64 / args.rate as f64);
    let interval = production.checked_div(args.kills as u32 + 1).unwrap_or(production).max(Duration::from_millis(300));
    let mut random = Lcg(args.seed ^ 0x5eed);
    let (mut kills, mut postgres_restarts, mut broker_restarts) = (0, 0, 0);
    let chaos_started = Instant::now();
    while kills < args.kills {
        let jitter = interval.mul_f64(0.5 + random.below(1_000) as f64 / 1_000.0);
        tokio::time::sleep(jitter).await;
        let victim = random.below(workers.len() as u64) as usize;
        let pause = Duration::from_millis(100 + random.below(900));
        tokio::task::block_in_place(|| workers[victim].kill_and_restart(pause));
        kills += 1;
        if kills == args.kills * 2 / 5 {
            tokio::task::block_in_place(|| postgres.crash_and_restart());
            postgres_restarts += 1;
        }
        if kills == args.kills * 3 / 5 && broker.is_persistent() {
            tokio::task::block_in_place(|| broker.restart());
            broker_restarts += 1;
        }
    }
    let (produced_messages, produce_errors) = producing.await.expect("producer task");
    let produced_at = chaos_started.elapsed();

    // Converge: every partition applied to its end, the outbox drained, the storefront caught up.
    let mut ends = tokio::task::block_in_place(|| verify::partition_ends(&broker.address(), topic, args.partitions));
    // tansu's in-memory high watermark can lag the last record batch: the acknowledged offsets
    // say at least as much.
    for ((partition, offset), _) in &produced_messages {
        let end = ends.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    let store = PostgresStore::connect(&database_url, StoreConfig::default(), PostgresOptions::default())
        .await
        .expect("connect to the chaos database");
    let converge_started = Instant::now();
    let source = format!("kafka:{group}:{topic}");
    let mut converged = false;
    while converge_started.elapsed() < Duration::from_secs(args.converge_within_secs) {
        let stored: Vec<(i32, i64)> =
            sqlx::query_as("SELECT partition, next_offset FROM source_checkpoints WHERE source = $1")
                .bind(&source)
                .fetch_all(store.pool())
                .await
                .unwrap_or_default();
        let stored: HashMap<i32, i64> = stored.into_iter().collect();
        let applied = ends.iter().all(|(partition, end)| stored.get(partition).is_some_and(|next| next >= end));
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(store.pool()).await.unwrap_or(i64::MAX);
        if applied && waiting == 0 {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converge_time = converge_started.elapsed();
    for worker in workers.drain(..) {
        tokio::task::block_in_place(|| worker.stop());
    }
    let mut problems = Vec::new();
    if produced_messages.len() < args.events {
        problems.push(format!(
            "only {} of {} messages were acknowledged by the broker",
            produced_messages.len(),
            args.events
        ));
    }
    if !converged {
        problems.push(format!("not converged within {} s", args.converge_within_secs));
    }
    problems.extend(verify::verify(&store, &produced_messages, &ends, &shown).await);
    let calls = calls.lock().expect("storefront state").clone();
    let mut calls: Vec<_> = calls.into_iter().collect();
    calls.sort();
    // A batch whose commit landed while its connection died is found durable by the store's
    // fence and not applied again (decisions 0026, 0028): the workers log each one.
    // Messages a member found applied by another (a partition held by two members during a
    // rebalance) are skipped, not journaled again.
    let logs: Vec<String> = (0..args.workers)
        .map(|n| std::fs::read_to_string(directory.join(format!("worker-{n}.log"))).unwrap_or_default())
        .collect();
    let unconfirmed: usize = logs.iter().map(|log| log.matches("commit failed to confirm").count()).sum();
    let taken_over: usize = logs.iter().map(|log| log.matches("applied already by another worker").count()).sum();
    Report {
        lines: vec![
            format!(
                "{} messages produced ({} on the broker, some sent twice), {} partitions, {} workers, broker storage {:?}, seed {}",
                produced_messages.len(),
                ends.values().sum::<i64>(),
                args.partitions,
                args.workers,
                args.broker_storage,
                args.seed
            ),
            format!(
                "{kills} workers SIGKILLed and restarted, PostgreSQL crashed and restarted {postgres_restarts}x, broker restarted {broker_restarts}x, over {produced_at:.1?} of production"
            ),
            format!("producer errors, each message sent again until acknowledged: {produce_errors:?}"),
            format!("converged {converge_time:.1?} after the last kill (production had ended by then)"),
            format!("storefront answers by status: {calls:?}"),
            format!("batches whose commit failed to confirm, found durable and not applied again: {unconfirmed}"),
            format!("batches that began below a checkpoint another member stored, their applied messages skipped: {taken_over}"),
        ],
        problems,
    }
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &options)
        .await
        .expect("create topic")
    {
        result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic}: {code}"));
    }
}

/// Produces `messages` at `rate` per second, batching records (`linger.ms`), and sends again
/// whatever the broker did not acknowledge (through its restart), as a producing application
/// must; returns the acknowledged messages with where each landed, and what went wrong.
async fn produce_steadily(
    brokers: &str,
    topic: &str,
    messages: Vec<catalog_testkit::TestMessage>,
    rate: u64,
) -> (Vec<((i32, i64), catalog_testkit::TestMessage)>, Vec<String>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "1000")
        .set("message.timeout.ms", "120000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let started = Instant::now();
    let send = |message: &catalog_testkit::TestMessage| {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic);
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        if let Some(payload) = &message.payload {
            record = record.payload(payload.as_slice());
        }
        if let Some(traceparent) = &message.traceparent {
            record =
                record.headers(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(traceparent) }));
        }
        producer.send_result(record).expect("the producer queue has room")
    };
    let mut deliveries = Vec::with_capacity(messages.len());
    for (n, message) in messages.iter().enumerate() {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        deliveries.push((n, send(message)));
    }
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut acknowledged = Vec::with_capacity(messages.len());
    for _round in 0..20 {
        let mut failed = Vec::new();
        for (n, delivery) in deliveries.drain(..) {
            match delivery.await {
                Ok(Ok(delivered)) => acknowledged.push(((delivered.partition, delivered.offset), messages[n].clone())),
                Ok(Err((error, _))) => {
                    *errors.entry(error.to_string()).or_insert(0) += 1;
                    failed.push(n);
                }
                Err(_) => failed.push(n),
            }
        }
        if failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        deliveries = failed.into_iter().map(|n| (n, send(&messages[n]))).collect();
    }
    let errors = errors.into_iter().map(|(error, count)| format!("{count} x {error}")).collect();
    (acknowledged, errors)
}

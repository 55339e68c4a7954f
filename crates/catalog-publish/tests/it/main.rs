//! Publisher tests against a real HTTP server started in the test (axum on 127.0.0.1:0)
//! that plays the storefront contract: failures, throttling, conflicts, rejections, slow and
//! dropped connections; with a real store (SQLite in a temp dir) behind the outbox.

mod amazon;
mod amazon_feed;
mod budget;
mod ebay;
mod heal;
mod late_apply;
mod long_bodies;
mod marketplace_support;
mod mercadolibre;
mod oauth;
mod ordering;
mod read_back;
mod renewals;
mod rounds;
mod rules;
mod shopify;
mod storefront;
mod walmart;
mod walmart_feed;
mod work_signal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_core::{decode, Delivery, ItemKey, Sku, TenantId};
use catalog_publish::{ChannelConfig, ChannelPublisher, PublishEvents, Secret, StorefrontChannel, StorefrontConfig};
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::StoreError;
use catalog_store::{
    BatchInput, IncomingEvent, OutboxEntry, Provenance, PublishRecord, ResolvedDeadLetter, SourceRef, StoreConfig,
};
use tokio_util::sync::CancellationToken;

use crate::storefront::{Behavior, Storefront};

struct Quiet;

impl PublishEvents for Quiet {
    fn attempted(&self, _: &OutboxEntry, _: &PublishRecord) {}
    fn resolved(&self, _: &ResolvedDeadLetter) {}
    fn lease_ran_out(&self, _: &OutboxEntry) {}
}

/// Stops its publisher (the token) the first time a round's claims ran out before it sent.
struct StopOnLapse(CancellationToken);

impl PublishEvents for StopOnLapse {
    fn attempted(&self, _: &OutboxEntry, _: &PublishRecord) {}
    fn resolved(&self, _: &ResolvedDeadLetter) {}
    fn lease_ran_out(&self, _: &OutboxEntry) {
        self.0.cancel();
    }
}

/// Runs a publisher of the feed channel `name` over `adapter` while the store cannot renew
/// claims (out of reach): claims leased 900 ms, one round at a time, until a round's claims
/// run out before it sends or `created` says the platform has a feed (10 s at most).
async fn run_until_lapsed_or_created(
    name: &str,
    adapter: Arc<dyn catalog_publish::ChannelAdapter>,
    store: Arc<dyn CatalogStore>,
    created: impl Fn() -> bool,
) {
    let flaky = Arc::new(Flaky::new(store));
    flaky.extend_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut config = ChannelConfig::new(name);
    // One lane: another would claim the items once this round's claims pass, as another
    // publisher may, and legitimately send them.
    config.concurrency = 1;
    config.request_timeout = Duration::from_secs(600);
    config.lease = Duration::from_millis(900);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let shutdown = CancellationToken::new();
    let publisher = ChannelPublisher::new(config, adapter, flaky, Arc::new(StopOnLapse(shutdown.clone())));
    let running = tokio::spawn(publisher.run(shutdown.clone(), CancellationToken::new()));
    let lapsed_or_created = async {
        while !shutdown.is_cancelled() && !created() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), lapsed_or_created).await.expect("the round lapsed or sent its feed");
    shutdown.cancel();
    running.await.expect("task").expect("publisher run");
}

async fn store(channels: &[&str]) -> (Arc<dyn CatalogStore>, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig {
        channels: channels.iter().map(|name| catalog_store::ChannelRoute::all(*name)).collect(),
        ..StoreConfig::default()
    };
    let store = SqliteStore::open_path(&directory.path().join("catalog.db"), config).await.expect("open store");
    (Arc::new(store), directory)
}

/// Sets `sku` of tenant `canary` to `quantity` through the store: a new item version.
/// Event `n` is newer than every event before it (`n` below 60,000).
async fn set(store: &dyn CatalogStore, n: u64, sku: &str, quantity: i64) {
    set_many(store, n, &[(sku, quantity)]).await;
}

/// Sets several SKUs in one batch, as events `first_n`, `first_n + 1`, …
async fn set_many(store: &dyn CatalogStore, first_n: u64, changes: &[(&str, i64)]) {
    let events = (first_n..).zip(changes).map(|(n, (sku, quantity))| event(n, sku, *quantity)).collect();
    store.apply_batch(&BatchInput::new(events, vec![])).await.expect("apply");
}

fn event(n: u64, sku: &str, quantity: i64) -> IncomingEvent {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"{sku}","quantity":{quantity},"updated_at":"2026-06-01T12:00:{:02}.{:03}Z"}}"#,
        n / 1000 % 60,
        n % 1000
    )
    .into_bytes();
    IncomingEvent {
        delivery: Delivery { decoded: decode(&raw), received_at: chrono::Utc::now() },
        payload_length: raw.len() as u64,
        raw,
        source: SourceRef { source: "test".into(), partition: 0, offset: n as i64 },
        traceparent: Some(format!("00-{:032x}-{:016x}-01", n + 1, n + 1).parse().expect("a valid traceparent")),
        provenance: Provenance::Received,
    }
}

fn item_id(sku: &str) -> String {
    ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse(sku).expect("valid") }
        .item_id()
        .to_string()
}

/// A channel's drain settings and the storefront it sends to.
struct Channel {
    config: ChannelConfig,
    storefront: StorefrontConfig,
}

fn channel(name: &str, storefront: &Storefront) -> Channel {
    let mut config = ChannelConfig::new(name);
    config.request_timeout = Duration::from_millis(500);
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    Channel { config, storefront: StorefrontConfig::new(storefront.base_url(), Some(Secret::new("s3cret"))) }
}

fn publisher(channel: Channel, store: Arc<dyn CatalogStore>) -> ChannelPublisher {
    let adapter =
        StorefrontChannel::new(channel.storefront, channel.config.request_timeout, channel.config.concurrency)
            .expect("HTTP client");
    ChannelPublisher::new(channel.config, Arc::new(adapter), store, Arc::new(Quiet))
}

/// Runs a channel until the outbox is drained (or a deadline), returning its count.
async fn drain(channel: Channel, store: Arc<dyn CatalogStore>) -> u64 {
    let publisher = publisher(channel, store);
    let drained = CancellationToken::new();
    drained.cancel();
    tokio::time::timeout(Duration::from_secs(30), publisher.run(CancellationToken::new(), drained))
        .await
        .expect("drained within 30 s")
        .expect("publisher run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_follow_the_contract_exactly() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 1);
    let requests = storefront.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let id = item_id("ABC-123");
    assert_eq!(request.path, format!("/v1/tenants/canary/items/{id}/invalidate"));
    assert_eq!(request.authorization.as_deref(), Some("Bearer s3cret"));
    assert_eq!(request.idempotency_key.as_deref(), Some(format!("{id}:1").as_str()));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.traceparent.as_deref(), Some("00-00000000000000000000000000000002-0000000000000002-01"));
    assert_eq!(request.body, serde_json::json!({"item_id": id, "sku": "ABC-123", "quantity": 42, "version": 1}));
    let trace = store.item_trace(catalog_core::ItemId(id.parse().expect("uuid"))).await.expect("trace").expect("item");
    assert_eq!(
        trace.publish_attempts.iter().map(|a| (a.result.as_str(), a.status)).collect::<Vec<_>>(),
        [("published", Some(202))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_until_the_final_version_lands() {
    let script =
        vec![Behavior::Status(503), Behavior::Drop, Behavior::Slow(Duration::from_secs(2)), Behavior::Status(500)];
    let storefront = Storefront::start(script).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 1);
    assert_eq!(storefront.held_version(&item_id("ABC-123")), Some(1));
    let trace = store
        .item_trace(catalog_core::ItemId(item_id("ABC-123").parse().expect("uuid")))
        .await
        .expect("trace")
        .expect("item");
    let results: Vec<_> = trace.publish_attempts.iter().map(|a| (a.attempt, a.result.clone(), a.status)).collect();
    assert_eq!(
        results,
        [
            (1, "retry".to_owned(), Some(503)),
            (2, "retry".to_owned(), None),
            (3, "retry".to_owned(), None),
            (4, "retry".to_owned(), Some(500)),
            (5, "published".to_owned(), Some(202))
        ]
    );
    assert!(
        trace.publish_attempts[2].error.as_deref().is_some_and(|e| e.starts_with("timeout")),
        "{:?}",
        trace.publish_attempts[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_honours_retry_after_and_conflicts_are_not_errors() {
    let storefront = Storefront::start(vec![Behavior::Throttle(1), Behavior::Conflict(9)]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    let started = Instant::now();
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 1);
    let requests = storefront.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at.duration_since(requests[0].at) >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    assert!(started.elapsed() < Duration::from_secs(10));
    let trace = store
        .item_trace(catalog_core::ItemId(item_id("ABC-123").parse().expect("uuid")))
        .await
        .expect("trace")
        .expect("item");
    let results: Vec<_> = trace.publish_attempts.iter().map(|a| (a.result.clone(), a.status)).collect();
    assert_eq!(results, [("throttled".to_owned(), Some(429)), ("superseded".to_owned(), Some(409))]);
    assert!(store.open_dead_letters(10).await.expect("dead letters").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_the_rest_of_the_round_it_was_answered_in() {
    let storefront = Storefront::start(vec![Behavior::Throttle(1)]).await;
    let (store, _dir) = store(&["storefront"]).await;
    let skus: Vec<String> = (0..20).map(|n| format!("SKU-{n:02}")).collect();
    let changes: Vec<(&str, i64)> = skus.iter().map(|sku| (sku.as_str(), 5)).collect();
    set_many(&*store, 1, &changes).await;
    // One send at a time: the whole backlog is one round, sent in order.
    let mut config = channel("storefront", &storefront);
    config.config.concurrency = 1;
    assert_eq!(drain(config, Arc::clone(&store)).await, 20);
    let requests = storefront.requests();
    assert_eq!(requests.len(), 21, "each item once, and the throttled one again");
    let throttled_at = requests[0].at;
    let early: Vec<&str> = requests[1..]
        .iter()
        .filter(|request| request.at.duration_since(throttled_at) < Duration::from_secs(1))
        .map(|request| request.path.as_str())
        .collect();
    assert_eq!(early, Vec::<&str>::new(), "nothing was sent into the Retry-After");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_goes_to_the_dead_letter_journal_with_its_body() {
    let storefront = Storefront::start(vec![Behavior::Reject(422, r#"{"error":"unknown sku"}"#)]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 0);
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].reason.as_str(), letters[0].body.as_deref()),
        ("rejected_422", Some(r#"{"error":"unknown sku"}"#))
    );
    assert_eq!(storefront.requests().len(), 1, "a rejection is not retried");
}

/// A platform's answer holding the NUL character (a raw byte in a body, `\u0000` in a JSON
/// string) is kept with U+FFFD in its place: PostgreSQL's `text` refuses NUL, and a round it
/// refused to record stopped the channel's lane for good, retrying the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_holding_a_nul_character_is_recorded_without_it() {
    let storefront = Storefront::start(vec![Behavior::Reject(422, "{\"error\":\"unknown\u{0}sku\"}")]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    assert_eq!(drain(channel("storefront", &storefront), Arc::clone(&store)).await, 0);
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body.as_deref(), Some("{\"error\":\"unknown\u{FFFD}sku\"}"));
    assert!(!letters[0].error.as_deref().unwrap_or_default().contains('\0'), "{:?}", letters[0].error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_are_dead_lettered() {
    let storefront = Storefront::start(vec![Behavior::Status(503); 10]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "ABC-123", 42).await;
    let mut config = channel("storefront", &storefront);
    config.config.max_attempts = 3;
    assert_eq!(drain(config, Arc::clone(&store)).await, 0);
    assert_eq!(storefront.requests().len(), 3);
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    assert_eq!(letters[0].reason, "retries_exhausted");
    // The letter counts the three failures and starts at the first, not the last.
    let item = catalog_core::ItemId(letters[0].subject.parse().expect("an item id"));
    let trace = store.item_trace(item).await.expect("trace").expect("item");
    let first_attempt = trace.publish_attempts.iter().map(|attempt| attempt.attempted_at).min();
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(Some(letters[0].first_failed_at), first_attempt);
    assert!(letters[0].first_failed_at < letters[0].last_failed_at, "{:?}", letters[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_updates_to_one_item_ends_in_few_calls_and_the_final_version() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    let mut config = channel("storefront", &storefront);
    config.config.settle = Duration::from_millis(300);
    config.config.max_wait = Duration::from_secs(2);
    let publisher = publisher(config, Arc::clone(&store));
    let shutdown = CancellationToken::new();
    let drained = CancellationToken::new();
    let running = tokio::spawn(publisher.run(shutdown.clone(), drained.clone()));
    // A hot item: 100 updates over about 1.5 s, faster than the publisher polls.
    for n in 0..100 {
        set(&*store, n, "HOT-1", n as i64 + 1).await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    drained.cancel();
    tokio::time::timeout(Duration::from_secs(30), running).await.expect("drained").expect("task").expect("run");
    let calls = storefront.requests().len();
    assert!(calls <= 3, "100 updates took {calls} calls");
    assert_eq!(storefront.held_quantity(&item_id("HOT-1")), Some(100));
}

/// A finite run's drain waits for what was queued before it began, and not for versions
/// another process keeps queueing after it began (a hot item, changed every few
/// milliseconds): before, it waited for a moment with nothing waiting on the channel, which
/// here never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_waits_for_what_was_queued_before_it_began_and_no_more() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "MINE-1", 7).await;
    set(&*store, 2, "HOT-1", 1).await;
    let writer_store = Arc::clone(&store);
    let writer = tokio::spawn(async move {
        for n in 3..50_000 {
            set(&*writer_store, n, "HOT-1", n as i64).await;
            tokio::task::yield_now().await;
        }
    });
    let mut config = channel("storefront", &storefront);
    config.config.settle = Duration::from_millis(300);
    config.config.max_wait = Duration::from_secs(1);
    let drained = CancellationToken::new();
    drained.cancel();
    let run = publisher(config, Arc::clone(&store)).run(CancellationToken::new(), drained);
    // It ends about a second and a half in (HOT-1's first version waits `max_wait`).
    let published = tokio::time::timeout(Duration::from_secs(8), run).await;
    writer.abort();
    let published = published.expect("the drain ends").expect("run");
    assert!(published >= 2, "MINE-1 and a version of HOT-1: {published}");
    assert_eq!(storefront.held_quantity(&item_id("MINE-1")), Some(7));
    assert!(storefront.held_quantity(&item_id("HOT-1")).is_some());
}

/// A finite run's drain ends once what was queued before it began is published, though
/// every claim still finds rows: another process's backlog of distinct items, queued faster
/// than the channel's rate publishes them. Before, the drain was asked only when a claim came
/// back empty, which here never happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_while_another_process_s_backlog_keeps_every_claim_busy() {
    let storefront = Storefront::start(vec![]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set(&*store, 1, "MINE-1", 7).await;
    let writer_store = Arc::clone(&store);
    let writer = tokio::spawn(async move {
        for n in 2..100_000 {
            set(&*writer_store, n, &format!("OTHER-{n}"), 1).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // The other process is well under way: a backlog of a hundred rows, growing.
    while store.outbox_depth().await.expect("depth").iter().map(|depth| depth.pending).sum::<u64>() < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut config = channel("storefront", &storefront);
    config.config.rate = Some(catalog_publish::Rate::per_second(std::num::NonZeroU32::new(50).expect("non-zero")));
    config.config.concurrency = 1;
    let drained = CancellationToken::new();
    drained.cancel();
    let run = publisher(config, Arc::clone(&store)).run(CancellationToken::new(), drained);
    // It ends once the hundred or so rows from before the drain are sent: a few seconds.
    let published = tokio::time::timeout(Duration::from_secs(20), run).await;
    writer.abort();
    published.expect("the drain ends").expect("run");
    assert_eq!(storefront.held_quantity(&item_id("MINE-1")), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_channel_does_not_delay_another() {
    let healthy = Storefront::start(vec![]).await;
    let down = Storefront::start(vec![Behavior::Slow(Duration::from_secs(5)); 50]).await;
    let (store, _dir) = store(&["storefront", "marketplace"]).await;
    for n in 0..20 {
        set(&*store, n, &format!("SKU-{n}"), 1).await;
    }
    let shutdown = CancellationToken::new();
    let never = CancellationToken::new();
    let slow = publisher(channel("marketplace", &down), Arc::clone(&store));
    let slow = tokio::spawn(slow.run(shutdown.clone(), never));
    let started = Instant::now();
    assert_eq!(drain(channel("storefront", &healthy), Arc::clone(&store)).await, 20);
    assert!(started.elapsed() < Duration::from_secs(3), "the healthy channel took {:?}", started.elapsed());
    shutdown.cancel();
    slow.await.expect("task").expect("run");
}

/// Shutdown while a request is in flight: the publisher waits for its answer and records it,
/// and gives back the round's items not sent yet (decision 0037). Dropped unanswered, the
/// request could still be applied by the platform after a newer version another publisher
/// sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_request_in_flight_and_gives_back_the_rest() {
    let storefront = Storefront::start(vec![Behavior::Slow(Duration::from_millis(300))]).await;
    let (store, _dir) = store(&["storefront"]).await;
    set_many(&*store, 1, &[("SKU-1", 1), ("SKU-2", 2), ("SKU-3", 3)]).await;
    // One send at a time: the three items are one round, sent in order.
    let mut config = channel("storefront", &storefront);
    config.config.concurrency = 1;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(publisher(config, Arc::clone(&store)).run(shutdown.clone(), CancellationToken::new()));
    let first_sent = async {
        while storefront.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), first_sent).await.expect("the first request is sent");
    shutdown.cancel();
    let published = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stopped within the request timeout")
        .expect("publisher task")
        .expect("publisher run");

    assert_eq!(published, 1, "the request in flight was answered and recorded");
    assert_eq!(storefront.requests().len(), 1, "nothing was sent after the shutdown");
    assert_eq!(storefront.held_quantity(&item_id("SKU-1")), Some(1));
    let claim = catalog_store::OutboxClaim::immediate(10, Duration::from_secs(30));
    let due = store.claim_outbox("storefront", &claim).await.expect("claim");
    let mut due: Vec<String> = due.iter().map(|entry| entry.item.id().to_string()).collect();
    due.sort();
    let mut not_sent = [item_id("SKU-2"), item_id("SKU-3")];
    not_sent.sort();
    assert_eq!(due, not_sent, "the items not sent are due at once, the one sent is not");
}

/// The store of `inner`, as a database that answers nothing for a moment: its `outbox_depth`
/// fails `depth_failures` times first (its `claim_outbox` `claim_failures` times), its `extend_claims` fails while `extend_fails`, its
/// `skus_of_several_tenants` while `shared_fails` (counted in `shared_failed`).
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn CatalogStore>,
    depth_failures: std::sync::atomic::AtomicUsize,
    claim_failures: std::sync::atomic::AtomicUsize,
    extend_fails: std::sync::atomic::AtomicBool,
    shared_fails: std::sync::atomic::AtomicBool,
    shared_failed: std::sync::atomic::AtomicUsize,
}

impl Flaky {
    fn new(inner: Arc<dyn CatalogStore>) -> Self {
        Self {
            inner,
            depth_failures: 0.into(),
            claim_failures: 0.into(),
            extend_fails: false.into(),
            shared_fails: false.into(),
            shared_failed: 0.into(),
        }
    }
}

#[async_trait::async_trait]
impl catalog_store::OutboxStore for Flaky {
    async fn claim_outbox(
        &self,
        channel: &str,
        claim: &catalog_store::OutboxClaim,
    ) -> Result<Vec<catalog_store::OutboxEntry>, StoreError> {
        let left = self.claim_failures.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.claim_failures.store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::Timeout("claim".to_owned()));
        }
        self.inner.claim_outbox(channel, claim).await
    }
    async fn record_publishes(
        &self,
        records: &[catalog_store::PublishRecord],
    ) -> Result<Vec<catalog_store::ResolvedDeadLetter>, StoreError> {
        self.inner.record_publishes(records).await
    }
    async fn release_claims(&self, channel: &str, claims: &[catalog_store::HeldClaim]) -> Result<u64, StoreError> {
        self.inner.release_claims(channel, claims).await
    }
    async fn extend_claims(
        &self,
        channel: &str,
        claims: &[catalog_store::HeldClaim],
        lease: Duration,
    ) -> Result<u64, StoreError> {
        if self.extend_fails.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection reset".to_owned()));
        }
        self.inner.extend_claims(channel, claims, lease).await
    }
    async fn republish(&self, items: &[catalog_core::ItemId]) -> Result<u64, StoreError> {
        self.inner.republish(items).await
    }
    async fn outbox_clock(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.inner.outbox_clock().await
    }
    async fn outbox_depth(&self) -> Result<Vec<catalog_store::OutboxDepth>, StoreError> {
        let left = self.depth_failures.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.depth_failures.store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::Unavailable("connection reset".to_owned()));
        }
        self.inner.outbox_depth().await
    }
    async fn stale_items(&self, channel: &str) -> Result<u64, StoreError> {
        self.inner.stale_items(channel).await
    }
    async fn skus_of_several_tenants(
        &self,
        channels: &[String],
        skus: &[catalog_core::Sku],
    ) -> Result<Vec<catalog_store::SharedSku>, StoreError> {
        if self.shared_fails.load(std::sync::atomic::Ordering::SeqCst) {
            self.shared_failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::Unavailable("connection reset".to_owned()));
        }
        self.inner.skus_of_several_tenants(channels, skus).await
    }
    async fn open_dead_letters(&self, limit: usize) -> Result<Vec<catalog_store::DeadLetter>, StoreError> {
        self.inner.open_dead_letters(limit).await
    }
    async fn item_dead_letters(
        &self,
        item_id: catalog_core::ItemId,
    ) -> Result<Vec<catalog_store::DeadLetter>, StoreError> {
        self.inner.item_dead_letters(item_id).await
    }
    async fn heal_dead_letters(
        &self,
        heal: &catalog_store::DeadLetterHeal,
    ) -> Result<catalog_store::HealRound, StoreError> {
        self.inner.heal_dead_letters(heal).await
    }
    async fn dead_letter_counts(&self) -> Result<Vec<catalog_store::DeadLetterCount>, StoreError> {
        self.inner.dead_letter_counts().await
    }
}

//! Benchmark of `apply_batch` on Postgres against a raw-SQL baseline of the same rows,
//! both measured in this one run on fresh databases: `cargo xtask bench`.
//!
//! The baseline is the least work any design must do for these events: insert the same
//! journal rows (every column apply_batch writes) and upsert the offers with array
//! statements, one transaction per batch, nothing locked, read back or decided.
//! `apply_batch` additionally locks and loads offers and items, looks up prior journal rows,
//! plans with `catalog-core`, and writes items, outbox rows and checkpoints.

use std::time::{Duration, Instant};

use catalog_core::{
    decode, encode, Delivery, EventId, OfferKey, Sku, StockChange, SupplierEvent, SupplierId, TenantId,
};
use catalog_postgres::{PostgresOptions, PostgresStore};
use catalog_store::{BatchInput, CatalogStore, Checkpoint, IncomingEvent, Provenance, SourceRef, StoreConfig};
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

const N_EVENTS: usize = 100_000;
const BATCH: usize = 5_000;
const N_SKUS: usize = 10_000;
const N_SUPPLIERS: usize = 3;

fn server_url() -> String {
    std::env::var("CATALOG_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh_database(label: &str) -> (String, String) {
    let server = server_url();
    let mut admin = PgConnection::connect(&server).await.expect("PostgreSQL must be reachable for this benchmark");
    let name = format!("catalog_bench_{label}_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create");
    let (base, _) = server.rsplit_once('/').expect("url names a database");
    (name.clone(), format!("{base}/{name}"))
}

async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&server_url()).await.expect("connect");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.expect("drop");
}

/// A feed over 30,000 offers: mostly snapshots, a quarter adjustments, 1 % redeliveries.
fn events() -> Vec<IncomingEvent> {
    let received_at: DateTime<Utc> = "2026-06-01T13:00:00Z".parse().expect("time");
    let base: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("time");
    let tenant = TenantId::parse("canary").expect("valid");
    let suppliers: Vec<SupplierId> =
        (0..N_SUPPLIERS).map(|n| SupplierId::parse(&format!("supplier-{n}")).expect("valid")).collect();
    (0..N_EVENTS)
        .map(|n| {
            let id = if n % 100 == 99 { n - 1 } else { n };
            let offer = OfferKey {
                tenant: tenant.clone(),
                supplier: suppliers[n % N_SUPPLIERS].clone(),
                sku: Sku::parse(&format!("SKU-{:06}", (n / N_SUPPLIERS) % N_SKUS)).expect("valid"),
            };
            let change = if n % 4 == 0 {
                StockChange::Adjusted { delta: (n % 5) as i64 + 1 }
            } else {
                StockChange::Updated { quantity: (n % 1000) as i64 }
            };
            let event = SupplierEvent::new(
                EventId(Uuid::from_u128(id as u128 + 1)),
                offer,
                change,
                base + chrono::Duration::milliseconds(n as i64),
                Some(n as u64),
            )
            .expect("valid event");
            let raw = encode(&event).into_bytes();
            IncomingEvent {
                delivery: Delivery { decoded: decode(&raw), received_at },
                raw,
                source: SourceRef {
                    source: "kafka:bench:supplier.inventory.v1".into(),
                    partition: 0,
                    offset: n as i64,
                },
                traceparent: None,
                provenance: Provenance::Received,
            }
        })
        .collect()
}

async fn bench_apply_batch(events: &[IncomingEvent]) -> Duration {
    let (name, url) = fresh_database("apply").await;
    let store =
        PostgresStore::connect(&url, StoreConfig::default(), PostgresOptions::default()).await.expect("connect");
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let next_offset = chunk.last().expect("non-empty chunk").source.offset + 1;
        let input = BatchInput {
            events: chunk.to_vec(),
            checkpoints: vec![Checkpoint { source: chunk[0].source.source.clone(), partition: 0, next_offset }],
        };
        store.apply_batch(&input).await.expect("apply");
    }
    let elapsed = started.elapsed();
    store.pool().close().await;
    drop_database(&name).await;
    elapsed
}

/// The same journal rows and offer rows, written with plain array statements.
async fn bench_raw_sql(events: &[IncomingEvent]) -> Duration {
    let (name, url) = fresh_database("raw").await;
    let store =
        PostgresStore::connect(&url, StoreConfig::default(), PostgresOptions::default()).await.expect("connect");
    let pool: PgPool = store.pool().clone();
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let mut seen = std::collections::HashSet::new();
        let (unique, deliveries): (Vec<&SupplierEvent>, Vec<&IncomingEvent>) = chunk
            .iter()
            .filter_map(|incoming| Some((incoming.delivery.decoded.as_ref().ok()?, incoming)))
            .filter(|(event, _)| seen.insert(event.event_id()))
            .unzip();
        let event_ids: Vec<Uuid> = unique.iter().map(|e| e.event_id().0).collect();
        let tenants: Vec<&str> = unique.iter().map(|e| e.offer().tenant.as_str()).collect();
        let suppliers: Vec<&str> = unique.iter().map(|e| e.offer().supplier.as_str()).collect();
        let skus: Vec<&str> = unique.iter().map(|e| e.offer().sku.as_str()).collect();
        let types: Vec<&str> = unique.iter().map(|e| e.change().type_name()).collect();
        let split = |updated: bool| -> Vec<Option<i64>> {
            unique
                .iter()
                .map(|e| match (e.change(), updated) {
                    (StockChange::Updated { quantity }, true) => Some(quantity),
                    (StockChange::Adjusted { delta }, false) => Some(delta),
                    _ => None,
                })
                .collect()
        };
        let (quantities, deltas) = (split(true), split(false));
        let values: Vec<i64> = quantities.iter().zip(&deltas).map(|(q, d)| q.or(*d).unwrap_or(0)).collect();
        let updated_ats: Vec<DateTime<Utc>> = unique.iter().map(|e| e.updated_at()).collect();
        let sequences: Vec<Option<i64>> = unique.iter().map(|e| e.sequence().map(|s| s as i64)).collect();
        let fingerprints: Vec<i64> = unique.iter().map(|e| e.fingerprint() as i64).collect();
        let received: Vec<DateTime<Utc>> = deliveries.iter().map(|e| e.delivery.received_at).collect();
        let sources: Vec<&str> = deliveries.iter().map(|e| e.source.source.as_str()).collect();
        let offsets: Vec<i64> = deliveries.iter().map(|e| e.source.offset).collect();
        let traceparents: Vec<Option<&str>> = deliveries.iter().map(|e| e.traceparent.as_deref()).collect();
        let mut transaction = pool.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at,
                                 sequence, effective_at, clock_drift_clamped, received_at, outcome, reason, detail,
                                 fingerprint, redelivery_count, payload_differs, source, source_partition,
                                 source_offset, traceparent, raw_payload)
             SELECT e, t, s, k, y, q, d, u, sq, u, false, r, 'applied', NULL, NULL, f, 0, false, src, 0, o, tp, NULL
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                         $8::timestamptz[], $9::int8[], $10::timestamptz[], $11::int8[], $12::text[], $13::int8[],
                         $14::text[]) AS x(e, t, s, k, y, q, d, u, sq, r, f, src, o, tp)",
        )
        .bind(&event_ids)
        .bind(&tenants)
        .bind(&suppliers)
        .bind(&skus)
        .bind(&types)
        .bind(&quantities)
        .bind(&deltas)
        .bind(&updated_ats)
        .bind(&sequences)
        .bind(&received)
        .bind(&fingerprints)
        .bind(&sources)
        .bind(&offsets)
        .bind(&traceparents)
        .execute(&mut *transaction)
        .await
        .expect("journal insert");
        // One row per offer and statement: Postgres refuses to upsert the same key twice in one.
        let mut last_per_offer = std::collections::BTreeMap::new();
        for (index, event) in unique.iter().enumerate() {
            last_per_offer.insert(event.offer(), index);
        }
        fn pick<'a>(indexes: &[usize], column: &[&'a str]) -> Vec<&'a str> {
            indexes.iter().map(|index| column[*index]).collect()
        }
        let indexes: Vec<usize> = last_per_offer.values().copied().collect();
        let offer_quantities: Vec<i64> = last_per_offer.values().map(|i| values[*i]).collect();
        let offer_events: Vec<Uuid> = last_per_offer.values().map(|i| event_ids[*i]).collect();
        sqlx::query(
            "INSERT INTO offers (tenant_id, supplier_id, sku, quantity, winner_event_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::uuid[])
             ON CONFLICT (tenant_id, supplier_id, sku)
             DO UPDATE SET quantity = EXCLUDED.quantity, winner_event_id = EXCLUDED.winner_event_id, updated_at = now()",
        )
        .bind(pick(&indexes, &tenants))
        .bind(pick(&indexes, &suppliers))
        .bind(pick(&indexes, &skus))
        .bind(&offer_quantities)
        .bind(&offer_events)
        .execute(&mut *transaction)
        .await
        .expect("offer upsert");
        transaction.commit().await.expect("commit");
    }
    let elapsed = started.elapsed();
    pool.close().await;
    drop_database(&name).await;
    elapsed
}

fn rate(elapsed: Duration) -> f64 {
    N_EVENTS as f64 / elapsed.as_secs_f64()
}

#[allow(clippy::print_stdout)] // A benchmark's report is its output.
fn main() {
    // `cargo test --benches` runs bench targets with `--test`-style flags; do the work only
    // when asked to benchmark.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let events = events();
        // Alternate to spread any drift of the machine over both.
        let raw_first = bench_raw_sql(&events).await;
        let apply_first = bench_apply_batch(&events).await;
        let raw_second = bench_raw_sql(&events).await;
        let apply_second = bench_apply_batch(&events).await;
        let raw = raw_first.min(raw_second);
        let apply = apply_first.min(apply_second);
        println!("postgres/raw_sql_baseline   {N_EVENTS} events in batches of {BATCH}: {:>9.0} events/s", rate(raw));
        println!("postgres/apply_batch        {N_EVENTS} events in batches of {BATCH}: {:>9.0} events/s", rate(apply));
        println!("postgres/apply_batch ÷ raw_sql_baseline: {:.2}", rate(apply) / rate(raw));
    });
}

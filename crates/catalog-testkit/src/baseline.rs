//! What the benchmarks share: their feed, and the raw-SQL baseline they compare with (the
//! rows `apply_batch` writes, with plain array statements, nothing read, locked or decided).

use std::time::{Duration, Instant};

use catalog_core::{
    decode, encode, Delivery, EventId, OfferKey, Sku, StockChange, SupplierEvent, SupplierId, TenantId,
};
use catalog_store::{BatchInput, Checkpoint, IncomingEvent, Position, Provenance, SourceRef};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A benchmark feed of `n_events` over 30,000 offers of one tenant (3 suppliers × 10,000
/// SKUs): three quarters snapshots, one quarter adjustments, 1 % exact redeliveries.
pub fn bench_events(n_events: usize) -> Vec<SupplierEvent> {
    let base: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
    let tenant = TenantId::parse("canary").expect("valid tenant");
    let suppliers: Vec<SupplierId> =
        (0..3).map(|n| SupplierId::parse(&format!("supplier-{n}")).expect("valid supplier")).collect();
    (0..n_events).map(|n| bench_event_of(n, base, &tenant, &suppliers)).collect()
}

fn bench_event_of(n: usize, base: DateTime<Utc>, tenant: &TenantId, suppliers: &[SupplierId]) -> SupplierEvent {
    let id = if n % 100 == 99 { n - 1 } else { n };
    let offer = OfferKey {
        tenant: tenant.clone(),
        supplier: suppliers[n % 3].clone(),
        sku: Sku::parse(&format!("SKU-{:06}", (n / 3) % 10_000)).expect("valid sku"),
    };
    let change = if n % 4 == 0 {
        StockChange::Adjusted { delta: (n % 5) as i64 + 1 }
    } else {
        StockChange::Updated { quantity: (n % 1000) as i64 }
    };
    let updated_at = base + chrono::Duration::milliseconds(n as i64);
    SupplierEvent::new(EventId(Uuid::from_u128(id as u128 + 1)), offer, change, updated_at, Some(n as u64))
        .expect("valid event")
}

/// A run of `incoming` events (partition 0 of one source) as one batch, with the checkpoint
/// after its last event.
pub fn batch_of(events: &[IncomingEvent]) -> BatchInput {
    let last = events.last().expect("a batch of at least one event");
    let checkpoint = Checkpoint {
        source: last.source.source.to_string(),
        partition: last.source.partition,
        position: Position::at(last.source.offset + 1),
    };
    BatchInput::new(events.to_vec(), vec![checkpoint])
}

/// The events as they would reach the store from `source`, received at `received_at`.
pub fn incoming(events: &[SupplierEvent], source: &str, received_at: DateTime<Utc>) -> Vec<IncomingEvent> {
    events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let raw = encode(event).into_bytes();
            IncomingEvent {
                delivery: Delivery { decoded: decode(&raw), received_at },
                payload_length: raw.len() as u64,
                raw,
                source: SourceRef { source: source.into(), partition: 0, offset: n as i64 },
                traceparent: None,
                provenance: Provenance::Received,
            }
        })
        .collect()
}

/// Writes the rows `apply_batch` writes for these events (a journal row per event id, an
/// upsert per offer, per item and per outbox row, the source checkpoint) in batches
/// of `batch_size`, one transaction each, with plain array statements, into a migrated
/// catalog database; returns the time it took. Nothing is read back, locked or decided:
/// every offer takes its last event's value, every item of the batch a new version.
pub async fn raw_sql_baseline(pool: &PgPool, events: &[IncomingEvent], batch_size: usize) -> Duration {
    let started = Instant::now();
    for (batch_number, chunk) in events.chunks(batch_size).enumerate() {
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
        let sources: Vec<&str> = deliveries.iter().map(|e| &*e.source.source).collect();
        let offsets: Vec<i64> = deliveries.iter().map(|e| e.source.offset).collect();
        let traceparents: Vec<Option<&str>> =
            deliveries.iter().map(|e| e.traceparent.as_ref().map(catalog_core::TraceParent::as_str)).collect();
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
        let mut items = std::collections::BTreeMap::new();
        for (offer, index) in &last_per_offer {
            items.insert(offer.item_key(), values[*index]);
        }
        let item_ids: Vec<Uuid> = items.keys().map(|key| key.item_id().0).collect();
        let item_tenants: Vec<&str> = items.keys().map(|key| key.tenant.as_str()).collect();
        let item_skus: Vec<&str> = items.keys().map(|key| key.sku.as_str()).collect();
        let item_quantities: Vec<i64> = items.values().copied().collect();
        sqlx::query(
            "INSERT INTO items (item_id, tenant_id, sku, quantity, version)
             SELECT id, t, k, q, 1 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[]) AS u(id, t, k, q)
             ON CONFLICT (item_id)
             DO UPDATE SET quantity = EXCLUDED.quantity, version = items.version + 1, updated_at = now()",
        )
        .bind(&item_ids)
        .bind(&item_tenants)
        .bind(&item_skus)
        .bind(&item_quantities)
        .execute(&mut *transaction)
        .await
        .expect("item upsert");
        // One row per item and channel, replaced by a newer version; the batch number is one.
        sqlx::query(
            "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel)
             SELECT id, t, k, q, $5, 'storefront' FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[]) AS u(id, t, k, q)
             ON CONFLICT (item_id, channel) DO UPDATE SET quantity = EXCLUDED.quantity, version = EXCLUDED.version,
                 enqueued_at = now()",
        )
        .bind(&item_ids)
        .bind(&item_tenants)
        .bind(&item_skus)
        .bind(&item_quantities)
        .bind(batch_number as i64 + 1)
        .execute(&mut *transaction)
        .await
        .expect("outbox insert");
        let last = chunk.last().expect("chunks are not empty");
        sqlx::query(
            "INSERT INTO source_checkpoints (source, partition, next_offset) VALUES ($1, $2, $3)
             ON CONFLICT (source, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        )
        .bind(&*last.source.source)
        .bind(last.source.partition)
        .bind(last.source.offset + 1)
        .execute(&mut *transaction)
        .await
        .expect("checkpoint upsert");
        transaction.commit().await.expect("commit");
    }
    started.elapsed()
}

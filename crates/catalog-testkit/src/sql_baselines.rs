//! The two baselines issue 17 compares the worker with, on the same events and the same
//! schema: the strongest SQL-only path Postgres allows (a batch of 5,000 copied into a typed
//! staging table, then the journal rows with their claims and the offer upserts written
//! server-side with `INSERT … SELECT`, one transaction per batch, nothing read or decided
//! client-side), and a naive worker that writes the worker's rows one transaction per event.

use std::time::{Duration, Instant};

use catalog_core::StockChange;
use catalog_store::IncomingEvent;
use sqlx::{Connection, PgConnection};

/// The staging table a batch is copied into, typed as the journal.
const STAGING: &str = "CREATE TEMP TABLE staging (
    event_id uuid, tenant_id text, supplier_id text, sku text, event_type text, quantity int8, delta int8,
    updated_at timestamptz, sequence int8, received_at timestamptz, fingerprint int8, source text, source_offset int8
) ON COMMIT DELETE ROWS";

/// The journal rows of the batch's distinct event ids, each with its claim, in one statement.
const JOURNAL: &str = "WITH journaled AS (
    INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at, sequence,
                        effective_at, clock_drift_clamped, received_at, outcome, fingerprint, redelivery_count,
                        payload_differs, source, source_partition, source_offset)
    SELECT DISTINCT ON (event_id) event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at,
           sequence, updated_at, false, received_at, 'applied', fingerprint, 0, false, source, 0, source_offset
    FROM staging ORDER BY event_id, source_offset
    RETURNING event_id, journal_id, received_at, fingerprint, updated_at)
INSERT INTO event_claims (event_id, journal_id, received_at, fingerprint, held, kept_from)
SELECT event_id, journal_id, received_at, fingerprint, false, CASE WHEN updated_at > received_at THEN updated_at END
FROM journaled";

/// Each offer of the batch set to its last event's value.
const OFFERS: &str = "INSERT INTO offers (tenant_id, supplier_id, sku, quantity, winner_event_id)
    SELECT DISTINCT ON (tenant_id, supplier_id, sku) tenant_id, supplier_id, sku, coalesce(quantity, delta), event_id
    FROM staging ORDER BY tenant_id, supplier_id, sku, source_offset DESC
    ON CONFLICT (tenant_id, supplier_id, sku)
    DO UPDATE SET quantity = EXCLUDED.quantity, winner_event_id = EXCLUDED.winner_event_id, updated_at = now()";

fn change_columns(change: StockChange) -> (&'static str, String, String) {
    match change {
        StockChange::Updated { quantity } => (change.type_name(), quantity.to_string(), "\\N".to_owned()),
        StockChange::Adjusted { delta } => (change.type_name(), "\\N".to_owned(), delta.to_string()),
    }
}

/// One line of `COPY … FROM STDIN` text format for an event (ids and SKUs of the benchmark
/// feed need no escaping).
fn staging_line(incoming: &IncomingEvent, out: &mut String) {
    use std::fmt::Write;
    let Ok(event) = &incoming.delivery.decoded else { return };
    let (event_type, quantity, delta) = change_columns(event.change());
    let sequence = event.sequence().map_or("\\N".to_owned(), |sequence| (sequence as i64).to_string());
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{event_type}\t{quantity}\t{delta}\t{}\t{sequence}\t{}\t{}\t{}\t{}",
        event.event_id().0,
        event.offer().tenant,
        event.offer().supplier,
        event.offer().sku,
        event.updated_at().to_rfc3339(),
        incoming.delivery.received_at.to_rfc3339(),
        event.fingerprint() as i64,
        incoming.source.source,
        incoming.source.offset,
    );
}

/// Writes `events` in batches of `batch_size` the SQL-only way; returns the time taken.
pub async fn staging_sql_baseline(url: &str, events: &[IncomingEvent], batch_size: usize) -> Duration {
    let mut connection = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(STAGING).execute(&mut connection).await.expect("staging table");
    let started = Instant::now();
    let mut text = String::with_capacity(batch_size * 200);
    for chunk in events.chunks(batch_size) {
        text.clear();
        for incoming in chunk {
            staging_line(incoming, &mut text);
        }
        let mut transaction = connection.begin().await.expect("begin");
        let mut copy = transaction.copy_in_raw("COPY staging FROM STDIN").await.expect("copy");
        copy.send(text.as_bytes()).await.expect("copy data");
        copy.finish().await.expect("copy end");
        sqlx::query(JOURNAL).execute(&mut *transaction).await.expect("journal and claims");
        sqlx::query(OFFERS).execute(&mut *transaction).await.expect("offers");
        transaction.commit().await.expect("commit");
    }
    let elapsed = started.elapsed();
    connection.close().await.expect("close");
    elapsed
}

/// Writes `events` one transaction each, as a naive worker would, the same rows the worker
/// writes: the journal row and its claim, the offer, the item (a new version), its outbox row
/// and the source's checkpoint, commit. A redelivery's claim is already there: its transaction
/// rolls back, as a naive worker's would on the unique violation.
pub async fn naive_per_event(url: &str, events: &[IncomingEvent]) -> Duration {
    let mut connection = PgConnection::connect(url).await.expect("connect");
    let started = Instant::now();
    for incoming in events {
        let Ok(event) = &incoming.delivery.decoded else { continue };
        let (quantity, delta) = match event.change() {
            StockChange::Updated { quantity } => (Some(quantity), None),
            StockChange::Adjusted { delta } => (None, Some(delta)),
        };
        let mut transaction = connection.begin().await.expect("begin");
        let journal_id: i64 = sqlx::query_scalar(
            "INSERT INTO events (event_id, tenant_id, supplier_id, sku, event_type, quantity, delta, updated_at,
                                 sequence, effective_at, received_at, outcome, fingerprint, source, source_partition,
                                 source_offset)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10, 'applied', $11, $12, 0, $13) RETURNING journal_id",
        )
        .bind(event.event_id().0)
        .bind(event.offer().tenant.as_str())
        .bind(event.offer().supplier.as_str())
        .bind(event.offer().sku.as_str())
        .bind(event.change().type_name())
        .bind(quantity)
        .bind(delta)
        .bind(event.updated_at())
        .bind(event.sequence().map(|sequence| sequence as i64))
        .bind(incoming.delivery.received_at)
        .bind(event.fingerprint() as i64)
        .bind(&*incoming.source.source)
        .bind(incoming.source.offset)
        .fetch_one(&mut *transaction)
        .await
        .expect("journal row");
        let claimed = sqlx::query(
            "INSERT INTO event_claims (event_id, journal_id, received_at, fingerprint, held)
             VALUES ($1, $2, $3, $4, false) ON CONFLICT DO NOTHING",
        )
        .bind(event.event_id().0)
        .bind(journal_id)
        .bind(incoming.delivery.received_at)
        .bind(event.fingerprint() as i64)
        .execute(&mut *transaction)
        .await
        .expect("claim")
        .rows_affected();
        if claimed == 0 {
            transaction.rollback().await.expect("rollback");
            continue;
        }
        sqlx::query(
            "INSERT INTO offers (tenant_id, supplier_id, sku, quantity, winner_event_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, supplier_id, sku)
             DO UPDATE SET quantity = EXCLUDED.quantity, winner_event_id = EXCLUDED.winner_event_id, updated_at = now()",
        )
        .bind(event.offer().tenant.as_str())
        .bind(event.offer().supplier.as_str())
        .bind(event.offer().sku.as_str())
        .bind(quantity.or(delta).unwrap_or(0))
        .bind(event.event_id().0)
        .execute(&mut *transaction)
        .await
        .expect("offer");
        let item = event.offer().item_key();
        sqlx::query(
            "INSERT INTO items (item_id, tenant_id, sku, quantity, version) VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT (item_id) DO UPDATE SET quantity = EXCLUDED.quantity, version = items.version + 1,
                 updated_at = now()",
        )
        .bind(item.item_id().0)
        .bind(item.tenant.as_str())
        .bind(item.sku.as_str())
        .bind(quantity.or(delta).unwrap_or(0))
        .execute(&mut *transaction)
        .await
        .expect("item");
        sqlx::query(
            "INSERT INTO outbox (item_id, tenant_id, sku, quantity, version, channel)
             SELECT item_id, tenant_id, sku, quantity, version, 'storefront' FROM items WHERE item_id = $1
             ON CONFLICT (item_id, channel) DO UPDATE SET quantity = EXCLUDED.quantity, version = EXCLUDED.version,
                 enqueued_at = now()",
        )
        .bind(item.item_id().0)
        .execute(&mut *transaction)
        .await
        .expect("outbox");
        sqlx::query(
            "INSERT INTO source_checkpoints (source, partition, next_offset) VALUES ($1, 0, $2)
             ON CONFLICT (source, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        )
        .bind(&*incoming.source.source)
        .bind(incoming.source.offset + 1)
        .execute(&mut *transaction)
        .await
        .expect("checkpoint");
        transaction.commit().await.expect("commit");
    }
    let elapsed = started.elapsed();
    connection.close().await.expect("close");
    elapsed
}

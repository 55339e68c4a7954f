//! Criterion benchmark of the hot path: decode a contract message and plan a batch of them.

use std::hint::black_box;

use catalog_core::{decode, plan_batch, AllSyncOn, ClockPolicy, Delivery, PlanState};
use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 5_000;

/// A realistic feed: 500 SKUs, 3 suppliers, both event kinds, sequences, a few duplicates.
fn messages() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|n| {
            let kind = if n % 4 == 0 {
                format!(r#""type":"inventory.adjusted","delta":{}"#, (n % 7) as i64 - 3 + i64::from(n % 7 == 3))
            } else {
                format!(r#""type":"inventory.updated","quantity":{}"#, n % 100)
            };
            let id = if n % 50 == 49 { n - 1 } else { n };
            format!(
                r#"{{"event_id":"018f6b1e-6a7b-7c3e-9a51-{id:012x}",{kind},"tenant_id":"canary","supplier_id":"supplier-{}","sku":"sku-{:05}","updated_at":"2026-06-01T12:{:02}:{:02}.{:03}Z","sequence":{n}}}"#,
                n % 3,
                n % 500,
                (n / 1000) % 60,
                (n / 10) % 60,
                n % 1000
            )
            .into_bytes()
        })
        .collect()
}

fn decode_and_decide(c: &mut Criterion) {
    let messages = messages();
    let received_at: DateTime<Utc> = "2026-06-01T12:30:00Z".parse().expect("valid time");
    let state = PlanState::default();
    let mut group = c.benchmark_group("catalog-core");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("decode", |b| {
        b.iter(|| messages.iter().map(|message| decode(black_box(message))).filter(Result::is_ok).count())
    });
    group.bench_function("decode_and_plan_batch_of_5000", |b| {
        b.iter(|| {
            let deliveries: Vec<Delivery> =
                messages.iter().map(|message| Delivery { decoded: decode(black_box(message)), received_at }).collect();
            plan_batch(&deliveries, &state, &AllSyncOn, ClockPolicy::default())
        })
    });
    group.finish();
}

criterion_group!(benches, decode_and_decide);
criterion_main!(benches);

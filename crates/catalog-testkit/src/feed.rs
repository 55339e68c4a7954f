//! A supplier feed with everything the contract warns about: permutations, duplicates,
//! drifted clocks, adjustments, wrong keys and poison messages, with the state a correct
//! system must reach for it, computed by `catalog-core` alone. Shared by the end-to-end
//! tests, the chaos run and the benchmarks.

use std::collections::{BTreeMap, HashMap};

use catalog_core::{
    decode, encode, AllSyncOn, ClockPolicy, Delivery, EventId, ItemKey, OfferKey, ReferenceCatalog, Sku, StockChange,
    SupplierEvent, SupplierId, TenantId, MAX_PAYLOAD_BYTES,
};
use chrono::{DateTime, Duration, Utc};

use crate::kafka::TestMessage;

/// The tenants of the feed.
pub const TENANTS: [&str; 2] = ["canary", "wide"];

/// A small deterministic generator, so a failing run can be repeated exactly.
#[derive(Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Messages to produce, and how many of them are poison.
#[derive(Debug)]
pub struct Feed {
    pub messages: Vec<TestMessage>,
    pub n_poison: usize,
}

/// `n_events` messages from `seed`: the same seed gives the same feed.
pub fn feed(seed: u64, n_events: usize) -> Feed {
    let mut rng = Lcg(seed);
    let base: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().expect("valid time");
    let far_future = Utc::now() + Duration::days(2);
    let mut drifted: std::collections::HashSet<OfferKey> = std::collections::HashSet::new();
    let mut messages: Vec<TestMessage> = Vec::new();
    let mut n_poison = 0;
    for n in 0..n_events {
        if rng.below(50) == 0 {
            n_poison += 1;
            let payload = match rng.below(5) {
                0 => Some(b"not json at all".to_vec()),
                1 => None,
                2 => Some(format!(r#"{{"event_id":"{}","type":"inventory.updated"}}"#, uuid::Uuid::new_v4()).into_bytes()),
                3 => Some(format!(r#"{{"padding":"{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES)).into_bytes()),
                _ => Some(
                    format!(
                        r#"{{"event_id":"{}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"BAD SKU","quantity":1,"updated_at":"2026-06-01T12:00:00Z"}}"#,
                        uuid::Uuid::new_v4()
                    )
                    .into_bytes(),
                ),
            };
            messages.push(TestMessage { key: Some("poison".into()), payload, traceparent: None, partition: None });
            continue;
        }
        if n > 10 && rng.below(10) == 0 {
            // An exact redelivery of an earlier message, anywhere in the stream.
            let earlier = messages[rng.below(messages.len() as u64) as usize].clone();
            messages.push(earlier);
            continue;
        }
        let tenant = TENANTS[rng.below(2) as usize];
        let offer = OfferKey {
            tenant: TenantId::parse(tenant).expect("valid"),
            supplier: SupplierId::parse(["acme", "globex", "initech"][rng.below(3) as usize]).expect("valid"),
            sku: Sku::parse(&format!("SKU-{:03}", rng.below(40))).expect("valid"),
        };
        let mut updated_at = base + Duration::seconds(rng.below(120) as i64);
        let change = if rng.below(10) < 7 {
            // At most one drifted snapshot per offer, so its clamped time wins whatever the
            // exact reception time: the expected state does not depend on timing.
            if rng.below(30) == 0 && drifted.insert(offer.clone()) {
                updated_at = far_future;
            }
            StockChange::Updated { quantity: rng.below(500) as i64 }
        } else {
            StockChange::Adjusted { delta: rng.below(21) as i64 - 10 + i64::from(rng.below(21) == 10) }
        };
        let change = match change {
            StockChange::Adjusted { delta: 0 } => StockChange::Adjusted { delta: 3 },
            other => other,
        };
        let sequence = (rng.below(3) != 0).then(|| rng.below(4));
        // Ids from the seed, so a failing run can be compared event by event.
        let event_id = EventId(uuid::Uuid::from_u128((u128::from(seed) << 64) | n as u128));
        let event = SupplierEvent::new(event_id, offer.clone(), change, updated_at, sequence).expect("valid event");
        // Suppliers get keys wrong: correctness must not depend on them.
        let key =
            if rng.below(20) == 0 { format!("wrong/{}", rng.below(1000)) } else { format!("{tenant}/{}", offer.sku) };
        let traceparent = (rng.below(2) == 0).then(|| format!("00-{:032x}-{:016x}-01", n + 1, n + 1));
        messages.push(TestMessage {
            key: Some(key),
            payload: Some(encode(&event).into_bytes()),
            traceparent,
            partition: None,
        });
    }
    Feed { messages, n_poison }
}

/// Item quantities a correct system ends with, whatever the order and batching.
pub fn expected_quantities(messages: &[TestMessage]) -> BTreeMap<ItemKey, i64> {
    let received_at = Utc::now();
    let deliveries: Vec<Delivery> = messages
        .iter()
        .map(|message| Delivery { decoded: decode(message.payload.as_deref().unwrap_or_default()), received_at })
        .collect();
    let mut reference = ReferenceCatalog::default();
    reference.apply(&deliveries, &AllSyncOn, ClockPolicy::default());
    reference.item_quantities().into_iter().filter(|(_, quantity)| *quantity != 0).collect()
}

/// The next offset per partition once every produced message is applied.
pub fn end_offsets(positions: &[(i32, i64)]) -> HashMap<i32, i64> {
    let mut ends = HashMap::new();
    for (partition, offset) in positions {
        let end = ends.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

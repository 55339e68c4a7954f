//! Property tests over the whole range of valid ids and values: a SKU's normalization is
//! idempotent, an item's id is UUID v5 of its key, and every event `SupplierEvent::new`
//! builds, at any instant, reads back from its encoding.

use catalog_core::{
    decode, encode, EventId, ItemKey, NewEventError, OfferKey, RejectReason, Sku, StockChange, SupplierEvent,
    SupplierId, TenantId, ITEM_ID_NAMESPACE, MAX_QUANTITY,
};
use chrono::{DateTime, Datelike, Utc};
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::properties::CASES;

fn lower_id() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,64}"
}

/// A SKU as a supplier may write it: any case, padded with blanks; normalized it fits.
fn raw_sku() -> impl Strategy<Value = String> {
    "[ \t]{0,2}[A-Za-z0-9._-]{1,64}[ \t]{0,2}"
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// Normalizing a SKU twice is normalizing it once, and any spelling of it (case,
    /// blanks around) is the same SKU.
    #[test]
    fn sku_normalization_is_idempotent(raw in raw_sku()) {
        let sku = Sku::parse(&raw).expect("generated valid");
        prop_assert_eq!(Sku::parse(sku.as_str()), Ok(sku.clone()));
        prop_assert_eq!(Sku::parse(&format!(" {} ", raw.to_lowercase())), Ok(sku.clone()));
        prop_assert_eq!(Sku::parse(&raw.to_uppercase()), Ok(sku));
    }

    /// An item's id is UUID v5 of `"{tenant}/{sku}"` under `ITEM_ID_NAMESPACE`, for ids of
    /// every length up to the longest.
    #[test]
    fn item_id_is_uuid_v5_of_tenant_and_sku(tenant in lower_id(), raw in raw_sku()) {
        let key = ItemKey { tenant: TenantId::parse(&tenant).expect("generated valid"), sku: Sku::parse(&raw).expect("generated valid") };
        let name = format!("{}/{}", key.tenant, key.sku);
        prop_assert_eq!(key.item_id().0, uuid::Uuid::new_v5(&ITEM_ID_NAMESPACE, name.as_bytes()));
    }
}

/// Any instant `DateTime<Utc>` holds, to the nanosecond, half of them in the years 1 to 9999.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    prop_oneof![(min..=max, 0u32..1_000_000_000), (-62_135_596_800i64..253_402_300_800, 0u32..1_000_000_000)]
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).expect("in range"))
}

fn any_change() -> impl Strategy<Value = StockChange> {
    prop_oneof![
        (0..=MAX_QUANTITY).prop_map(|quantity| StockChange::Updated { quantity }),
        (-MAX_QUANTITY..=MAX_QUANTITY)
            .prop_filter("delta is non-zero", |delta| *delta != 0)
            .prop_map(|delta| StockChange::Adjusted { delta }),
    ]
}

proptest! {
    #![proptest_config(Config::with_cases(CASES))]

    /// `decode(encode(e)) == e` for every event `new` builds, whatever its values; `new`
    /// refuses exactly the instants RFC 3339 cannot write (outside the years 0000 to 9999).
    #[test]
    fn every_event_new_builds_reads_back_from_its_encoding(
        id in any::<u128>(),
        (tenant, supplier, sku) in (lower_id(), lower_id(), raw_sku()),
        change in any_change(),
        updated_at in any_instant(),
        sequence in any::<Option<u64>>(),
    ) {
        let offer = OfferKey {
            tenant: TenantId::parse(&tenant).expect("generated valid"),
            supplier: SupplierId::parse(&supplier).expect("generated valid"),
            sku: Sku::parse(&sku).expect("generated valid"),
        };
        match SupplierEvent::new(EventId(uuid::Uuid::from_u128(id)), offer, change, updated_at, sequence) {
            Ok(event) => prop_assert_eq!(decode(encode(&event).as_bytes()), Ok(event)),
            Err(error) => {
                prop_assert_eq!(error, NewEventError::UpdatedAt(updated_at));
                prop_assert!(!(0..=9999).contains(&updated_at.year()));
            }
        }
    }
}

/// A timestamp RFC 3339 writes, but whose UTC instant falls outside the years 0000 to 9999,
/// is refused as `invalid_updated_at`: it could not be written back.
#[test]
fn an_updated_at_outside_the_years_rfc_3339_writes_in_utc_is_refused() {
    for updated_at in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00"] {
        let message = format!(
            r#"{{"event_id":"018f6b1e-0000-7000-8000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"A-1","quantity":1,"updated_at":"{updated_at}"}}"#
        );
        let rejection = decode(message.as_bytes()).expect_err(updated_at);
        assert_eq!(rejection.reason, RejectReason::InvalidUpdatedAt, "{updated_at}: {}", rejection.detail);
    }
    let last = r#"{"event_id":"018f6b1e-0000-7000-8000-000000000001","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"A-1","quantity":1,"updated_at":"9999-12-31T23:59:59Z"}"#;
    assert!(decode(last.as_bytes()).is_ok(), "the last second RFC 3339 writes");
}

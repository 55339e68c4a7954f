//! Property tests over the whole range of valid ids: a SKU's normalization is idempotent,
//! and an item's id is UUID v5 of its key.

use catalog_core::{ItemKey, Sku, TenantId, ITEM_ID_NAMESPACE};
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

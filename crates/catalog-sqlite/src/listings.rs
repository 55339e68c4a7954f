//! SKUs that items of several tenants a channel serves hold (decision 0056): a channel that
//! knows listings by SKU alone writes none of them.

use catalog_core::Sku;
use catalog_store::{rows, SharedSku, StoreConfig, StoreError};
use sqlx::SqlitePool;

use crate::columns::json_strings;
use crate::error::store_error;

/// Of `skus`, those held by items of more than one tenant the routes of `channels` serve
/// (the signals' routes, `signals::routes`), with those tenants. One statement, by `items_sku`.
pub(crate) async fn skus_of_several_tenants(
    pool: &SqlitePool,
    config: &StoreConfig,
    channels: &[String],
    skus: &[Sku],
) -> Result<Vec<SharedSku>, StoreError> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<(String, String)> = sqlx::query_as(
        "WITH served AS ( \
             SELECT i.sku, i.tenant_id FROM items AS i \
             WHERE i.sku IN (SELECT value FROM json_each(?1)) \
               AND EXISTS (SELECT 1 FROM json_each(?2) AS r \
                           WHERE json_extract(r.value, '$[0]') IN (SELECT value FROM json_each(?3)) \
                             AND coalesce(json_extract(r.value, '$[1]'), i.tenant_id) = i.tenant_id)) \
         SELECT sku, tenant_id FROM served \
         WHERE sku IN (SELECT sku FROM served GROUP BY sku HAVING count(*) > 1)",
    )
    .bind(json_strings(skus.iter().map(Sku::as_str)))
    .bind(crate::signals::routes(config))
    .bind(json_strings(channels))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows::shared_skus(found)
}

//! SKUs that items of several tenants a channel serves hold (decision 0056): a channel that
//! knows listings by SKU alone writes none of them.

use catalog_core::Sku;
use catalog_store::{rows, SharedSku, StoreConfig, StoreError};
use sqlx::PgPool;

use crate::store_error;

/// Of `skus`, those held by items of more than one tenant the routes of `channels` serve
/// (the signals' routes, `signals::routes`), with those tenants. One statement, by `items_sku`.
pub(crate) async fn skus_of_several_tenants(
    pool: &PgPool,
    config: &StoreConfig,
    channels: &[String],
    skus: &[Sku],
) -> Result<Vec<SharedSku>, StoreError> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let (route_channels, route_tenants) = crate::signals::routes(config);
    let skus: Vec<&str> = skus.iter().map(Sku::as_str).collect();
    let found: Vec<(String, String)> = sqlx::query_as(
        "WITH served AS (
             SELECT i.sku, i.tenant_id FROM items AS i
             WHERE i.sku = ANY($1)
               AND EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS r (channel, tenant_id)
                           WHERE r.channel = ANY($4) AND (r.tenant_id IS NULL OR r.tenant_id = i.tenant_id)))
         SELECT sku, tenant_id FROM served
         WHERE sku IN (SELECT sku FROM served GROUP BY sku HAVING count(*) > 1)",
    )
    .bind(&skus)
    .bind(&route_channels)
    .bind(&route_tenants)
    .bind(channels)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows::shared_skus(found)
}

//! A supplier first seen by a batch while a gate step is written: the step sets every
//! supplier of the tenant it sees, and a batch's new supplier, not committed yet, is not
//! among them.

use std::sync::Arc;
use std::time::Duration;

use catalog_core::{Rollout, StockChange, SupplierId, TenantId};
use catalog_store::contract::{batch, incoming, offer, rollout_change};
use catalog_store::prelude::*;
use catalog_store::StoreConfig;
use catalog_testkit::TestDatabase;

use crate::connect;

/// A tenant at canary (acme) opens while a batch holding globex's first event is on its way.
/// The step holds the tenant's row; the batch reads the canary's flag for new suppliers
/// (held), then waits for the row to create globex, and the step has set every supplier it
/// saw. Before, globex was created held after the open, for good: every globex event held
/// after the gate opened, none replayed. Now it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_first_seen_while_the_tenant_opens_is_on() {
    let database = TestDatabase::create().await;
    let store: Arc<dyn CatalogStore> = Arc::new(connect(&database, StoreConfig::default()).await);
    let tenant = TenantId::parse("canary").expect("tenant");
    let canary = Rollout::Canary { supplier: SupplierId::parse("acme").expect("supplier") };
    let first = batch(vec![incoming(1, &offer("canary", "acme", "A-1"), StockChange::Updated { quantity: 5 }, 0, 0)]);
    store.apply_batch(&first).await.expect("apply");
    let step = rollout_change(&*store, &tenant, &Rollout::Closed, &canary, "canary").await;
    assert!(store.change_rollout(&step).await.expect("canary").is_some());

    // An open in flight, as `change_rollout` writes it: the tenant's row locked first; the
    // batch reads the canary's flag for new suppliers and waits for the row to create globex;
    // then the tenant's flags and every supplier the step sees are switched on, and committed.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let mut opening = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM tenants WHERE tenant_id = 'canary' FOR UPDATE")
        .execute(&mut *opening)
        .await
        .expect("lock the tenant");
    let applying = tokio::spawn({
        let store = Arc::clone(&store);
        let globex =
            batch(vec![incoming(2, &offer("canary", "globex", "A-1"), StockChange::Updated { quantity: 2 }, 0, 1)]);
        async move { store.apply_batch(&globex).await }
    });
    // A session of this database blocked (another test's database may be waiting too).
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0";
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&pool).await.expect("locks") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for statement in [
        "UPDATE tenants SET sync_enabled = true, new_suppliers_enabled = true WHERE tenant_id = 'canary'",
        "UPDATE suppliers SET sync_enabled = true WHERE tenant_id = 'canary'",
        "UPDATE tenant_rollouts SET stage = 'open', suppliers = '[]', changed_at = now() WHERE tenant_id = 'canary'",
    ] {
        sqlx::query(statement).execute(&mut *opening).await.expect(statement);
    }
    opening.commit().await.expect("open");
    applying.await.expect("join").expect("apply");

    assert_eq!(store.rollout(&tenant).await.expect("rollout").rollout, Rollout::Open);
    let flags = store.tenant_flags(&tenant).await.expect("flags").expect("known");
    let globex = SupplierId::parse("globex").expect("supplier");
    assert_eq!(flags.suppliers.get(&globex), Some(&true), "{flags:?}");
}

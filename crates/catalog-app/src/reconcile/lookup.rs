//! Reconciling a marketplace: it shows no list in item id order and no version, only the
//! quantity of the listings it is asked about. Each store page's items whose current version
//! the channel accepted are asked about, as many per request as the platform reads at once;
//! a listing it does not hold is `missing`, another quantity `quantity_differs` (decision
//! 0022). What it shows is taken as the version it last accepted.

use catalog_core::{Shown, TenantId};
use catalog_publish::{LookupReadBack, ShownQuantities};
use catalog_store::ChannelItem;

use super::{Pacer, Reconciler, SweepError, SweepReport};

impl Reconciler {
    /// Asks the channel about every listed item of `tenant` whose current version it
    /// accepted (the others are still on their way, so not drift), page by page.
    pub(super) async fn look_up_tenant(
        &self,
        reader: &dyn LookupReadBack,
        tenant: &TenantId,
        pacer: &mut Pacer,
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let page_size = self.settings.page_size.clamp(1, catalog_publish::MAX_PAGE);
        let per_request = reader.max_lookup().max(1);
        let settle = self.settle.unwrap_or_else(|| reader.settle());
        let mut store_after = None;
        loop {
            let page = self.store.reconcile_page(&self.channel, tenant, store_after, page_size).await?;
            let Some(last) = page.last() else { break };
            store_after = Some(last.item_id);
            let asked: Vec<(&ChannelItem, &str)> = page
                .iter()
                .filter(|item| item.version > 0 && item.accepted == Some(item.version))
                .filter_map(|item| Some((item, self.rules.listing_of(&item.sku)?)))
                .collect();
            let mut corrections = Vec::new();
            for chunk in asked.chunks(per_request) {
                let listings: Vec<&str> = chunk.iter().map(|(_, listing)| *listing).collect();
                let shown = self.read_quantities(reader, &listings, pacer).await?;
                for (item, listing) in chunk {
                    report.items_compared += 1;
                    let shown =
                        shown.get(*listing).map(|quantity| Shown { quantity: *quantity, version: item.version });
                    if let Some(correction) = self.compare(item, shown).filter(|_| self.confirmed(item, settle)) {
                        corrections.push(correction);
                    }
                }
            }
            self.correct(&corrections, report).await?;
            if page.len() < page_size {
                break;
            }
        }
        Ok(())
    }

    /// The quantities the channel shows for `listings`, retrying throttling and transient
    /// failures a bounded number of times.
    async fn read_quantities(
        &self,
        reader: &dyn LookupReadBack,
        listings: &[&str],
        pacer: &mut Pacer,
    ) -> Result<ShownQuantities, SweepError> {
        let mut attempt = 0;
        loop {
            pacer.wait().await;
            attempt += 1;
            match reader.shown_quantities(listings).await {
                Ok(shown) => return Ok(shown),
                Err(error) => self.wait_to_retry(error, attempt).await?,
            }
        }
    }
}

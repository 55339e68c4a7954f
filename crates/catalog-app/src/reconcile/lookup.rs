//! Reconciling a marketplace: it shows no list in item id order and no version, only the
//! quantity of the listings it is asked about. Each store page's items whose current version
//! the channel accepted are asked about, as many per request as the platform reads at once;
//! a listing it does not hold is `missing`, another quantity `quantity_differs` (decision
//! 0022). What it shows is taken as the version it last accepted. A platform with a list of
//! its whole catalog (Walmart) has it read once per sweep, before the store's pages, and only
//! the listings it does not show as expected are asked about (decision 0023).

use catalog_core::{Shown, TenantId};
use catalog_publish::{CatalogList, LookupReadBack, ReadBackError, ShownQuantities};
use catalog_store::ChannelItem;

use super::{Pacer, Reconciler, SweepError, SweepReport};

impl Reconciler {
    /// Asks the channel about every listed item of `tenant` whose current version it
    /// accepted (the others are still on their way, so not drift), page by page.
    pub(super) async fn look_up_tenant(
        &self,
        reader: &dyn LookupReadBack,
        listed: Option<&ShownQuantities>,
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
                .filter(|(item, listing)| {
                    // What the catalog list shows as expected is compared already; the rest
                    // is asked about now: the list was read before this page.
                    let agrees = listed.and_then(|listed| listed.get(*listing)).is_some_and(|quantity| {
                        self.compare(item, Some(Shown { quantity: *quantity, version: item.version })).is_none()
                    });
                    report.items_compared += u64::from(agrees);
                    !agrees
                })
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

    /// The quantities the channel shows for `listings`.
    async fn read_quantities(
        &self,
        reader: &dyn LookupReadBack,
        listings: &[&str],
        pacer: &mut Pacer,
    ) -> Result<ShownQuantities, SweepError> {
        self.paced_read(pacer, || reader.shown_quantities(listings)).await
    }

    /// Every listing the platform's list of its whole catalog shows, page by page. A cursor
    /// given twice in a row would never end: the sweep stops on it.
    pub(super) async fn read_catalog(
        &self,
        list: &dyn CatalogList,
        pacer: &mut Pacer,
        report: &mut SweepReport,
    ) -> Result<ShownQuantities, SweepError> {
        let mut listed = ShownQuantities::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.paced_read(pacer, || list.catalog_page(cursor.as_deref())).await?;
            listed.extend(page.shown);
            match page.next {
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    let error = format!("the catalog list gave the cursor {next:?} twice in a row");
                    return Err(ReadBackError::Malformed(error).into());
                }
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        report.listed = listed.len() as u64;
        Ok(listed)
    }
}

//! Reconciling a marketplace: it shows no list in item id order and no version, only the
//! quantity of the listings it is asked about. Each store page's items whose current version
//! the channel accepted are asked about, as many per request as the platform reads at once;
//! a listing it does not hold is `missing`, another quantity `quantity_differs` (decision
//! 0022). What it shows is taken as the version it last accepted. A platform with a list of
//! its whole catalog (Walmart) has it read once per sweep, before the store's pages, and only
//! the listings it does not show as expected are asked about (decision 0023).

use std::collections::HashSet;

use catalog_core::{Shown, TenantId};
use catalog_publish::{CatalogList, LookupReadBack, ReadBackError, ShownQuantities};
use catalog_store::ChannelItem;

use super::{Pacer, Reconciler, SweepError, SweepReport};

impl Reconciler {
    /// Asks the channel about every listed item of `tenant` whose current version it
    /// accepted, or would have were it on its way still (the others are on their way, so
    /// not drift: `expected`), page by page.
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
                .filter(|item| item.version > 0 && super::expected(item, item.quantity).accepted == Some(item.version))
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
        let n_requests = reader.requests_per_read(listings);
        self.paced_read(pacer, n_requests, || reader.shown_quantities(listings)).await
    }

    /// Every listing the platform's list of its whole catalog shows, page by page. A cursor
    /// given again would never end: the sweep stops on it.
    pub(super) async fn read_catalog(
        &self,
        list: &dyn CatalogList,
        pacer: &mut Pacer,
        report: &mut SweepReport,
    ) -> Result<ShownQuantities, SweepError> {
        let mut listed = ShownQuantities::new();
        let mut cursors = Cursors::default();
        loop {
            let page = self.paced_read(pacer, 1, || list.catalog_page(cursors.current())).await?;
            listed.extend(page.shown);
            if !cursors.move_to(page.next).map_err(|error| self.counted(error))? {
                break;
            }
        }
        report.listed = listed.len() as u64;
        Ok(listed)
    }
}

/// The cursors of one walk through a catalog list: the current one, and every one given so
/// far, so a list whose cursors run in a cycle (not only one given twice in a row) is
/// stopped instead of read for ever.
#[derive(Debug, Default)]
struct Cursors {
    current: Option<String>,
    seen: HashSet<String>,
}

impl Cursors {
    /// The cursor of the page to read (`None`: the first page).
    fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Moves to the page after this one: `false` on the last page, an error when the list
    /// gives a cursor it gave before.
    fn move_to(&mut self, next: Option<String>) -> Result<bool, ReadBackError> {
        let Some(next) = next else { return Ok(false) };
        if !self.seen.insert(next.clone()) {
            let pages = self.seen.len() + 1;
            let error = format!("the catalog list gave the cursor {next:?} again, after {pages} pages");
            return Err(ReadBackError::Malformed(error));
        }
        self.current = Some(next);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(cursors: &mut Cursors, given: &[Option<&str>]) -> Result<Vec<Option<String>>, ReadBackError> {
        let mut read = vec![cursors.current().map(str::to_owned)];
        for next in given {
            if !cursors.move_to(next.map(str::to_owned))? {
                break;
            }
            read.push(cursors.current().map(str::to_owned));
        }
        Ok(read)
    }

    #[test]
    fn a_list_is_walked_to_its_last_page() {
        let read = walk(&mut Cursors::default(), &[Some("a"), Some("b"), None]).expect("ends");
        assert_eq!(read, [None, Some("a".to_owned()), Some("b".to_owned())]);
    }

    #[test]
    fn a_cursor_given_again_stops_the_walk_in_a_row_or_in_a_cycle() {
        for given in [&[Some("a"), Some("a")][..], &[Some("a"), Some("b"), Some("c"), Some("a")][..]] {
            let error = walk(&mut Cursors::default(), given).expect_err("a cycle");
            assert!(matches!(&error, ReadBackError::Malformed(text) if text.contains("\"a\" again")), "{error:?}");
        }
    }
}

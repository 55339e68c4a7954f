//! `replay --tenant T --since … [--until …] [--supplier S] [--dry-run]`: re-runs every
//! journaled event of a tenant received in a window through the same `catalog-core` rules and
//! the same `apply_batch` (held events get a fresh decision, applied ones are no-ops by
//! construction), then queues a publish of every touched item's current version.
//! Standard output is exactly the touched item ids, one per line, each once, in (tenant, sku)
//! order; the summary and progress go to standard error.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};
use catalog_core::{decode, Delivery, ItemId, ItemKey, OfferKey, Outcome, Sku, SupplierEvent, SupplierId, TenantId};
use catalog_store::{BatchInput, CatalogStore, IncomingEvent, JournalEntry, JournalWindow, Provenance};
use chrono::{DateTime, Utc};
use clap::Parser;
use sync_worker::config::StoreArgs;

/// Events replayed per store transaction.
const BATCH: usize = 5_000;

/// Streams of the window a replay applies at once, as the worker applies partitions: an item
/// (and so each of its offers) belongs to one lane, so two lanes never write the same offer
/// or item row, and the store's work on them proceeds side by side.
const LANES: usize = 4;

/// Re-runs a bounded window of one tenant's journal and prints the item ids it touched.
#[derive(Debug, Clone, Parser)]
#[command(name = "replay", version, about)]
pub struct ReplayArgs {
    /// The tenant whose journal is replayed.
    #[arg(long, env = "CATALOG_REPLAY_TENANT", value_parser = parse_tenant)]
    pub tenant: TenantId,

    /// Start of the window (RFC 3339, inclusive), on the time events were received.
    #[arg(long, env = "CATALOG_REPLAY_SINCE", value_parser = parse_time)]
    pub since: DateTime<Utc>,

    /// End of the window (RFC 3339, exclusive); open when absent.
    #[arg(long, env = "CATALOG_REPLAY_UNTIL", value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,

    /// Only this supplier's events.
    #[arg(long, env = "CATALOG_REPLAY_SUPPLIER", value_parser = parse_supplier)]
    pub supplier: Option<SupplierId>,

    /// Print the item ids and what would change, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("{value:?} is not an RFC 3339 time (e.g. 2026-06-01T12:00:00Z): {error}"))
}

fn parse_tenant(value: &str) -> Result<TenantId, String> {
    TenantId::parse(value).map_err(|error| format!("tenant {value:?} {error}"))
}

fn parse_supplier(value: &str) -> Result<SupplierId, String> {
    SupplierId::parse(value).map_err(|error| format!("supplier {value:?} {error}"))
}

/// What a replay did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub n_journaled: usize,
    pub n_replayed: usize,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Touched items, in (tenant, sku) order.
    pub touched: Vec<(ItemKey, ItemId)>,
    /// Items whose quantity changed: sku, quantity before (known in a dry run), after.
    pub changed: Vec<(String, Option<i64>, i64)>,
    pub republished: u64,
}

/// The event a journal row describes, as it would arrive again, or `None` when there is
/// nothing to decide afresh (a rejection the current rules still reject, a duplicate row).
fn replayable(entry: &JournalEntry, tenant: &TenantId) -> Option<IncomingEvent> {
    let decoded = match (&entry.outcome, entry.event_id, entry.change, entry.updated_at) {
        (Outcome::Rejected(_), _, _, _) => decode(entry.raw_payload.as_deref()?).ok()?,
        (Outcome::Duplicate, _, _, _) => return None,
        (_, Some(event_id), Some(change), Some(updated_at)) => {
            let offer = OfferKey {
                tenant: tenant.clone(),
                supplier: SupplierId::parse(entry.supplier.as_deref()?).ok()?,
                sku: Sku::parse(entry.sku.as_deref()?).ok()?,
            };
            SupplierEvent::new(event_id, offer, change, updated_at, entry.sequence).ok()?
        }
        _ => return None,
    };
    Some(IncomingEvent {
        // The first reception time: a clamped clock is clamped exactly as it was.
        delivery: Delivery { decoded: Ok(decoded), received_at: entry.received_at },
        // The journal keeps a message's bytes for rejections only, and this one decodes.
        raw: Vec::new(),
        source: entry.source.clone(),
        traceparent: entry.traceparent.clone(),
        provenance: Provenance::Replayed,
    })
}

/// Replays the window against `store`.
pub async fn replay(store: &dyn CatalogStore, args: &ReplayArgs) -> Result<ReplaySummary> {
    if let Some(until) = args.until {
        if args.since >= until {
            bail!("--since {} is not before --until {}", args.since.to_rfc3339(), until.to_rfc3339());
        }
    }
    if store.tenant_flags(&args.tenant).await.context("reading the tenant")?.is_none() {
        bail!("unknown tenant {:?}: no event of it was ever received", args.tenant.as_str());
    }
    let window = JournalWindow {
        tenant: args.tenant.clone(),
        since: args.since,
        until: args.until,
        supplier: args.supplier.clone(),
    };
    let entries = store.journal_window(&window).await.context("reading the journal window")?;
    let events: Vec<IncomingEvent> = entries.iter().filter_map(|entry| replayable(entry, &args.tenant)).collect();
    let mut summary =
        ReplaySummary { n_journaled: entries.len(), n_replayed: events.len(), ..ReplaySummary::default() };
    let mut touched: BTreeMap<ItemKey, ItemId> = BTreeMap::new();
    let mut lanes: Vec<Vec<IncomingEvent>> = vec![Vec::new(); LANES];
    for event in events {
        let lane = match &event.delivery.decoded {
            Ok(decoded) => {
                let key = decoded.offer().item_key();
                let id = key.item_id();
                touched.insert(key, id);
                // Item ids are UUID v5 hashes: their bytes spread items evenly over the lanes.
                usize::from(id.0.as_bytes()[0]) % LANES
            }
            // `replayable` replays decoded events only; anything else is applied all the same.
            Err(_) => 0,
        };
        lanes[lane].push(event);
    }
    let progress =
        Progress { shown: std::io::stderr().is_terminal(), done: AtomicUsize::new(0), total: summary.n_replayed };
    let lane_results =
        futures::future::try_join_all(lanes.iter().map(|lane| replay_lane(store, lane, args.dry_run, &progress)))
            .await?;
    progress.finish();
    for result in lane_results.iter().flatten() {
        for decision in &result.decisions {
            *summary.outcomes.entry(decision.outcome.as_str()).or_insert(0) += 1;
        }
        for item in &result.changed_items {
            // A preview was rolled back, so the store still holds the quantity before it.
            let before = if args.dry_run {
                Some(store.item(item.item_id).await.context("reading an item")?.map_or(0, |stored| stored.quantity))
            } else {
                None
            };
            summary.changed.push((item.sku.to_string(), before, item.quantity));
        }
    }
    // Lanes finish in any order: list the changes by SKU (each item's in the order applied).
    summary.changed.sort_by(|a, b| a.0.cmp(&b.0));
    summary.touched = touched.into_iter().collect();
    if !args.dry_run {
        let ids: Vec<ItemId> = summary.touched.iter().map(|(_, id)| *id).collect();
        summary.republished = store.republish(&ids).await.context("queueing the cache bust")?;
    }
    Ok(summary)
}

/// How far a replay got, for a person watching it on a terminal.
struct Progress {
    shown: bool,
    done: AtomicUsize,
    total: usize,
}

impl Progress {
    fn add(&self, n_events: usize) {
        let done = self.done.fetch_add(n_events, Ordering::Relaxed) + n_events;
        if self.shown {
            // Best effort, so a closed stderr is ignored.
            let _ = write!(std::io::stderr(), "\rreplayed {done}/{}", self.total);
        }
    }

    fn finish(&self) {
        if self.shown && self.total > 0 {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Applies (or previews) one lane's events in batches, in journal order.
async fn replay_lane(
    store: &dyn CatalogStore,
    events: &[IncomingEvent],
    dry_run: bool,
    progress: &Progress,
) -> Result<Vec<catalog_store::BatchResult>> {
    let mut results = Vec::new();
    for chunk in events.chunks(BATCH) {
        let batch = BatchInput { events: chunk.to_vec(), checkpoints: Vec::new() };
        let result = if dry_run {
            store.preview_batch(&batch).await.context("previewing the replay")?
        } else {
            store.apply_batch(&batch).await.context("applying the replay")?
        };
        progress.add(chunk.len());
        results.push(result);
    }
    Ok(results)
}

/// The binary: open the store, replay, print ids on stdout and the summary on stderr.
pub async fn run(args: ReplayArgs) -> Result<()> {
    let store =
        sync_worker::open_store(&args.store, vec![catalog_store::ChannelRoute::all(sync_worker::STOREFRONT_CHANNEL)])
            .await?;
    let summary = replay(&*store, &args).await?;
    let mut stdout = std::io::stdout().lock();
    for (_, item_id) in &summary.touched {
        writeln!(stdout, "{item_id}").context("writing to standard output")?;
    }
    stdout.flush().context("writing to standard output")?;
    let mut stderr = std::io::stderr().lock();
    if args.dry_run {
        for (sku, before, after) in &summary.changed {
            let before = before.unwrap_or(0);
            writeln!(stderr, "would change {sku}: {before} -> {after}").context("writing to standard error")?;
        }
    }
    let outcomes: String = summary.outcomes.iter().map(|(outcome, n)| format!(" {outcome}={n}")).collect();
    writeln!(
        stderr,
        "replay{}: tenant={} journaled={} replayed={}{} items_touched={} items_changed={} republished={}",
        if args.dry_run { " (dry run)" } else { "" },
        args.tenant,
        summary.n_journaled,
        summary.n_replayed,
        outcomes,
        summary.touched.len(),
        summary.changed.len(),
        summary.republished
    )
    .context("writing to standard error")?;
    Ok(())
}

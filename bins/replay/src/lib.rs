//! `replay --tenant T --since … [--until …] [--supplier S] [--dry-run]`: the options, and
//! printing what `catalog_app::replay` did. Standard output is exactly the touched item
//! ids, one per line, each once, in (tenant, sku) order; the summary and progress go to
//! standard error.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use catalog_app::replay::{replay, ReplayProgress, ReplayRequest};
use catalog_cli::{ChannelArgs, StoreArgs};
use catalog_core::{SupplierId, TenantId};
use chrono::{DateTime, Utc};
use clap::Parser;

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

    /// End of the window (RFC 3339, exclusive). When absent, the window ends when the replay
    /// starts (events received since were decided by the worker under today's rules).
    #[arg(long, env = "CATALOG_REPLAY_UNTIL", value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,

    /// Only this supplier's events.
    #[arg(long, env = "CATALOG_REPLAY_SUPPLIER", value_parser = parse_supplier)]
    pub supplier: Option<SupplierId>,

    /// Print the item ids and what would change, and write nothing.
    #[arg(long, env = "CATALOG_REPLAY_DRY_RUN")]
    pub dry_run: bool,

    /// Most journal rows a dry run reads: it holds its window in memory, since each item's
    /// events must be previewed together; a replay that writes reads any window a page at a
    /// time. A larger window is refused, naming where to narrow it.
    #[arg(long, env = "CATALOG_REPLAY_MAX_DRY_RUN_EVENTS", default_value_t = catalog_app::replay::MAX_DRY_RUN_EVENTS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_dry_run_events: u64,

    /// Replay only the window's held events. They are never dropped by retention (a day that
    /// holds one is kept), so the window may start before the journal's retention: how the
    /// held events of days kept past it are decided.
    #[arg(long, env = "CATALOG_REPLAY_HELD_ONLY")]
    pub held_only: bool,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub channels: ChannelArgs,
}

impl ReplayArgs {
    /// What the options ask the application layer for.
    pub fn request(&self) -> ReplayRequest {
        ReplayRequest {
            tenant: self.tenant.clone(),
            since: self.since,
            until: self.until,
            supplier: self.supplier.clone(),
            dry_run: self.dry_run,
            max_dry_run_events: usize::try_from(self.max_dry_run_events).unwrap_or(usize::MAX),
            held_only: self.held_only,
        }
    }
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

/// The binary: open the store, replay, print ids on stdout and the summary on stderr.
pub async fn run(args: ReplayArgs) -> Result<()> {
    let store = args.channels.open_store(&args.store).await?;
    let terminal = std::io::stderr().is_terminal();
    // Best effort, so a closed stderr is ignored.
    let progress = |progress: ReplayProgress| {
        if terminal {
            let (done, through) = (progress.replayed, progress.read_through.to_rfc3339());
            let _ = write!(std::io::stderr(), "\rreplayed {done}, journal read through {through}");
        }
    };
    let summary = replay(&*store, &args.request(), &progress).await?;
    if terminal && summary.n_replayed > 0 {
        let _ = writeln!(std::io::stderr());
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::ReplayArgs;

    #[test]
    fn the_replay_options_are_well_formed() {
        ReplayArgs::command().debug_assert();
    }

    /// Every option is a flag and a `CATALOG_*` variable with help text.
    #[test]
    fn every_replay_option_has_an_environment_variable_and_help() {
        assert_eq!(catalog_cli::options::lacking_env_or_help(&ReplayArgs::command()), Vec::<String>::new());
    }
}

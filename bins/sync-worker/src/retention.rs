//! The worker's journal retention options (decision 0019).

use std::path::PathBuf;
use std::time::Duration;

use catalog_app::retention::RetentionSettings;
use catalog_cli::Switch;
use catalog_core::ClockPolicy;
use clap::Args;

/// Journal retention: archive, then drop, what was received longer ago than the retention.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// `on`: keep the journal bounded (archive and drop old days, make the next days ahead,
    /// forget claims past the dedupe horizon, drop old publish attempts and drifts); `off`
    /// leaves it to another worker.
    #[arg(long = "journal-retention", env = "CATALOG_JOURNAL_RETENTION", value_enum, default_value_t = Switch::On)]
    pub journal_retention: Switch,

    /// Days of journal kept; older rows are archived, then dropped. Publish attempts and drifts
    /// are kept as long, then dropped without an archive. Event id claims are kept at least 32
    /// days whatever this says, so a late redelivery is never applied twice.
    #[arg(long = "journal-retention-days", env = "CATALOG_JOURNAL_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub journal_retention_days: u32,

    /// Directory the archives go to: one gzip-compressed NDJSON file per day of journal
    /// (`events_YYYYMMDD.ndjson.gz`, one journal entry per line), synced before anything is
    /// dropped.
    #[arg(long = "journal-archive-dir", env = "CATALOG_JOURNAL_ARCHIVE_DIR", default_value = "journal-archive")]
    pub journal_archive_dir: PathBuf,

    /// Seconds between two retention passes.
    #[arg(long = "journal-retention-interval-secs", env = "CATALOG_JOURNAL_RETENTION_INTERVAL_SECS",
          default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..))]
    pub journal_retention_interval_secs: u64,

    /// Days of journal and publish attempt partitions made ahead of need (PostgreSQL).
    #[arg(long = "journal-days-ahead", env = "CATALOG_JOURNAL_DAYS_AHEAD", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub journal_days_ahead: u32,

    /// Rows archived, deleted or forgotten per statement and per transaction.
    #[arg(long = "journal-retention-chunk", env = "CATALOG_JOURNAL_RETENTION_CHUNK", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub journal_retention_chunk: u64,
}

impl RetentionArgs {
    pub fn settings(&self, clock: ClockPolicy) -> RetentionSettings {
        RetentionSettings {
            retention: chrono::Duration::days(i64::from(self.journal_retention_days)),
            archive_dir: self.journal_archive_dir.clone(),
            interval: Duration::from_secs(self.journal_retention_interval_secs),
            days_ahead: self.journal_days_ahead,
            chunk: usize::try_from(self.journal_retention_chunk).unwrap_or(10_000),
            clock,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::config::WorkerArgs;

    /// Every option of the worker has its own id, long name and env var: two fields of the
    /// same name in two flattened groups (both once called `mode`) would make clap refuse
    /// every command line.
    #[test]
    fn the_worker_options_are_well_formed() {
        WorkerArgs::command().debug_assert();
    }

    /// Every option is a flag and a `CATALOG_*` variable with help text.
    #[test]
    fn every_worker_option_has_an_environment_variable_and_help() {
        assert_eq!(catalog_cli::options::lacking_env_or_help(&WorkerArgs::command()), Vec::<String>::new());
    }
}

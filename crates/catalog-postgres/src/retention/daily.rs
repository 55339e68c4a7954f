//! The day-partitioned tables (the journal by receipt, the publish attempts by when they were
//! made): days made ahead by an attach, detached concurrently, dropped; days a pass left
//! detached found again (decisions 0019, 0030).

use catalog_store::StoreError;
use chrono::{DateTime, Days, NaiveTime, Utc};
use sqlx::PgPool;

use crate::store_error;

/// A table partitioned by day: the journal, by the day each row was received; the publish
/// attempts, by the day each was made (decision 0030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Daily {
    parent: &'static str,
    /// The partition key: the time a row's day is the day of.
    key: &'static str,
}

pub(crate) const JOURNAL: Daily = Daily { parent: "events", key: "received_at" };
pub(crate) const ATTEMPTS: Daily = Daily { parent: "publish_attempts", key: "attempted_at" };

/// A partition of a [`Daily`] table and the times it holds: `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Partition {
    pub(crate) name: String,
    /// `None` for the partition that starts at `MINVALUE` (the rows written before the table
    /// was partitioned).
    pub(crate) from: Option<DateTime<Utc>>,
    pub(crate) until: DateTime<Utc>,
    /// A detach of it is pending (a pass died inside `DETACH … CONCURRENTLY`): its rows are
    /// no longer read through the parent.
    pub(crate) detaching: bool,
}

/// A detached table's name and the bounds its check constraints give.
type LeftoverRow = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Tables named as day partitions of a table (`$1`) in this schema, the rows from before
/// partitioning included, that are no partition: detached by a pass, with the bounds of the
/// check constraint the detach added.
const LEFTOVERS: &str = r#"
    SELECT c.relname::text AS name,
           min((regexp_match(pg_get_constraintdef(k.oid), '>= ''([^'']*)''::timestamp'))[1]::timestamptz) AS "from",
           max((regexp_match(pg_get_constraintdef(k.oid), '< ''([^'']*)''::timestamp'))[1]::timestamptz) AS until
    FROM pg_class c LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'c'
    WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relnamespace = current_schema()::regnamespace
      AND c.relname ~ ('^' || $1 || '_([0-9]{8}|unpartitioned)$')
    GROUP BY c.relname
    ORDER BY until NULLS FIRST"#;

/// Every partition of a table (`$1`), oldest first, with its bounds as Postgres reads them.
const PARTITIONS: &str = r#"
    SELECT c.relname::text AS name,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS "from",
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz AS until,
           i.inhdetachpending AS detaching
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = $1::regclass
    ORDER BY until"#;

impl Daily {
    pub(crate) async fn partitions(self, pool: &PgPool) -> Result<Vec<Partition>, StoreError> {
        sqlx::query_as(PARTITIONS).bind(self.parent).fetch_all(pool).await.map_err(store_error)
    }

    /// The partition name of the day starting at `day`.
    fn day_name(self, day: DateTime<Utc>) -> String {
        format!("{}_{}", self.parent, day.format("%Y%m%d"))
    }

    /// A partition name from the catalog, checked before it is put into a statement.
    pub(super) fn quoted(self, name: &str) -> Result<String, StoreError> {
        let own = name.strip_prefix(self.parent).is_some_and(|rest| rest.starts_with('_'));
        if own && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_') {
            Ok(format!("\"{name}\""))
        } else {
            Err(StoreError::Corrupt(format!("unexpected {} partition name {name:?}", self.parent)))
        }
    }

    /// Creates a partition for every day from `from`'s through `until`'s that no partition
    /// covers. Returns how many it created.
    ///
    /// A day is made as a table of its own, checked to hold only its day, then attached: an
    /// attach locks the parent `SHARE UPDATE EXCLUSIVE`, which no batch, read or record waits
    /// on, where `CREATE TABLE … PARTITION OF` locks it `ACCESS EXCLUSIVE`, waiting behind any
    /// transaction reading the table (a trace, a replay's window) with every batch queued
    /// behind it.
    pub(crate) async fn prepare(
        self,
        pool: &PgPool,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        // A day a retention pass holds detached is left to it: made again once it is dropped.
        let mut existing = self.partitions(pool).await?;
        existing.extend(self.leftovers(pool).await?);
        let covered = |day: DateTime<Utc>| {
            existing.iter().any(|partition| partition.from.is_none_or(|from| from <= day) && day < partition.until)
        };
        let mut created = 0;
        let mut day = start_of_day(from);
        while day <= until {
            let next = next_day(day)?;
            if !covered(day) {
                let (parent, key, table) = (self.parent, self.key, self.quoted(&self.day_name(day))?);
                let (from, until) = (day.to_rfc3339(), next.to_rfc3339());
                let statements = [
                    format!("CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
                    format!(
                        "ALTER TABLE {table} ADD CHECK ({key} IS NOT NULL AND {key} >= '{from}' AND {key} < '{until}')"
                    ),
                    format!("ALTER TABLE {parent} ATTACH PARTITION {table} FOR VALUES FROM ('{from}') TO ('{until}')"),
                ];
                match attached(pool, statements).await {
                    Ok(_) => created += 1,
                    // Another process made it first (42P07; 23505, or 42710 for the table's row
                    // type, when both created the table at once), or one overlapping it (42P17).
                    Err(sqlx::Error::Database(error))
                        if matches!(error.code().as_deref(), Some("42P07" | "23505" | "42710" | "42P17")) => {}
                    Err(error) => return Err(store_error(error)),
                }
            }
            day = next;
        }
        Ok(created)
    }

    /// Detaches partition `name` without blocking writers of the others, then drops it.
    pub(super) async fn detach_and_drop(self, pool: &PgPool, name: &str) -> Result<(), StoreError> {
        self.detach(pool, name).await?;
        self.drop(pool, name).await
    }

    /// Detaches partition `name` without blocking writers of the others: it returns once every
    /// transaction that could write the partition has ended. A detach interrupted earlier (the
    /// process died) left the partition pending: that one is finalized.
    pub(super) async fn detach(self, pool: &PgPool, name: &str) -> Result<(), StoreError> {
        let (parent, table) = (self.parent, self.quoted(name)?);
        match sqlx::raw_sql(&format!("ALTER TABLE {parent} DETACH PARTITION {table} CONCURRENTLY")).execute(pool).await
        {
            Ok(_) => {}
            // object_not_in_prerequisite_state: a concurrent detach of it is pending.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55000") => {
                sqlx::raw_sql(&format!("ALTER TABLE {parent} DETACH PARTITION {table} FINALIZE"))
                    .execute(pool)
                    .await
                    .map_err(store_error)?;
            }
            Err(error) => return Err(store_error(error)),
        }
        Ok(())
    }

    pub(super) async fn drop(self, pool: &PgPool, name: &str) -> Result<(), StoreError> {
        let table = self.quoted(name)?;
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {table}")).execute(pool).await.map_err(store_error)?;
        Ok(())
    }

    /// Attaches the detached table `name` again as `partition`'s days. It keeps the check
    /// constraint of its bounds the detach added, so its rows are not scanned.
    pub(super) async fn attach(self, pool: &PgPool, partition: &Partition) -> Result<(), StoreError> {
        let from = partition.from.map_or("MINVALUE".to_owned(), |from| format!("'{}'", from.to_rfc3339()));
        let statement = format!(
            "ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({from}) TO ('{}')",
            self.parent,
            self.quoted(&partition.name)?,
            partition.until.to_rfc3339()
        );
        sqlx::raw_sql(&statement).execute(pool).await.map_err(store_error)?;
        Ok(())
    }

    /// A retryable error when a day from `from`'s through `until`'s is held detached by a
    /// retention pass (a row for it waits for the pass: its day is made again once dropped).
    pub(crate) async fn check_not_detached(
        self,
        pool: &PgPool,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A detach still pending (`DETACH … CONCURRENTLY` under way, or cut off) holds its
        // day as surely as one done: rows for it wait too.
        let pending = self.partitions(pool).await?.into_iter().filter(|partition| partition.detaching);
        let held = self
            .leftovers(pool)
            .await?
            .into_iter()
            .chain(pending)
            .find(|leftover| leftover.from.is_none_or(|start| start <= until) && from < leftover.until);
        match held {
            Some(leftover) => Err(StoreError::Unavailable(format!(
                "{} is being archived by a retention pass: rows received on its days are written once it ends",
                leftover.name
            ))),
            None => Ok(()),
        }
    }

    /// Tables of this parent detached but not dropped (a pass died in between, or one is
    /// archiving them now), as the partitions they were: their bounds from the check
    /// constraint the detach left, else from the day in their name.
    pub(super) async fn leftovers(self, pool: &PgPool) -> Result<Vec<Partition>, StoreError> {
        let rows: Vec<LeftoverRow> =
            sqlx::query_as(LEFTOVERS).bind(self.parent).fetch_all(pool).await.map_err(store_error)?;
        let mut leftovers = Vec::with_capacity(rows.len());
        for (name, from, until) in rows {
            let day = name
                .rsplit('_')
                .next()
                .and_then(|digits| chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok())
                .map(|day| day.and_time(NaiveTime::MIN).and_utc());
            let (from, until) = match (from, until, day) {
                (from, Some(until), _) => (from, until),
                (_, None, Some(day)) => (Some(day), next_day(day)?),
                // The rows from before partitioning, their bound lost: archived and dropped
                // all the same, the horizon left where it was.
                (_, None, None) => {
                    tracing::warn!(table = %name, "a detached journal table without its bounds");
                    (None, DateTime::<Utc>::MIN_UTC)
                }
            };
            leftovers.push(Partition { name, from, until, detaching: true });
        }
        Ok(leftovers)
    }
}

/// Runs `statements` in one transaction.
async fn attached(pool: &PgPool, statements: [String; 3]) -> Result<(), sqlx::Error> {
    let mut transaction = pool.begin().await?;
    for statement in statements {
        sqlx::query(&statement).execute(&mut *transaction).await?;
    }
    transaction.commit().await
}

/// The start of the day after the one starting at `day`.
fn next_day(day: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
    day.checked_add_days(Days::new(1)).ok_or_else(|| StoreError::Database("date overflow".into()))
}

fn start_of_day(time: DateTime<Utc>) -> DateTime<Utc> {
    time.date_naive().and_time(NaiveTime::MIN).and_utc()
}

/// Makes both tables' days from `from` through `until`.
pub(crate) async fn prepare(pool: &PgPool, from: DateTime<Utc>, until: DateTime<Utc>) -> Result<u32, StoreError> {
    Ok(JOURNAL.prepare(pool, from, until).await? + ATTEMPTS.prepare(pool, from, until).await?)
}

//! A feed's completed windows as coverage, pure: the gaps since going live that no window
//! covers, and the compaction that keeps the rows few (decision 0035). A window's row is only
//! needed for the span it covers, the newest incremental `until` (where the next incremental
//! starts) and the per-day counts of the last days; older windows that overlap or touch are
//! merged into one row that covers the same span and sums what they pulled.

use chrono::{DateTime, Utc};

use crate::feed::{CompletedWindow, WindowKind};

/// The spans of `[go_live, until)` no completed window covers, oldest first.
pub fn gaps(
    go_live: DateTime<Utc>,
    completed: &[CompletedWindow],
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut covered: Vec<(DateTime<Utc>, DateTime<Utc>)> = completed.iter().map(|w| (w.since, w.until)).collect();
    covered.sort();
    let mut gaps = Vec::new();
    let mut from = go_live;
    for (since, end) in covered {
        if from >= until {
            break;
        }
        if since > from {
            gaps.push((from, since.min(until)));
        }
        from = from.max(end);
    }
    if from < until {
        gaps.push((from, until));
    }
    gaps
}

/// The gaps a feed has at `now`: those of `[go_live, until)`, where `until` is the end of its
/// newest completed window (or `now`, when none completed). The time since the newest window
/// is no gap: the next incremental run covers it (decision 0018). Backfilling up to `now`
/// instead would pull the seconds a pull itself took as a gap after every pull, for good.
pub fn gaps_at(
    go_live: DateTime<Utc>,
    completed: &[CompletedWindow],
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let until = completed.iter().map(|window| window.until).max().unwrap_or(now).min(now);
    gaps(go_live, completed, until)
}

/// One merge a compaction makes: the rows it replaces and the row that replaces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMerge {
    /// Two or more, by `since`.
    pub replaced: Vec<CompletedWindow>,
    pub merged: CompletedWindow,
}

/// The merges that compact a feed's `windows`: every window completed before `cutoff`, except
/// the incremental one that ends last, is merged with those of them it overlaps or touches.
/// The merged row covers their union, sums their records, pages and windows, completed when
/// the last of them did, and is incremental only when all of them were. A window alone in its
/// span is left as it is. Merging changes no gap, no count and no incremental's start, and
/// compacting compacted windows merges nothing more.
pub fn compact_windows(windows: &[CompletedWindow], cutoff: DateTime<Utc>) -> Vec<WindowMerge> {
    let newest_incremental = windows
        .iter()
        .enumerate()
        .filter(|(_, window)| window.kind == WindowKind::Incremental)
        .max_by_key(|(_, window)| (window.until, window.since))
        .map(|(index, _)| index);
    let (mut old, kept): (Vec<&CompletedWindow>, Vec<&CompletedWindow>) = windows
        .iter()
        .enumerate()
        .map(|(index, window)| (window.completed_at < cutoff && Some(index) != newest_incremental, window))
        .fold((Vec::new(), Vec::new()), |(mut old, mut kept), (merged, window)| {
            if merged {
                old.push(window)
            } else {
                kept.push(window)
            }
            (old, kept)
        });
    old.sort_by_key(|window| (window.since, window.until, window.kind));
    let mut runs: Vec<(DateTime<Utc>, Vec<CompletedWindow>)> = Vec::new();
    for window in old {
        match runs.last_mut() {
            Some((until, run)) if window.since <= *until => {
                *until = (*until).max(window.until);
                run.push(window.clone());
            }
            _ => runs.push((window.until, vec![window.clone()])),
        }
    }
    let key = |window: &CompletedWindow| (window.kind, window.since, window.until);
    runs.into_iter()
        .filter(|(_, run)| run.len() > 1)
        .map(|(_, replaced)| WindowMerge { merged: merge(&replaced), replaced })
        // A row a merge would write over (a window pulled again since, of the very span) keeps
        // the run as it is: rare, and still correct.
        .filter(|merge| kept.iter().all(|window| key(window) != key(&merge.merged)))
        .collect()
}

fn merge(run: &[CompletedWindow]) -> CompletedWindow {
    let all_incremental = run.iter().all(|window| window.kind == WindowKind::Incremental);
    CompletedWindow {
        kind: if all_incremental { WindowKind::Incremental } else { WindowKind::Backfill },
        since: run.iter().map(|window| window.since).min().expect("a run is never empty"),
        until: run.iter().map(|window| window.until).max().expect("a run is never empty"),
        completed_at: run.iter().map(|window| window.completed_at).max().expect("a run is never empty"),
        n_records: run.iter().map(|window| window.n_records).sum(),
        n_pages: run.iter().map(|window| window.n_pages).sum(),
        n_windows: run.iter().map(|window| window.n_windows).sum(),
        requested_at: None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    /// `windows` with `merges` made: what the store holds after a compaction.
    fn apply_merges(windows: &[CompletedWindow], merges: &[WindowMerge]) -> Vec<CompletedWindow> {
        let replaced: Vec<&CompletedWindow> = merges.iter().flat_map(|merge| &merge.replaced).collect();
        let mut kept: Vec<CompletedWindow> =
            windows.iter().filter(|window| !replaced.contains(window)).cloned().collect();
        kept.extend(merges.iter().map(|merge| merge.merged.clone()));
        kept.sort_by_key(|window| (window.since, window.until, window.kind));
        kept
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    fn done(kind: WindowKind, since: &str, until: &str, completed_at: &str) -> CompletedWindow {
        CompletedWindow {
            kind,
            since: at(since),
            until: at(until),
            completed_at: at(completed_at),
            n_records: 10,
            n_pages: 1,
            n_windows: 1,
            requested_at: None,
        }
    }

    fn show(windows: &[CompletedWindow]) -> String {
        windows
            .iter()
            .map(|w| {
                format!(
                    "{} {} .. {} done {} records {} pages {} windows {}\n",
                    w.kind.as_str(),
                    w.since,
                    w.until,
                    w.completed_at,
                    w.n_records,
                    w.n_pages,
                    w.n_windows
                )
            })
            .collect()
    }

    #[test]
    fn old_windows_that_overlap_or_touch_become_one_row_and_the_newest_incremental_stays() {
        use WindowKind::{Backfill, Incremental};
        let windows = [
            done(Backfill, "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z", "2026-02-01T01:00:00Z"),
            done(Backfill, "2026-01-08T00:00:00Z", "2026-01-10T00:00:00Z", "2026-02-01T02:00:00Z"),
            done(Incremental, "2026-01-20T00:00:00Z", "2026-01-21T06:00:00Z", "2026-01-21T06:00:00Z"),
            done(Incremental, "2026-01-20T06:00:00Z", "2026-01-21T12:00:00Z", "2026-01-21T12:00:00Z"),
            done(Incremental, "2026-01-20T12:00:00Z", "2026-01-21T18:00:00Z", "2026-01-21T18:00:00Z"),
            done(Incremental, "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-02T00:00:00Z"),
        ];
        let merges = compact_windows(&windows, at("2026-03-01T00:00:00Z"));
        insta::assert_snapshot!(show(&apply_merges(&windows, &merges)), @r"
        backfill 2026-01-01 00:00:00 UTC .. 2026-01-10 00:00:00 UTC done 2026-02-01 02:00:00 UTC records 20 pages 2 windows 2
        incremental 2026-01-20 00:00:00 UTC .. 2026-01-21 18:00:00 UTC done 2026-01-21 18:00:00 UTC records 30 pages 3 windows 3
        incremental 2026-03-01 00:00:00 UTC .. 2026-03-02 00:00:00 UTC done 2026-03-02 00:00:00 UTC records 10 pages 1 windows 1
        ");
        // A feed stopped long ago: its last incremental stays apart, where the next one starts.
        let stopped_long_ago = compact_windows(&windows[2..5], at("2026-03-01T00:00:00Z"));
        insta::assert_snapshot!(show(&apply_merges(&windows[2..5], &stopped_long_ago)), @r"
        incremental 2026-01-20 00:00:00 UTC .. 2026-01-21 12:00:00 UTC done 2026-01-21 12:00:00 UTC records 20 pages 2 windows 2
        incremental 2026-01-20 12:00:00 UTC .. 2026-01-21 18:00:00 UTC done 2026-01-21 18:00:00 UTC records 10 pages 1 windows 1
        ");
    }

    fn window() -> impl Strategy<Value = CompletedWindow> {
        (any::<bool>(), 0_i64..200, 1_i64..30, 0_i64..300, 0_u64..50, 1_u64..3).prop_map(
            |(incremental, since, length, completed, n_records, n_windows)| {
                let origin = at("2026-01-01T00:00:00Z");
                CompletedWindow {
                    kind: if incremental { WindowKind::Incremental } else { WindowKind::Backfill },
                    since: origin + Duration::hours(since),
                    until: origin + Duration::hours(since + length),
                    completed_at: origin + Duration::hours(completed),
                    n_records,
                    n_pages: n_records / 10,
                    n_windows,
                    requested_at: None,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn compaction_changes_no_gap_no_count_nor_where_the_next_incremental_starts(
            windows in proptest::collection::btree_map((0_i64..200, 1_i64..30, any::<bool>()), window(), 0..40),
            cutoff in 0_i64..300,
        ) {
            // One row per (kind, since, until), as the stores' primary key holds them.
            let windows: Vec<CompletedWindow> = windows.into_iter().map(|((since, length, incremental), mut w)| {
                let origin = at("2026-01-01T00:00:00Z");
                w.kind = if incremental { WindowKind::Incremental } else { WindowKind::Backfill };
                w.since = origin + Duration::hours(since);
                w.until = origin + Duration::hours(since + length);
                w
            }).collect();
            let origin = at("2026-01-01T00:00:00Z");
            let cutoff = origin + Duration::hours(cutoff);
            let merges = compact_windows(&windows, cutoff);
            let compacted = apply_merges(&windows, &merges);
            for (go_live, until) in [(0, 240), (17, 100), (50, 51)] {
                let (go_live, until) = (origin + Duration::hours(go_live), origin + Duration::hours(until));
                prop_assert_eq!(gaps(go_live, &compacted, until), gaps(go_live, &windows, until));
            }
            let totals = |windows: &[CompletedWindow]| -> (u64, u64, u64) {
                windows.iter().fold((0, 0, 0), |(r, p, w), x| (r + x.n_records, p + x.n_pages, w + x.n_windows))
            };
            prop_assert_eq!(totals(&compacted), totals(&windows));
            let incremental_until = |windows: &[CompletedWindow]| {
                windows.iter().filter(|w| w.kind == WindowKind::Incremental).map(|w| w.until).max()
            };
            prop_assert_eq!(incremental_until(&compacted), incremental_until(&windows));
            prop_assert!(compacted.iter().filter(|w| w.completed_at >= cutoff).all(|w| windows.contains(w)),
                "a window completed since the cutoff is never touched");
            prop_assert_eq!(compact_windows(&compacted, cutoff), Vec::new(), "compaction is idempotent");
        }
    }
}

//! When a feed's incrementals run: its run times in its local time zone (a time a DST change
//! skips runs when the clocks jump; one it repeats runs once, the first time), thinned to its
//! `sync_frequency_hours` where that is longer than a day. Pure: the time is passed in.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

pub use catalog_app::feeds::local_instant;

/// How much longer than its sync period a feed synced less often than daily may wait for its
/// next incremental: a DST change moves a local run time by an hour against UTC, so a run
/// time a whole local period on may come an hour after the period.
const PERIOD_SLACK: Duration = Duration::hours(1);

/// A feed's run times, its time zone and its sync period.
#[derive(Debug, Clone, Copy)]
pub struct Cadence<'a> {
    pub run_times: &'a [NaiveTime],
    pub timezone: Tz,
    /// `sync_frequency_hours`. Up to a day it only sets the default run times; longer, the
    /// next incremental runs at the last run time within a period (and [`PERIOD_SLACK`]) of
    /// the last one: 48 hours with one run time runs every other day, as the operator asked,
    /// not daily, and no period passes without one (25 hours runs daily).
    pub frequency: Duration,
}

impl Cadence<'_> {
    /// Instants of the run times on the local days around `around`, in order.
    fn runs_around(&self, around: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let today = around.with_timezone(&self.timezone).date_naive();
        let mut runs: Vec<DateTime<Utc>> = (-2..=2)
            .filter_map(|days| today.checked_add_signed(Duration::days(days)))
            .flat_map(|date| self.run_times.iter().map(move |time| local_instant(self.timezone, date, *time)))
            .collect();
        runs.sort();
        runs.dedup();
        runs
    }

    /// The first run time after `after`.
    pub fn next_run_at(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        self.runs_around(after).into_iter().find(|at| *at > after).unwrap_or(after + Duration::hours(6))
    }

    /// The last run time at or before `at`.
    pub fn previous_run_at(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.runs_around(at).into_iter().rev().find(|run| *run <= at)
    }

    /// When an incremental is next due, seen at `now`, the last incremental window having
    /// ended at `last_incremental_until` (an incremental that just ran: `now`): at once (at
    /// the last run time) if no incremental window reaches it, else at the next run time; for
    /// a feed synced less often than daily, at the last run time within a period and an hour
    /// of the last window's end (in the past: due at once), however late in its minute, or
    /// its hour, that window's run started. A window ending after `now` was pulled while the
    /// clock ran ahead (decision 0015): it reaches no run time, and the incremental due is due.
    pub fn next_incremental_at(
        &self,
        last_incremental_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let thinned = self.frequency > Duration::days(1);
        match (self.previous_run_at(now), last_incremental_until) {
            (_, Some(until)) if until <= now && thinned => {
                // A period and an hour hold a whole day: there is a run time in it after `until`.
                let latest = until + self.frequency + PERIOD_SLACK;
                self.previous_run_at(latest).unwrap_or(latest)
            }
            (Some(previous), Some(until)) if until >= previous && until <= now => self.next_run_at(now),
            (Some(previous), _) => previous,
            (None, _) => now,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    pub(crate) fn times(texts: &[&str]) -> Vec<NaiveTime> {
        texts.iter().map(|text| NaiveTime::parse_from_str(text, "%H:%M").expect("time")).collect()
    }

    pub(crate) fn berlin() -> Tz {
        "Europe/Berlin".parse().expect("zone")
    }

    fn daily(run_times: &[NaiveTime], timezone: Tz) -> Cadence<'_> {
        Cadence { run_times, timezone, frequency: Duration::hours(6) }
    }

    /// The runs from `start` on, in UTC and in Berlin time.
    fn runs(run_times: &[&str], start: &str, n: usize) -> String {
        let run_times = times(run_times);
        let cadence = daily(&run_times, berlin());
        let mut after = at(start);
        let mut lines = String::new();
        for _ in 0..n {
            after = cadence.next_run_at(after);
            lines.push_str(&format!(
                "{} = {}\n",
                after.format("%a %F %R UTC"),
                after.with_timezone(&berlin()).format("%R %Z")
            ));
        }
        lines
    }

    /// The window a restart resumes may have been pulled while the clock ran three days ahead:
    /// the incremental of 06:00 is due at 06:00, not at 12:00 as if that window had pulled it.
    #[test]
    fn a_window_ending_after_now_pulled_no_run_time() {
        let run_times = times(&["00:00", "06:00", "12:00", "18:00"]);
        let cadence = daily(&run_times, chrono_tz::UTC);
        let now = at("2026-06-01T06:00:05Z");
        let ahead = Some(at("2026-06-04T06:00:00Z"));
        assert_eq!(cadence.next_incremental_at(ahead, now), at("2026-06-01T06:00:00Z"));
        let pulled = Some(at("2026-06-01T06:00:01Z"));
        assert_eq!(cadence.next_incremental_at(pulled, now), at("2026-06-01T12:00:00Z"));
        let long = Cadence { frequency: Duration::hours(48), ..cadence };
        assert_eq!(long.next_incremental_at(ahead, now), at("2026-06-01T06:00:00Z"), "synced every other day");
    }

    /// `sync_frequency_hours = 48` with its default run time (00:00) runs every other day,
    /// from the end of the last incremental however late it started, and is due at once at
    /// start-up when a whole period has passed since; 25 hours runs daily (no period without
    /// a run).
    #[test]
    fn a_feed_synced_every_other_day_skips_the_run_times_between() {
        let run_times = times(&["00:00"]);
        let cadence = Cadence { run_times: &run_times, timezone: chrono_tz::UTC, frequency: Duration::hours(48) };
        let ran = at("2026-06-01T00:00:07Z");
        assert_eq!(cadence.next_incremental_at(Some(ran), ran), at("2026-06-03T00:00:00Z"), "after a run");
        let restarted = at("2026-06-02T09:00:00Z");
        assert_eq!(cadence.next_incremental_at(Some(ran), restarted), at("2026-06-03T00:00:00Z"), "a restart between");
        let late = at("2026-06-05T09:00:00Z");
        assert!(cadence.next_incremental_at(Some(ran), late) <= late, "a period and more passed: due at once");
        let two_hours_late = at("2026-06-01T02:00:00Z");
        let next = cadence.next_incremental_at(Some(two_hours_late), two_hours_late);
        assert_eq!(next, at("2026-06-03T00:00:00Z"), "a run held back two hours");
        let day_and_hour = Cadence { frequency: Duration::hours(25), ..cadence };
        assert_eq!(day_and_hour.next_incremental_at(Some(ran), ran), at("2026-06-02T00:00:00Z"));
        assert_eq!(cadence.next_incremental_at(None, late), at("2026-06-05T00:00:00Z"), "never pulled: due at once");
        // Twelve hours: spaced by the run times alone, as before.
        let twice = times(&["00:00", "12:00"]);
        let half = Cadence { run_times: &twice, timezone: chrono_tz::UTC, frequency: Duration::hours(12) };
        assert_eq!(half.next_incremental_at(Some(ran), ran), at("2026-06-01T12:00:00Z"));
    }

    /// Across the autumn change a local 02:30 comes 25 hours after the last: a 24-hour feed
    /// runs it, and a 72-hour feed runs every third local day whatever the clocks did; across
    /// the spring change a 48-hour feed started late in its minute still runs two local days
    /// on, 47 hours later.
    #[test]
    fn a_feed_synced_every_third_day_keeps_its_local_run_time_across_a_dst_change() {
        let run_times = times(&["02:30"]);
        let cadence = Cadence { run_times: &run_times, timezone: berlin(), frequency: Duration::hours(72) };
        let mut ran = at("2026-10-23T00:30:04Z");
        let mut local = Vec::new();
        for _ in 0..3 {
            ran = cadence.next_incremental_at(Some(ran), ran);
            local.push(ran.with_timezone(&berlin()).format("%F %R %Z").to_string());
        }
        assert_eq!(local, ["2026-10-26 02:30 CET", "2026-10-29 02:30 CET", "2026-11-01 02:30 CET"]);
        let day = Cadence { frequency: Duration::hours(24), ..cadence };
        let before = at("2026-10-24T00:30:04Z");
        assert_eq!(day.next_incremental_at(Some(before), before), at("2026-10-25T00:30:00Z"));
        let midnight = times(&["00:00"]);
        let spring = Cadence { run_times: &midnight, timezone: berlin(), frequency: Duration::hours(48) };
        let saturday = at("2026-03-27T23:00:05Z");
        assert_eq!(spring.next_incremental_at(Some(saturday), saturday), at("2026-03-29T22:00:00Z"), "Monday 00:00");
    }

    #[test]
    fn run_times_are_local_across_the_spring_change() {
        // Europe/Berlin skips 02:00..03:00 on Sunday 2026-03-29.
        insta::assert_snapshot!(runs(&["00:00", "02:30", "12:00"], "2026-03-28T12:00:00Z", 6), @r"
        Sat 2026-03-28 23:00 UTC = 00:00 CET
        Sun 2026-03-29 01:00 UTC = 03:00 CEST
        Sun 2026-03-29 10:00 UTC = 12:00 CEST
        Sun 2026-03-29 22:00 UTC = 00:00 CEST
        Mon 2026-03-30 00:30 UTC = 02:30 CEST
        Mon 2026-03-30 10:00 UTC = 12:00 CEST
        ");
    }

    #[test]
    fn run_times_are_local_across_the_autumn_change() {
        // Europe/Berlin repeats 02:00..03:00 on Sunday 2026-10-25: the run goes once.
        insta::assert_snapshot!(runs(&["02:30", "18:00"], "2026-10-24T12:00:00Z", 5), @r"
        Sat 2026-10-24 16:00 UTC = 18:00 CEST
        Sun 2026-10-25 00:30 UTC = 02:30 CEST
        Sun 2026-10-25 17:00 UTC = 18:00 CET
        Mon 2026-10-26 01:30 UTC = 02:30 CET
        Mon 2026-10-26 17:00 UTC = 18:00 CET
        ");
    }
}

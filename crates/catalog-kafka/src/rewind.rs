//! Where a partition's reading must start, and stepping back until the broker's fetch starts
//! there. Pure: the partition worker tells it each message's offset and does what it answers
//! (seek, ask for the low watermark, drop, read on).
//!
//! A fetch can start beyond the position asked for: a broker that cannot serve a fetch from
//! inside a record batch (tansu 0.6) answers with the next batch, and a group's committed
//! offset can lie beyond the store's checkpoint. Reading on from there would lose the
//! messages in between, so the worker seeks back: to the wanted offset first, then 1, 2, 4, …
//! messages before it, never below the partition's low watermark, until a fetch starts at or
//! before the wanted offset (what lies below it is skipped: the store holds it). Only offsets
//! below the low watermark (deleted by retention) are a gap.

/// How many messages taken for stale (from before the latest seek) the check lets by before
/// it reads the low watermark again: the broker may have reset the sought fetch to a start
/// that retention moved past the message that made the worker seek, and every message from
/// that fetch would look stale for good.
/// Above the dispatcher's channel (a batch, 5,000 messages by default) drained after a seek,
/// so that draining it asks at most once or twice.
const STALE_BEFORE_RECHECK: u32 = 4_096;

/// What to do with a message while the start is not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Fetched before the latest seek took effect: drop it, the new fetch delivers what counts.
    Stale,
    /// The fetch starts at or before the wanted offset: read on from this message.
    Started,
    /// The fetch started beyond the wanted offset even from the low watermark: the broker holds
    /// no records between them (transaction markers, compaction). Read on from this message.
    NoRecordsBetween { from: i64, to: i64 },
    /// The fetch started beyond the wanted offset: seek to this position and check again.
    SeekTo(i64),
    /// Stepping back needs the partition's low watermark: ask the broker, tell
    /// [`Rewind::low_watermark`], and check the same message again.
    NeedsLowWatermark,
}

/// The check of one assignment's start, until a fetch starts at or before `want`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewind {
    /// The first offset not applied yet: the checkpoint, or the chosen start without one.
    want: i64,
    /// The partition's low watermark, once asked.
    floor: Option<i64>,
    /// The last position sought.
    sought: Option<i64>,
    /// The message that made the worker seek last: a later offset than it comes from the fetch
    /// before that seek (a fetch only moves forward, and the new one starts at or before it).
    trigger: Option<i64>,
    /// How far before `want` the next step back seeks (0: `want` itself).
    back: i64,
    /// Seeks asked for by [`Rewind::check`] and [`Rewind::idle`].
    n_seeks: u32,
    /// Messages taken for stale since the low watermark was last read.
    stale: u32,
    /// Whether the low watermark was read since the last seek.
    floor_since_seek: bool,
}

impl Rewind {
    /// A check that reading starts at `want`; the worker has not sought yet.
    pub(crate) fn new(want: i64) -> Self {
        Self { want, floor: None, sought: None, trigger: None, back: 0, n_seeks: 0, stale: 0, floor_since_seek: false }
    }

    /// A check after the worker sought to `want` before reading anything: the next step back
    /// goes one message further.
    pub(crate) fn sought_at_start(want: i64) -> Self {
        Self {
            want,
            floor: None,
            sought: Some(want),
            trigger: None,
            back: 1,
            n_seeks: 0,
            stale: 0,
            floor_since_seek: false,
        }
    }

    /// The first offset not applied yet.
    pub(crate) fn want(&self) -> i64 {
        self.want
    }

    /// How many seeks the check asked for.
    pub(crate) fn n_seeks(&self) -> u32 {
        self.n_seeks
    }

    /// Whether the fetch was last sought to the partition's low watermark: it reads every
    /// record from there, none skipped by a fetch starting inside a record batch.
    pub(crate) fn sought_the_floor(&self) -> bool {
        self.floor.is_some() && self.sought == self.floor
    }

    /// The partition's low watermark. Offsets below it were deleted: when it lies beyond the
    /// wanted offset, the offsets in between are a gap (returned), and reading starts at it.
    /// A low watermark beyond the message that made the worker seek: the sought fetch found
    /// its offsets deleted and the broker reset it to the partition's start, so no message of
    /// it is stale.
    pub(crate) fn low_watermark(&mut self, low_watermark: i64) -> Option<(i64, i64)> {
        self.floor = Some(low_watermark);
        self.stale = 0;
        self.floor_since_seek = true;
        if self.trigger.is_some_and(|trigger| low_watermark > trigger) {
            self.trigger = None;
        }
        if low_watermark > self.want {
            let gap = (self.want, low_watermark);
            self.want = low_watermark;
            // Nothing was sought at the new wanted offset yet.
            self.back = 0;
            return Some(gap);
        }
        None
    }

    /// What to do with the message at `offset`.
    pub(crate) fn check(&mut self, offset: i64) -> Check {
        if self.trigger.is_some_and(|trigger| offset > trigger) {
            self.stale += 1;
            if self.stale >= STALE_BEFORE_RECHECK {
                return Check::NeedsLowWatermark;
            }
            return Check::Stale;
        }
        if offset <= self.want {
            return Check::Started;
        }
        self.beyond(offset)
    }

    /// Nothing arrived for a while since the last seek. A fetch from inside the partition's
    /// last record batch returns nothing (tansu 0.6) until another batch is produced, and
    /// the partition's end cannot tell (tansu answers it with its last batch's first offset
    /// plus one): step back as if the fetch had started beyond the wanted offset. At the
    /// partition's end, that reads its last records again (below the wanted offset: skipped)
    /// and the start is checked. `None`: nothing lies below the wanted offset; wait.
    /// The low watermark is read again first after a seek (see [`Rewind::low_watermark`]).
    pub(crate) fn idle(&mut self) -> Option<Check> {
        let Some(floor) = self.floor else { return Some(Check::NeedsLowWatermark) };
        if self.trigger.is_some() && !self.floor_since_seek {
            return Some(Check::NeedsLowWatermark);
        }
        let position = self.want.saturating_sub(self.back).max(floor);
        if self.sought == Some(position) {
            // Fetched from here already (the low watermark, or the wanted offset itself when
            // nothing lies below it), and nothing came.
            return None;
        }
        Some(self.seek_to(position))
    }

    /// [`Rewind::low_watermark`] read before the worker's last seek (the start reads it, then
    /// seeks): retention may have moved it in between, and the sought fetch reset to the new
    /// one, so the fetch beyond it is no proof that nothing earlier exists. Taken for read
    /// since the seek, the offsets deleted in between were skipped as holding no records,
    /// and no gap was counted (found by review).
    pub(crate) fn low_watermark_read_before_seek(&mut self, low_watermark: i64) -> Option<(i64, i64)> {
        let gap = self.low_watermark(low_watermark);
        self.floor_since_seek = false;
        gap
    }

    /// The fetch is known to start beyond the wanted offset, at or before `offset`.
    fn beyond(&mut self, offset: i64) -> Check {
        let Some(floor) = self.floor else { return Check::NeedsLowWatermark };
        let position = self.want.saturating_sub(self.back).max(floor);
        if self.sought == Some(floor) && position == floor {
            // Already fetched from the low watermark and still beyond: nothing earlier exists,
            // unless retention moved the low watermark since it was read (the fetch then
            // reset to the new one): read again first, so that the offsets it deleted are a
            // gap, not records the broker never held.
            if !self.floor_since_seek {
                return Check::NeedsLowWatermark;
            }
            return Check::NoRecordsBetween { from: self.want, to: offset };
        }
        self.trigger = Some(offset);
        self.seek_to(position)
    }

    /// Seeks to `position`; the next step back goes twice as far.
    fn seek_to(&mut self, position: i64) -> Check {
        self.sought = Some(position);
        self.floor_since_seek = false;
        self.back = if self.back == 0 { 1 } else { self.back.saturating_mul(2) };
        self.n_seeks += 1;
        Check::SeekTo(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A partition as tansu 0.6 serves it: record batches starting at `batch_starts`,
    /// records below `low_watermark` deleted.
    struct Partition {
        batch_starts: Vec<i64>,
        low_watermark: i64,
    }

    impl Partition {
        fn in_batches_of(length: i64, end: i64, low_watermark: i64) -> Self {
            Self { batch_starts: (0..end).step_by(length as usize).collect(), low_watermark }
        }

        /// The first offset a fetch from `position` returns: that of the first batch starting
        /// at or after it (a position below the low watermark reads from the low watermark).
        fn first_offset(&self, position: i64) -> Option<i64> {
            let position = position.max(self.low_watermark);
            self.batch_starts.iter().copied().find(|start| *start >= position)
        }
    }

    /// What the worker does: a first fetch from `first_fetch` (its own seek to `want` when
    /// `None`), then whatever the check answers. Returns where reading starts, the gap
    /// reported, and the positions sought after the first fetch.
    fn simulate(
        partition: &Partition,
        want: i64,
        first_fetch: Option<i64>,
    ) -> (Option<i64>, Option<(i64, i64)>, Vec<i64>) {
        let (mut rewind, mut position) = match first_fetch {
            Some(position) => (Rewind::new(want), position),
            None => (Rewind::sought_at_start(want), want),
        };
        let mut seeks = Vec::new();
        let mut gap = None;
        for _ in 0..100 {
            let fetched = partition.first_offset(position);
            loop {
                let check = match fetched {
                    Some(offset) => rewind.check(offset),
                    None => match rewind.idle() {
                        Some(check) => check,
                        None => return (None, gap, seeks),
                    },
                };
                match check {
                    Check::Stale => unreachable!("each fetch here is a new one"),
                    Check::Started | Check::NoRecordsBetween { .. } => return (fetched, gap, seeks),
                    Check::NeedsLowWatermark => gap = rewind.low_watermark(partition.low_watermark).or(gap),
                    Check::SeekTo(next) => {
                        seeks.push(next);
                        position = next;
                        break;
                    }
                }
            }
        }
        panic!("no start after 100 seeks: {seeks:?}");
    }

    #[test]
    fn a_checkpoint_inside_a_batch_steps_back_to_the_batch_start() {
        // Batches 0..10, 10..20, 20..30, …; the store stopped at 25.
        let partition = Partition::in_batches_of(10, 100, 0);
        assert_eq!(simulate(&partition, 25, None), (Some(20), None, vec![24, 23, 21, 17]));
        // A partition added later is read from the group's committed offset first.
        assert_eq!(simulate(&partition, 25, Some(47)), (Some(20), None, vec![25, 24, 23, 21, 17]));
    }

    #[test]
    fn a_fetch_at_or_before_the_checkpoint_needs_no_step_back() {
        let partition = Partition::in_batches_of(10, 100, 0);
        assert_eq!(simulate(&partition, 30, None), (Some(30), None, vec![]));
        assert_eq!(simulate(&partition, 25, Some(20)), (Some(20), None, vec![]));
    }

    #[test]
    fn a_checkpoint_inside_the_last_batch_steps_back_although_nothing_arrives() {
        let partition = Partition::in_batches_of(10, 95, 0);
        assert_eq!(simulate(&partition, 93, None), (Some(90), None, vec![92, 91, 89]));
        // At the end, the last batch is read again to check the start (and skipped).
        assert_eq!(simulate(&partition, 95, None), (Some(90), None, vec![94, 93, 91, 87]));
        // An empty partition has nothing to step back to.
        assert_eq!(simulate(&Partition::in_batches_of(10, 0, 0), 0, None), (None, None, vec![]));
    }

    #[test]
    fn messages_from_before_a_seek_are_stale() {
        let mut rewind = Rewind::sought_at_start(25);
        assert_eq!(rewind.check(30), Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(0), None);
        assert_eq!(rewind.check(30), Check::SeekTo(24));
        // The fetch that delivered 30 goes on until the seek takes effect.
        assert_eq!(rewind.check(31), Check::Stale);
        assert_eq!(rewind.check(39), Check::Stale);
        // The new fetch starts at or before 30; this one still beyond the checkpoint.
        assert_eq!(rewind.check(30), Check::SeekTo(23));
        assert_eq!(rewind.check(20), Check::Started);
        assert_eq!(rewind.n_seeks(), 2);
    }

    /// Retention deletes past the message that made the worker seek before the sought fetch
    /// starts: the broker resets that fetch to the partition's new start, beyond the message.
    /// Before, every message from it was taken for stale, for good, with no gap reported and
    /// the partition stuck while "healthy" (found by review).
    #[test]
    fn a_fetch_reset_beyond_the_seek_s_trigger_is_read_and_the_deleted_offsets_are_a_gap() {
        // Messages keep coming from the reset fetch.
        let mut rewind = Rewind::sought_at_start(10);
        assert_eq!(rewind.check(15), Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(0), None);
        assert_eq!(rewind.check(15), Check::SeekTo(9));
        let mut offset = 20;
        while rewind.check(offset) == Check::Stale {
            offset += 1;
            assert!(offset < 20 + i64::from(STALE_BEFORE_RECHECK), "taken for stale for good");
        }
        assert_eq!(rewind.check(offset), Check::NeedsLowWatermark, "asked again until told");
        assert_eq!(rewind.low_watermark(20), Some((10, 20)));
        assert_eq!(rewind.check(offset), Check::SeekTo(20));
        assert_eq!(rewind.check(20), Check::Started);

        // The partition goes quiet after the reset fetch's few messages.
        let mut rewind = Rewind::sought_at_start(10);
        assert_eq!(rewind.check(15), Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(0), None);
        assert_eq!(rewind.check(15), Check::SeekTo(9));
        assert_eq!(rewind.check(21), Check::Stale);
        assert_eq!(rewind.idle(), Some(Check::NeedsLowWatermark));
        assert_eq!(rewind.low_watermark(20), Some((10, 20)));
        assert_eq!(rewind.idle(), Some(Check::SeekTo(20)));
        assert_eq!(rewind.check(20), Check::Started);
    }

    #[test]
    fn retention_beyond_the_checkpoint_is_a_gap_and_reading_starts_at_the_low_watermark() {
        // Records below 40 were deleted; the store stopped at 25.
        let partition = Partition::in_batches_of(10, 100, 40);
        assert_eq!(simulate(&partition, 25, None), (Some(40), Some((25, 40)), vec![]));
        assert_eq!(simulate(&partition, 25, Some(25)), (Some(40), Some((25, 40)), vec![]));
    }

    #[test]
    fn offsets_without_records_from_the_low_watermark_on_are_no_gap() {
        // Offsets 0..5 hold no records the broker serves (the first batch starts at 5).
        let mut rewind = Rewind::new(2);
        assert_eq!(rewind.check(5), Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(0), None);
        assert_eq!(rewind.check(5), Check::SeekTo(2));
        assert_eq!(rewind.check(5), Check::SeekTo(1));
        assert_eq!(rewind.check(5), Check::SeekTo(0));
        // The low watermark is read again before the broker is taken to hold nothing there.
        assert_eq!(rewind.check(5), Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(0), None);
        assert_eq!(rewind.check(5), Check::NoRecordsBetween { from: 2, to: 5 });
    }

    /// Retention moves the low watermark past the wanted offset, but not past the message
    /// that made the worker seek, while the worker steps back: the fetch resets to the new
    /// start. The offsets deleted are a gap. Before, the worker stepped back to the old low
    /// watermark and took them for offsets holding no records: lost, with no gap said (found
    /// by review).
    #[test]
    fn retention_while_stepping_back_is_a_gap() {
        let mut rewind = Rewind::sought_at_start(10);
        assert_eq!(rewind.check(15), Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(0), None);
        assert_eq!(rewind.check(15), Check::SeekTo(9));
        // Retention deletes up to 12; the fetch from 9 resets to 12.
        let mut check = rewind.check(12);
        while let Check::SeekTo(_) = check {
            check = rewind.check(12);
        }
        assert_eq!(check, Check::NeedsLowWatermark);
        assert_eq!(rewind.low_watermark(12), Some((10, 12)));
        assert_eq!(rewind.check(12), Check::Started);
    }

    /// The start reads the low watermark, then seeks to it (a partition with no checkpoint,
    /// read from its earliest offset); retention deletes past it in between, and the fetch
    /// resets to the new start. The offsets deleted are a gap, not offsets without records.
    #[test]
    fn retention_between_the_start_s_read_and_its_seek_is_a_gap() {
        let mut rewind = Rewind::sought_at_start(0);
        assert_eq!(rewind.low_watermark_read_before_seek(0), None);
        assert_eq!(rewind.check(5), Check::NeedsLowWatermark, "read again before the broker is taken to hold nothing");
        assert_eq!(rewind.low_watermark(5), Some((0, 5)));
        assert_eq!(rewind.check(5), Check::Started);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the batch layout, checkpoint, committed offset and retention, reading
        /// starts at or before the wanted offset (at the low watermark, reporting exactly the
        /// deleted offsets as a gap, when retention passed it), after a number of seeks
        /// logarithmic in the batch length.
        #[test]
        fn reading_never_starts_beyond_the_checkpoint(
            lengths in proptest::collection::vec(1_i64..200, 1..40),
            want_share in 0.0_f64..1.0,
            committed_share in proptest::option::of(0.0_f64..1.0),
            deleted_batches in 0_usize..5,
        ) {
            let mut batch_starts = vec![0];
            for length in &lengths {
                batch_starts.push(batch_starts[batch_starts.len() - 1] + length);
            }
            let end = batch_starts.pop().expect("one batch at least");
            let low_watermark = batch_starts[deleted_batches.min(batch_starts.len() - 1)];
            let partition = Partition { batch_starts, low_watermark };
            let want = (end as f64 * want_share) as i64;
            let committed = committed_share.map(|share| (end as f64 * share) as i64);
            let (start, gap, seeks) = simulate(&partition, want, committed);
            prop_assert_eq!(gap, (low_watermark > want).then_some((want, low_watermark)));
            let want = want.max(low_watermark);
            let start = start.expect("records exist from the wanted offset on");
            prop_assert!(start <= want, "started at {} beyond {}", start, want);
            let longest = lengths.iter().copied().max().unwrap_or(1);
            prop_assert!(seeks.len() as u32 <= 3 + (longest as u64).ilog2(), "{} seeks: {:?}", seeks.len(), seeks);
        }
    }
}

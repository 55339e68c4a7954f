//! The fence of a batch that skips what is applied already ([`BatchInput::skip_applied`],
//! decision 0028): its checkpoint rows, which every store locks before any other row of the
//! batch, and the events their stored positions have passed.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::model::{BatchInput, Checkpoint, Position};

/// The `(source, partition)` rows a batch's checkpoints write, sorted by bytes and unique:
/// the order every store locks them in, first of all the batch's rows.
pub fn checkpoint_rows(batch: &BatchInput) -> Vec<(&str, i32)> {
    let rows: BTreeSet<(&str, i32)> =
        batch.checkpoints.iter().map(|checkpoint| (checkpoint.source.as_str(), checkpoint.partition)).collect();
    rows.into_iter().collect()
}

/// A batch as a store applies it, once its checkpoint rows are locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced<'b> {
    /// The batch without the events in `applied_before` and without its checkpoints of the
    /// rows in `of_another_log`; borrowed when there are none, the case of every batch but a
    /// repeat.
    pub batch: Cow<'b, BatchInput>,
    /// Indices of the original batch's events, ascending, that are not applied: what
    /// [`crate::BatchResult::applied_before`] reports.
    pub applied_before: Vec<usize>,
    /// The rows whose stored position is of another log than the batch's checkpoint for
    /// them: what [`crate::BatchResult::of_another_log`] reports.
    pub of_another_log: Vec<(String, i32)>,
}

/// Splits off the events of a [`BatchInput::skip_applied`] batch whose partition's stored
/// position has passed them. `stored` holds the positions of the batch's checkpoint rows as
/// read under the batch's lock on them (a row not yet stored is absent, and fences nothing).
/// A batch that does not skip applied events is returned whole.
///
/// A row whose stored position names another log than the batch's checkpoint for it
/// ([`crate::Position::log_id`]: a Kafka topic created again under its name, its checkpoint
/// moved back to the new topic, and a member still reading the old one) fences nothing, its
/// offsets being of another log, and keeps its stored position: the batch's checkpoint for it
/// is left out. Its events are applied, redeliveries told by their event ids (decision 0040).
pub fn fence<'b>(batch: &'b BatchInput, stored: &[Checkpoint]) -> Fenced<'b> {
    if !batch.skip_applied || stored.is_empty() {
        return Fenced { batch: Cow::Borrowed(batch), applied_before: Vec::new(), of_another_log: Vec::new() };
    }
    let of_another_log: Vec<(String, i32)> = stored
        .iter()
        .filter(|row| {
            batch.checkpoints.iter().any(|checkpoint| {
                checkpoint.partition == row.partition
                    && checkpoint.source == row.source
                    && logs_differ(&checkpoint.position, &row.position)
            })
        })
        .map(|row| (row.source.clone(), row.partition))
        .collect();
    let of_this_log = |source: &str, partition: i32| {
        !of_another_log.iter().any(|(other, other_partition)| *other_partition == partition && other == source)
    };
    let passed = |index: &usize| {
        let at = &batch.events[*index].source;
        stored.iter().any(|checkpoint| {
            checkpoint.partition == at.partition
                && checkpoint.source == *at.source
                && at.offset < checkpoint.position.offset
                && of_this_log(&checkpoint.source, checkpoint.partition)
        })
    };
    let applied_before: Vec<usize> = (0..batch.events.len()).filter(passed).collect();
    if applied_before.is_empty() && of_another_log.is_empty() {
        return Fenced { batch: Cow::Borrowed(batch), applied_before, of_another_log };
    }
    let mut events = Vec::with_capacity(batch.events.len() - applied_before.len());
    events.extend(batch.events.iter().filter(not_applied_before(&applied_before)).cloned());
    let checkpoints = batch
        .checkpoints
        .iter()
        .filter(|checkpoint| of_this_log(&checkpoint.source, checkpoint.partition))
        .cloned()
        .collect();
    let rest = BatchInput { events, checkpoints, skip_applied: true };
    Fenced { batch: Cow::Owned(rest), applied_before, of_another_log }
}

/// Whether two positions of one row are of different logs: both name one, and not the same.
fn logs_differ(batch: &Position, stored: &Position) -> bool {
    crate::another_log(stored.log_id(), batch.log_id()).is_some()
}

/// A filter, called once per event in order, that keeps the events whose index is not in
/// `applied_before` (ascending): how a store takes the passed events out of the batch it
/// applies, and how its caller takes them out of the events it sent, so that the result's
/// `decisions` line up with what is left.
pub fn not_applied_before<T>(applied_before: &[usize]) -> impl FnMut(&T) -> bool + '_ {
    let mut skipped = applied_before.iter().peekable();
    let mut index = 0;
    move |_| {
        let kept = skipped.next_if_eq(&&index).is_none();
        index += 1;
        kept
    }
}

#[cfg(test)]
mod tests {
    use catalog_core::{encode, OfferKey, StockChange, SupplierEvent, TenantId};

    use super::*;
    use crate::{IncomingEvent, SourceRef};

    fn event(source: &str, partition: i32, offset: i64) -> IncomingEvent {
        let key = OfferKey {
            tenant: TenantId::parse("canary").expect("valid"),
            supplier: catalog_core::SupplierId::parse("acme").expect("valid"),
            sku: catalog_core::Sku::parse("ABC-1").expect("valid"),
        };
        let at = "2026-06-01T12:00:00Z".parse().expect("valid time");
        let event = SupplierEvent::new(
            catalog_core::EventId(uuid::Uuid::from_u128(offset as u128 + 1)),
            key,
            StockChange::Updated { quantity: offset },
            at,
            None,
        )
        .expect("valid event");
        let source = SourceRef { source: source.into(), partition, offset };
        IncomingEvent::received(encode(&event).into_bytes(), at, source, None)
    }

    fn stored(source: &str, partition: i32, offset: i64) -> Checkpoint {
        Checkpoint { source: source.to_owned(), partition, position: Position::at(offset) }
    }

    fn kafka_batch(offsets: std::ops::Range<i64>) -> BatchInput {
        let events = offsets.clone().map(|offset| event("kafka:g:t", 3, offset)).collect();
        BatchInput::new(events, vec![stored("kafka:g:t", 3, offsets.end)]).skipping_applied()
    }

    #[test]
    fn events_below_the_stored_position_of_their_own_partition_are_split_off() {
        let batch = kafka_batch(10..15);
        let fenced = fence(&batch, &[stored("kafka:g:t", 3, 12)]);
        assert_eq!(fenced.applied_before, [0, 1]);
        let offsets: Vec<i64> = fenced.batch.events.iter().map(|event| event.source.offset).collect();
        assert_eq!(offsets, [12, 13, 14]);
        assert_eq!(fenced.batch.checkpoints, batch.checkpoints, "the checkpoint is still written");

        // Another partition's or source's position fences nothing.
        for other in [stored("kafka:g:t", 4, 99), stored("kafka:h:t", 3, 99)] {
            let fenced = fence(&batch, &[other]);
            assert!(fenced.applied_before.is_empty());
            assert!(matches!(fenced.batch, Cow::Borrowed(_)), "nothing is copied");
        }
        // A batch passed whole is applied as nothing, its checkpoint kept.
        let fenced = fence(&batch, &[stored("kafka:g:t", 3, 15)]);
        assert_eq!(fenced.applied_before, [0, 1, 2, 3, 4]);
        assert!(fenced.batch.events.is_empty());
    }

    #[test]
    fn a_row_stored_under_another_log_fences_nothing_and_is_not_written() {
        let in_log = |partition, offset, log| Checkpoint {
            source: "kafka:g:t".to_owned(),
            partition,
            position: Position::in_log(offset, log),
        };
        let mut batch = kafka_batch(10..15);
        batch.events.push(event("kafka:g:t", 4, 1));
        batch.checkpoints = vec![in_log(3, 15, "old"), in_log(4, 2, "old")];
        let fenced = fence(&batch, &[in_log(3, 12, "new"), in_log(4, 9, "old")]);
        assert_eq!(fenced.of_another_log, [("kafka:g:t".to_owned(), 3)]);
        assert_eq!(fenced.applied_before, [5], "partition 4, of the same log, is fenced by offset");
        assert_eq!(fenced.batch.events.len(), 5, "partition 3's events, all below 12, are applied");
        assert_eq!(fenced.batch.checkpoints, [in_log(4, 2, "old")], "partition 3's position is left alone");

        // The same log, or a log not known on either side: offsets alone, as before.
        for row in [in_log(3, 12, "old"), stored("kafka:g:t", 3, 12)] {
            let fenced = fence(&batch, &[row]);
            assert!(fenced.of_another_log.is_empty());
            assert_eq!(fenced.applied_before, [0, 1]);
            assert_eq!(fenced.batch.checkpoints, batch.checkpoints);
        }
    }

    #[test]
    fn a_batch_that_does_not_skip_applied_events_is_applied_whole() {
        let batch = BatchInput { skip_applied: false, ..kafka_batch(10..15) };
        let fenced = fence(&batch, &[stored("kafka:g:t", 3, 15)]);
        assert!(fenced.applied_before.is_empty());
        assert_eq!(fenced.batch.events.len(), 5);
    }

    proptest::proptest! {
        /// Whatever the offsets (a redelivery from anywhere, in any order) and the stored
        /// positions: the events split off are exactly those below their own partition's
        /// position, the rest keep their order, and fencing what is left splits off nothing
        /// more (applying the rest again under the same position is a no-op of the fence).
        #[test]
        fn fencing_splits_exactly_what_the_positions_passed(
            events in proptest::collection::vec((0_i32..3, 0_i64..40), 0..30),
            positions in proptest::collection::vec((0_i32..4, 0_i64..45), 0..4),
        ) {
            let batch = BatchInput::new(
                events.iter().map(|&(partition, offset)| event("kafka:g:t", partition, offset)).collect(),
                positions.iter().map(|&(partition, offset)| stored("kafka:g:t", partition, offset)).collect(),
            )
            .skipping_applied();
            let stored: Vec<Checkpoint> = {
                // One stored position per row, as a store reads them.
                let mut rows = std::collections::BTreeMap::new();
                for &(partition, offset) in &positions {
                    rows.entry(partition).or_insert(offset);
                }
                rows.into_iter().map(|(partition, offset)| stored("kafka:g:t", partition, offset)).collect()
            };
            let position_of = |partition: i32| stored.iter().find(|c| c.partition == partition).map(|c| c.position.offset);
            let fenced = fence(&batch, &stored);

            let expected: Vec<usize> = (0..events.len())
                .filter(|&index| position_of(events[index].0).is_some_and(|position| events[index].1 < position))
                .collect();
            proptest::prop_assert_eq!(&fenced.applied_before, &expected);
            let rest: Vec<&IncomingEvent> =
                (0..events.len()).filter(|index| !expected.contains(index)).map(|index| &batch.events[index]).collect();
            proptest::prop_assert_eq!(fenced.batch.events.iter().collect::<Vec<_>>(), rest);
            proptest::prop_assert!(fence(&fenced.batch, &stored).applied_before.is_empty());
        }
    }

    #[test]
    fn checkpoint_rows_are_unique_in_byte_order() {
        let batch = BatchInput::new(
            vec![],
            vec![stored("kafka:g:t", 1, 5), stored("b", 0, 1), stored("kafka:g:t", 1, 7), stored("a", 2, 1)],
        );
        assert_eq!(checkpoint_rows(&batch), [("a", 2), ("b", 0), ("kafka:g:t", 1)]);
    }
}

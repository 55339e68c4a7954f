//! What a confirmed batch held that the store did not take as new: messages another member
//! applied first, and a batch of a topic since created again (decisions 0028 and 0040).

use catalog_store::fence::not_applied_before;

use super::Applier;
use crate::source::SourceBatch;

impl Applier {
    /// Takes out of a confirmed batch's events the ones the store found applied already,
    /// counting and logging them: the decisions are of the rest.
    pub(super) fn skip_applied_before(&self, batch: &mut SourceBatch, applied_before: &[usize]) {
        let (Some(first), Some(last)) = (applied_before.first(), applied_before.last()) else {
            return;
        };
        let (from, to) = (batch.events[*first].source.offset, batch.events[*last].source.offset);
        self.metrics
            .skipped_below_checkpoint
            .with_label_values(&[&batch.partition.to_string()])
            .inc_by(applied_before.len() as u64);
        self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).events_applied_elsewhere +=
            applied_before.len() as u64;
        tracing::warn!(
            source = &*batch.source,
            partition = batch.partition,
            n_messages = applied_before.len(),
            from_offset = from,
            to_offset = to,
            "messages applied already by another worker (a partition held by two members of the group during a rebalance, a file read by two workers, two runs of one feed): skipped"
        );
        batch.events.retain(not_applied_before(applied_before));
    }

    /// Counts and logs a batch whose checkpoint the store left alone, its stored position
    /// being of another log (a topic created again since this member started reading it).
    pub(super) fn of_a_replaced_topic(&self, batch: &SourceBatch, of_another_log: &[(String, i32)]) {
        if of_another_log.is_empty() {
            return;
        }
        self.metrics.batches_of_a_replaced_topic.with_label_values(&[&batch.partition.to_string()]).inc();
        tracing::warn!(
            source = &*batch.source,
            partition = batch.partition,
            n_messages = batch.events.len(),
            checkpoint = batch.checkpoint.as_ref().map(|position| position.offset),
            cursor = batch.checkpoint.as_ref().and_then(|position| position.cursor.as_deref()),
            "a batch of a topic since deleted and created again (this member still read the old one): \
             applied by its event ids, the checkpoint of the new topic left where it stands"
        );
    }
}

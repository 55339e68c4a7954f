//! Cutting a source's messages into batches: a batch is applied when it holds as many events
//! as allowed, or as many bytes as its share of the worker's budget of bytes in flight, or
//! when its oldest message has waited long enough (the source's timer). Bounding bytes as
//! well as events keeps memory bounded when messages are large: 5,000 messages of 64 KiB
//! would otherwise be 320 MB in one partition's batch.

/// How large one partition's pending batch may grow before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events per batch at most.
    pub max_events: usize,
    /// Message bytes per batch: once reached, the batch is cut. The message that reaches it
    /// is still in the batch, so a batch exceeds this by less than one message.
    pub max_bytes: usize,
}

impl BatchLimits {
    /// The limits of one of `n_partitions` partitions read at once, which share
    /// `max_bytes_in_flight` evenly: each holds at most one pending batch, so together they
    /// hold at most the budget (plus one message each).
    pub fn share(max_events: usize, max_bytes_in_flight: usize, n_partitions: usize) -> Self {
        Self { max_events: max_events.max(1), max_bytes: (max_bytes_in_flight / n_partitions.max(1)).max(1) }
    }
}

/// The messages of one partition waiting to be applied, and their bytes.
#[derive(Debug)]
pub struct PendingBatch<T> {
    messages: Vec<T>,
    n_bytes: usize,
    limits: BatchLimits,
}

impl<T> PendingBatch<T> {
    pub fn new(limits: BatchLimits) -> Self {
        Self { messages: Vec::new(), n_bytes: 0, limits }
    }

    /// Adds a message of `n_bytes`; `true` when the batch must be applied now (full by count
    /// or by bytes).
    #[must_use = "a full batch must be applied"]
    pub fn push(&mut self, message: T, n_bytes: usize) -> bool {
        self.messages.push(message);
        self.n_bytes += n_bytes;
        self.is_full()
    }

    /// Whether the batch reached its count or its bytes.
    pub fn is_full(&self) -> bool {
        self.messages.len() >= self.limits.max_events || self.n_bytes >= self.limits.max_bytes
    }

    /// New limits, for the batches cut from now on (the number of partitions sharing the
    /// budget changed).
    pub fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn n_bytes(&self) -> usize {
        self.n_bytes
    }

    pub fn last(&self) -> Option<&T> {
        self.messages.last()
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        self.messages.last_mut()
    }

    /// Empties the batch, returning its messages in the order they were added.
    pub fn take(&mut self) -> Vec<T> {
        self.n_bytes = 0;
        std::mem::take(&mut self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes messages of the given sizes and returns the batches cut, as sizes.
    fn cut(limits: BatchLimits, sizes: &[usize]) -> Vec<Vec<usize>> {
        let mut pending = PendingBatch::new(limits);
        let mut batches = Vec::new();
        for size in sizes {
            if pending.push(*size, *size) {
                batches.push(pending.take());
            }
        }
        if !pending.is_empty() {
            batches.push(pending.take());
        }
        batches
    }

    #[test]
    fn a_batch_is_cut_when_its_bytes_reach_the_partition_s_share() {
        // 64 MiB among 16 partitions: 4 MiB each; messages of 64 KiB fill one at 64.
        let limits = BatchLimits::share(5_000, 64 << 20, 16);
        assert_eq!(limits, BatchLimits { max_events: 5_000, max_bytes: 4 << 20 });
        let batches = cut(limits, &[64 << 10; 200]);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [64, 64, 64, 8]);
        assert!(batches.iter().all(|batch| batch.iter().sum::<usize>() <= 4 << 20));
    }

    #[test]
    fn small_messages_are_cut_by_count() {
        let batches = cut(BatchLimits::share(3, 1 << 20, 1), &[100; 7]);
        assert_eq!(batches, [vec![100; 3], vec![100; 3], vec![100]]);
    }

    #[test]
    fn the_message_that_reaches_the_bytes_stays_in_its_batch() {
        let batches = cut(BatchLimits { max_events: 100, max_bytes: 1_000 }, &[400, 400, 400, 5_000, 10]);
        assert_eq!(batches, [vec![400, 400, 400], vec![5_000], vec![10]]);
    }

    #[test]
    fn no_share_is_zero() {
        assert_eq!(BatchLimits::share(0, 0, 0), BatchLimits { max_events: 1, max_bytes: 1 });
    }
}

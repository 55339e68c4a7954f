//! Pacing a channel's read-back requests: at most one per gap, a read of several requests
//! keeping the next as many gaps away.

use std::time::Duration;

/// Paces requests to at most a rate, and counts them.
pub(super) struct Pacer {
    pub(super) gap: Duration,
    /// When the next read may start: a read of n requests keeps the next n gaps away.
    pub(super) due: Option<tokio::time::Instant>,
    pub(super) requests: u64,
}

impl Pacer {
    /// Waits until a read of up to `n_requests` requests may start, and counts them.
    pub(super) async fn wait(&mut self, n_requests: usize) {
        if let Some(due) = self.due {
            tokio::time::sleep_until(due).await;
        }
        let n_requests = u32::try_from(n_requests.max(1)).unwrap_or(u32::MAX);
        self.due = Some(tokio::time::Instant::now() + self.gap.saturating_mul(n_requests));
        self.requests += u64::from(n_requests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read of n requests keeps the next read n gaps away, so a platform whose read takes
    /// several requests is held to the same rate of requests as the others.
    #[tokio::test(start_paused = true)]
    async fn a_read_of_several_requests_spaces_the_next_by_as_many_gaps() {
        let start = tokio::time::Instant::now();
        let mut pacer = Pacer { gap: Duration::from_millis(100), due: None, requests: 0 };
        let mut started = Vec::new();
        for n_requests in [1, 3, 1, 0] {
            pacer.wait(n_requests).await;
            started.push(start.elapsed().as_millis());
        }
        assert_eq!(started, [0, 100, 400, 500]);
        assert_eq!(pacer.requests, 6, "a read counts as one request at least");
    }
}

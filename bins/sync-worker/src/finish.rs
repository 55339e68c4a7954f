//! The end of a run: every publisher, then every service, is waited for, however another
//! ended. A task that fails or panics is logged and reported with the others, after they have
//! stopped as they stop, so one channel's failure neither cuts another's drain short (what it
//! sent unrecorded, its claims not given back: decision 0037) nor hides the source's own error.

use anyhow::{anyhow, Result};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the tasks did, once all have stopped.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// Item versions the channels accepted while draining.
    pub(crate) published: u64,
    pub(crate) failures: Vec<anyhow::Error>,
}

impl Finished {
    fn failed(&mut self, what: &str, error: anyhow::Error) {
        let error = error.context(what.to_owned());
        tracing::error!(error = format!("{error:#}"), "a task failed; the others finish first");
        self.failures.push(error);
    }

    fn joined<T>(&mut self, what: &str, joined: Result<Result<T>, tokio::task::JoinError>) -> Option<T> {
        match joined {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.failed(what, error);
                None
            }
            Err(panicked) => {
                self.failed(what, anyhow::Error::new(panicked));
                None
            }
        }
    }
}

/// Waits for every publisher (a signal meanwhile stops them through `stop_services`), then
/// stops and waits for every service.
pub(crate) async fn join(
    mut publishers: JoinSet<Result<u64>>,
    mut services: JoinSet<Result<()>>,
    shutdown: &CancellationToken,
    stop_services: &CancellationToken,
) -> Finished {
    let mut finished = Finished::default();
    loop {
        tokio::select! {
            publisher = publishers.join_next() => match publisher {
                Some(joined) => finished.published += finished.joined("publisher task", joined).unwrap_or(0),
                None => break,
            },
            // A signal while a finished source's changes are being published stops the
            // publishing too, however long the channels would take.
            () = shutdown.cancelled(), if !stop_services.is_cancelled() => {
                tracing::info!("stopping publishing; what is not published stays queued for the next run");
                stop_services.cancel();
            }
        }
    }
    stop_services.cancel();
    while let Some(joined) = services.join_next().await {
        finished.joined("service task", joined);
    }
    finished
}

/// One error for all of a run's: the source's first, then the tasks' in the order they ended.
pub(crate) fn one_error(mut errors: Vec<anyhow::Error>) -> Option<anyhow::Error> {
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        n => {
            let said: Vec<String> = errors.iter().map(|error| format!("{error:#}")).collect();
            Some(anyhow!("{n} failures: {}", said.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// One publisher panics at once while another is still draining: the other finishes (its
    /// sends recorded, its claims given back), the services stop as they stop, and the panic
    /// is reported with what the others published.
    #[tokio::test]
    async fn a_panicked_publisher_lets_the_others_finish() {
        let (shutdown, stop_services) = (CancellationToken::new(), CancellationToken::new());
        let drained = Arc::new(AtomicBool::new(false));
        let mut publishers: JoinSet<Result<u64>> = JoinSet::new();
        publishers.spawn(async { panic!("a publisher's bug") });
        let flag = drained.clone();
        publishers.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(7)
        });
        let mut services: JoinSet<Result<()>> = JoinSet::new();
        let (stopped, stop) = (Arc::new(AtomicBool::new(false)), stop_services.clone());
        let flag = stopped.clone();
        services.spawn(async move {
            stop.cancelled().await;
            flag.store(true, Ordering::SeqCst);
            Err(anyhow!("the retention pass failed"))
        });
        let finished = join(publishers, services, &shutdown, &stop_services).await;
        assert!(drained.load(Ordering::SeqCst), "the other publisher drained");
        assert!(stopped.load(Ordering::SeqCst), "the service stopped as it stops");
        assert_eq!(finished.published, 7);
        let said = format!("{:#}", one_error(finished.failures).expect("failures reported"));
        assert!(said.starts_with("2 failures: publisher task: "), "{said}");
        assert!(said.contains("panicked") && said.contains("service task: the retention pass failed"), "{said}");
    }

    #[test]
    fn one_failure_is_itself() {
        assert!(one_error(Vec::new()).is_none());
        let one = one_error(vec![anyhow!("kafka source").context("x")]).expect("one");
        assert_eq!(format!("{one:#}"), "x: kafka source");
    }
}

//! Integration tests of the worker: the embedded run on a file, and runs against real
//! PostgreSQL and a real Kafka-protocol broker, including crashes, a rebalance, hostile
//! headers and histories, readiness, and dead letters healing after a storefront outage.

mod file_source;
mod heal;
mod hostile;
mod kafka;
mod processes;
mod pull;
mod readiness;
mod reconcile;
mod retention;
mod signals;
mod start;
mod stream;

/// The worker's exit, waited for at most `within`: past it the worker is killed and the test
/// fails, saying `what` it was waiting on.
fn exit_within(worker: &mut std::process::Child, within: std::time::Duration, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(exit) = worker.try_wait().expect("poll the worker") {
            return exit;
        }
        if std::time::Instant::now() > deadline {
            worker.kill().expect("kill the worker");
            panic!("the worker still runs {within:?} on: {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

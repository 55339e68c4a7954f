//! The worker as a separate process against the real broker: killed with SIGKILL at random
//! points and restarted while a batching producer writes (so restarts resume inside record
//! batches), and two members of one group where one stops mid-stream.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use catalog_store::prelude::*;
use catalog_testkit::{create_topic, produce, produce_in_batches, unique_name, TestDatabase, TestMessage};

use crate::kafka::{connect, verify, wait_until_applied, worker_args, PARTITIONS};
use crate::stream::{end_offsets, feed, Lcg};

struct Worker {
    child: Child,
    log_path: std::path::PathBuf,
}

impl Worker {
    /// The partitions this worker owns now, from its log: the last assignment, unless revoked since.
    fn assigned_partitions(&self) -> Vec<i32> {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let last =
            log.lines().rev().find(|line| line.contains("partitions assigned") || line.contains("partitions revoked"));
        match last {
            Some(line) if line.contains("partitions assigned") => line
                .rsplit_once('[')
                .and_then(|(_, list)| list.split_once(']'))
                .map(|(list, _)| list.split(',').filter_map(|p| p.trim().parse().ok()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

impl Drop for Worker {
    /// A failing test must not leave workers running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_worker(database: &TestDatabase, topic: &str, group: &str, batch_size: usize) -> Worker {
    spawn_worker_with(database, topic, group, batch_size, &[])
}

fn spawn_worker_with(database: &TestDatabase, topic: &str, group: &str, batch_size: usize, extra: &[&str]) -> Worker {
    let mut arguments = worker_args(&database.url, topic, group, batch_size);
    arguments.extend(extra.iter().map(ToString::to_string));
    // Each worker's log goes to a file beside the system temp dir, named after the topic, so a
    // failing run can be read afterwards.
    let log_path = std::env::temp_dir().join(format!("{topic}-{}.log", uuid::Uuid::new_v4().simple()));
    let log = std::fs::File::create(&log_path).expect("worker log file");
    let child = Command::new(env!("CARGO_BIN_EXE_sync-worker"))
        .args(&arguments[1..])
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sync-worker");
    Worker { child, log_path }
}

fn kill(worker: &mut Worker) {
    // SIGKILL: no chance to finish anything.
    worker.child.kill().expect("kill worker");
    worker.child.wait().expect("reap worker");
}

fn stop(worker: &mut Worker) {
    let pid = worker.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("send SIGTERM");
    assert!(status.success());
    let exit = worker.child.wait().expect("reap worker");
    assert!(exit.success(), "SIGTERM must end the worker cleanly, got {exit}");
}

/// Produces in slices while the test does other things, so crashes land mid-stream.
async fn produce_slowly(topic: String, messages: Vec<TestMessage>) -> Vec<(i32, i64)> {
    let mut positions = Vec::new();
    for slice in messages.chunks(150) {
        positions.extend(produce(&topic, slice).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    positions
}

/// The same, as a real producer writes: several records to a record batch.
async fn produce_slowly_in_batches(topic: String, messages: Vec<TestMessage>) -> Vec<(i32, i64)> {
    let mut positions = Vec::new();
    for slice in messages.chunks(150) {
        positions.extend(produce_in_batches(&topic, slice, 10).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    positions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_and_restarted_it_ends_exact() {
    let database = TestDatabase::create().await;
    let topic = unique_name("crash");
    let group = unique_name("group");
    create_topic(&topic, PARTITIONS).await;
    let feed = feed(23, 4_000);
    let producing = tokio::spawn(produce_slowly_in_batches(topic.clone(), feed.messages.clone()));

    let mut rng = Lcg(5);
    // Batches of 7 events, records in batches of 10: checkpoints fall inside record batches.
    let mut worker = spawn_worker(&database, &topic, &group, 7);
    let mut kills_mid_stream = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(900))).await;
        kills_mid_stream += usize::from(!producing.is_finished());
        kill(&mut worker);
        worker = spawn_worker(&database, &topic, &group, 7);
    }
    // A kill after the whole stream was applied would prove nothing.
    assert!(kills_mid_stream >= 2, "only {kills_mid_stream} of 4 kills landed while the stream was still arriving");
    let positions = producing.await.expect("producer task");
    let ends = end_offsets(&positions);
    let store = connect(&database).await;
    wait_until_applied(&store, &format!("kafka:{group}:{topic}"), &ends, Duration::from_secs(120)).await;
    stop(&mut worker);
    verify(&store, &feed.messages, &positions).await;
}

/// Waits until the two workers own every partition between them, each some.
async fn wait_for_split(first: &Worker, second: &Worker) {
    let started = std::time::Instant::now();
    loop {
        let (owned_first, owned_second) = (first.assigned_partitions(), second.assigned_partitions());
        if !owned_first.is_empty()
            && !owned_second.is_empty()
            && owned_first.len() + owned_second.len() == PARTITIONS as usize
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the group never split: {owned_first:?} / {owned_second:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A member SIGKILLed never leaves the group: tansu 0.6 keeps it, with its partitions, until
/// a rebalance after its session expired, and nothing starts one. The survivor sees those
/// partitions' checkpoints stand still while messages wait, rejoins the group, and the
/// rebalance gives it every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_without_leaving_has_its_partitions_taken_over() {
    let database = TestDatabase::create().await;
    let topic = unique_name("orphan");
    let group = unique_name("group");
    create_topic(&topic, PARTITIONS).await;
    let feed = feed(37, 2_000);
    let (before, after) = feed.messages.split_at(feed.messages.len() / 2);
    let quick = ["--kafka-stalled-partition-secs", "4"];
    let mut first = spawn_worker_with(&database, &topic, &group, 40, &quick);
    let mut second = spawn_worker_with(&database, &topic, &group, 40, &quick);
    let store = connect(&database).await;
    let source = format!("kafka:{group}:{topic}");
    wait_for_split(&first, &second).await;
    let mut positions = produce(&topic, before).await;
    wait_until_applied(&store, &source, &end_offsets(&positions), Duration::from_secs(120)).await;
    kill(&mut first);
    let later = produce(&topic, after).await;
    assert_eq!(end_offsets(&later).len(), PARTITIONS as usize, "the second half covers every partition");
    positions.extend(later);
    wait_until_applied(&store, &source, &end_offsets(&positions), Duration::from_secs(90)).await;
    let log = std::fs::read_to_string(&second.log_path).unwrap_or_default();
    assert!(
        log.contains("stalled partitions of another member"),
        "the survivor rejoined for the dead member's partitions"
    );
    stop(&mut second);
    verify(&store, &feed.messages, &positions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The member leaves by SIGTERM: its partitions move at the rebalance its leaving starts.
/// (A SIGKILLed member: `a_member_killed_without_leaving_has_its_partitions_taken_over`.)
async fn two_workers_split_the_partitions_and_one_takes_over_when_the_other_stops() {
    let database = TestDatabase::create().await;
    let topic = unique_name("group");
    let group = unique_name("group");
    create_topic(&topic, PARTITIONS).await;
    let feed = feed(31, 4_000);
    // The first half is produced while the group forms; the second only once one member has
    // left, so the survivor must apply it on every partition, the ones it took over included.
    let (before, after) = feed.messages.split_at(feed.messages.len() / 2);
    let producing = tokio::spawn(produce_slowly(topic.clone(), before.to_vec()));
    let mut first = spawn_worker(&database, &topic, &group, 40);
    let mut second = spawn_worker(&database, &topic, &group, 40);
    let store = connect(&database).await;
    let source = format!("kafka:{group}:{topic}");
    assert!(store.checkpoints(&source).await.expect("checkpoints").len() <= PARTITIONS as usize);

    // The group settles with both members owning partitions before one leaves.
    wait_for_split(&first, &second).await;
    let mut positions = producing.await.expect("producer task");
    // Both apply what they own of the first half.
    wait_until_applied(&store, &source, &end_offsets(&positions), Duration::from_secs(120)).await;
    stop(&mut first);
    // The survivor gets the stopped member's partitions at the rebalance its leaving triggers.
    let started = std::time::Instant::now();
    while second.assigned_partitions().len() != PARTITIONS as usize {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the survivor never took every partition: {:?}",
            second.assigned_partitions()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later = produce_slowly(topic.clone(), after.to_vec()).await;
    assert_eq!(end_offsets(&later).len(), PARTITIONS as usize, "the second half covers every partition");
    positions.extend(later);
    let ends = end_offsets(&positions);
    wait_until_applied(&store, &source, &ends, Duration::from_secs(120)).await;
    stop(&mut second);
    verify(&store, &feed.messages, &positions).await;
}

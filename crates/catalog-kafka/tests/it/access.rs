//! A member whose credentials the brokers refuse (their ACLs) says so through its broker
//! status, which `/readyz` follows, and is let in again once they no longer refuse.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::BatchSink;
use catalog_core::FailureClass;
use catalog_kafka::{KafkaSource, KafkaSourceConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio_util::sync::CancellationToken;

use crate::{all_at, cluster_with_topic, config, produce, wait_for, RecordingSink, TOPIC};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_refused_the_topic_is_not_ready_until_it_may_read_it() {
    let (cluster, brokers) = cluster_with_topic();
    cluster.topic_error(TOPIC, RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED).expect("refuse the topic");
    let sink = Arc::new(RecordingSink::default());
    let source =
        KafkaSource::new(config(&brokers, "refused"), Arc::clone(&sink) as Arc<dyn BatchSink>).expect("source");
    let status = source.broker_status();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(source.run(shutdown.clone()));

    wait_for(Duration::from_secs(10), || status.is_refused()).await;
    assert!(status.is_up(), "the brokers answer: the connection is up, the credentials are refused");
    let errors = sink.source_errors.lock().expect("sink state").clone();
    assert!(errors.contains(&("metadata", FailureClass::NeedsOperator)), "counted for an operator: {errors:?}");

    cluster.topic_error(TOPIC, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR).expect("grant the topic");
    produce(&brokers, 3);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(3)).await;
    assert!(!status.is_refused(), "read from: no longer refused");

    shutdown.cancel();
    running.await.expect("source task").expect("source run");
}

/// Two members of a group the brokers refuse, on a topic of one partition: once they may
/// join, both are let in, the one assigned nothing too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_refused_their_group_are_not_ready_until_they_join() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("solo", 1, 1).expect("topic");
    let refusals = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED; 1_000];
    cluster.request_errors(RDKafkaApiKey::JoinGroup, &refusals);
    let shutdown = CancellationToken::new();
    let mut members = Vec::new();
    for _ in 0..2 {
        let sink = Arc::new(RecordingSink::default());
        let config = KafkaSourceConfig { topic: "solo".to_owned(), ..config(&brokers, "refused") };
        let source = KafkaSource::new(config, Arc::clone(&sink) as Arc<dyn BatchSink>).expect("source");
        let status = source.broker_status();
        members.push((status, tokio::spawn(source.run(shutdown.clone()))));
    }
    wait_for(Duration::from_secs(10), || members.iter().all(|(status, _)| status.is_refused())).await;
    cluster.clear_request_errors(RDKafkaApiKey::JoinGroup);
    // Joined, nothing to read: one holds the partition, the other nothing, both are let in.
    wait_for(Duration::from_secs(30), || members.iter().all(|(status, _)| !status.is_refused())).await;
    shutdown.cancel();
    for (_, running) in members {
        running.await.expect("source task").expect("source run");
    }
}

//! A member whose credentials the brokers refuse (their ACLs) says so through its broker
//! status, which `/readyz` follows, and is let in again once they no longer refuse.

use std::sync::Arc;
use std::time::Duration;

use catalog_app::BatchSink;
use catalog_core::FailureClass;
use catalog_kafka::KafkaSource;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_refused_its_group_is_not_ready_until_it_joins() {
    let (cluster, brokers) = cluster_with_topic();
    let refusals = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED; 1_000];
    cluster.request_errors(RDKafkaApiKey::JoinGroup, &refusals);
    let sink = Arc::new(RecordingSink::default());
    let source =
        KafkaSource::new(config(&brokers, "refused"), Arc::clone(&sink) as Arc<dyn BatchSink>).expect("source");
    let status = source.broker_status();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(source.run(shutdown.clone()));

    wait_for(Duration::from_secs(10), || status.is_refused()).await;
    cluster.clear_request_errors(RDKafkaApiKey::JoinGroup);
    // Joined, with nothing to read yet: let in all the same.
    wait_for(Duration::from_secs(30), || !status.is_refused()).await;
    produce(&brokers, 3);
    wait_for(Duration::from_secs(30), || sink.checkpoints() == all_at(3)).await;
    assert!(!status.is_refused(), "joined and read: no longer refused");

    shutdown.cancel();
    running.await.expect("source task").expect("source run");
}

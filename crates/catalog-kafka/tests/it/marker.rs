//! A transaction's commit marker, written as a broker writes it when a transaction commits: a
//! control record batch, produced raw over Kafka's protocol. librdkafka's producer writes no
//! such batch itself, the mock cluster runs no transactions, and tansu 0.6 refuses `EndTxn`;
//! both store a control batch produced to them as it is. The batch (record batch v2): the
//! control and transactional attributes, one record whose key is the control type (version
//! 0, type 1: commit) and whose value is the end-transaction marker (version 0, coordinator
//! epoch 0). The request: Produce v3, the first version that carries such batches.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Attributes of a record batch: transactional (bit 4) and control (bit 5).
const TRANSACTIONAL_CONTROL: i16 = 0x10 | 0x20;

/// Appends a commit marker to `partition` of `topic` on the broker at `broker` (one
/// `host:port`) and returns the offset the broker gave it.
pub(crate) fn produce_commit_marker(broker: &str, topic: &str, partition: i32) -> i64 {
    let request = produce_request(topic, partition, &control_batch());
    let mut stream = TcpStream::connect(broker).expect("connect to the broker");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&framed(&request)).expect("send the produce request");
    let mut size = [0; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut response = vec![0; usize::try_from(i32::from_be_bytes(size)).expect("size")];
    stream.read_exact(&mut response).expect("response");
    // correlation id, topic count, topic name, partition count, partition index: then the
    // partition's error code and base offset.
    let name_len = usize::try_from(i16::from_be_bytes([response[8], response[9]])).expect("name");
    let at = 10 + name_len + 4 + 4;
    let error = i16::from_be_bytes([response[at], response[at + 1]]);
    assert_eq!(error, 0, "the broker refused the marker");
    i64::from_be_bytes(response[at + 2..at + 10].try_into().expect("offset"))
}

fn control_batch() -> Vec<u8> {
    let mut record = vec![0]; // attributes
    varint(&mut record, 0); // timestamp delta
    varint(&mut record, 0); // offset delta
    let key: [u8; 4] = [0, 0, 0, 1]; // version 0, type 1: commit
    varint(&mut record, 4);
    record.extend(key);
    let value: [u8; 6] = [0; 6]; // version 0, coordinator epoch 0
    varint(&mut record, 6);
    record.extend(value);
    varint(&mut record, 0); // headers
    let now = chrono::Utc::now().timestamp_millis();

    let mut checked = Vec::new(); // what the CRC covers: attributes to the end
    checked.extend(TRANSACTIONAL_CONTROL.to_be_bytes());
    checked.extend(0_i32.to_be_bytes()); // last offset delta
    checked.extend(now.to_be_bytes()); // first timestamp
    checked.extend(now.to_be_bytes()); // max timestamp
    checked.extend((-1_i64).to_be_bytes()); // producer id
    checked.extend((-1_i16).to_be_bytes()); // producer epoch
    checked.extend((-1_i32).to_be_bytes()); // base sequence
    checked.extend(1_i32.to_be_bytes()); // records
    varint(&mut checked, i64::try_from(record.len()).expect("length"));
    checked.extend(record);

    let mut batch = Vec::new();
    batch.extend(0_i64.to_be_bytes()); // base offset: the broker assigns it
    let length = 4 + 1 + 4 + checked.len(); // leader epoch, magic, CRC, the rest
    batch.extend(i32::try_from(length).expect("length").to_be_bytes());
    batch.extend((-1_i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend(crc32c(&checked).to_be_bytes());
    batch.extend(checked);
    batch
}

fn produce_request(topic: &str, partition: i32, batch: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    request.extend(0_i16.to_be_bytes()); // API key: Produce
    request.extend(3_i16.to_be_bytes()); // version
    request.extend(1_i32.to_be_bytes()); // correlation id
    string(&mut request, "catalog-kafka-test");
    request.extend((-1_i16).to_be_bytes()); // transactional id: none
    request.extend(1_i16.to_be_bytes()); // acks: the leader
    request.extend(10_000_i32.to_be_bytes()); // timeout
    request.extend(1_i32.to_be_bytes()); // topics
    string(&mut request, topic);
    request.extend(1_i32.to_be_bytes()); // partitions
    request.extend(partition.to_be_bytes());
    request.extend(i32::try_from(batch.len()).expect("length").to_be_bytes());
    request.extend(batch);
    request
}

fn framed(request: &[u8]) -> Vec<u8> {
    let mut framed = i32::try_from(request.len()).expect("length").to_be_bytes().to_vec();
    framed.extend(request);
    framed
}

fn string(out: &mut Vec<u8>, value: &str) {
    out.extend(i16::try_from(value.len()).expect("length").to_be_bytes());
    out.extend(value.as_bytes());
}

/// A zigzag varint, as record fields are written.
fn varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// CRC-32C (Castagnoli), the record batch's checksum.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn the_checksum_is_castagnoli_s() {
    // The check value of CRC-32C.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

//! What the rdkafka crate does not wrap, or wraps wrongly, read through librdkafka's C API.
//!
//! `first_header`: a message's header found by its name's bytes. rdkafka's `Headers` turns
//! every header name into a `&str` with an `unwrap`, so one header whose name is not UTF-8
//! (Kafka takes any bytes) panicked the partition's worker at that message, on every restart
//! and on every member the partition moved to: the partition stopped for good. Here the names
//! are read through librdkafka's own accessors and compared as bytes; a header is never
//! turned into text (decision 0038).
//!
//! `cached_watermarks`: a partition's watermarks as librdkafka last saw them in a fetch
//! response, without asking the broker (rdkafka wraps only the query): read whenever a
//! partition's offsets jump, to tell a jump over offsets retention deleted (decision 0041);
//! `cached_high_watermark`, the high watermark alone, whenever a batch is cut (lag in
//! messages; librdkafka's statistics report the same value, but only every 5 seconds).
//!
//! `position`: librdkafka's position in one partition. rdkafka's `Consumer::position` first
//! asks librdkafka's main thread for the whole assignment and waits for its answer; a quiet
//! partition reads its own position every few seconds (decision 0042), so each read is of one
//! partition, local.
//!
//! `topic_id`: the topic's id (KIP-516), which the broker gives a topic when it is created:
//! a topic deleted and created again under the same name has a new one. rdkafka wraps no
//! `DescribeTopics`; read when a member takes a partition (decision 0040).

// The one module of the workspace with `unsafe`: calls into librdkafka's C API, each with
// the pointer rules its documentation states.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;

use rdkafka::bindings::{
    rd_kafka_AdminOptions_destroy, rd_kafka_AdminOptions_new, rd_kafka_AdminOptions_set_broker,
    rd_kafka_AdminOptions_set_request_timeout, rd_kafka_DescribeTopics, rd_kafka_DescribeTopics_result_topics,
    rd_kafka_TopicCollection_destroy, rd_kafka_TopicCollection_of_topic_names, rd_kafka_TopicDescription_error,
    rd_kafka_TopicDescription_topic_id, rd_kafka_Uuid_least_significant_bits, rd_kafka_Uuid_most_significant_bits,
    rd_kafka_admin_op_t, rd_kafka_error_code, rd_kafka_event_DescribeTopics_result, rd_kafka_event_destroy,
    rd_kafka_event_error, rd_kafka_get_watermark_offsets, rd_kafka_header_get_all, rd_kafka_headers_t,
    rd_kafka_message_headers, rd_kafka_position, rd_kafka_queue_destroy, rd_kafka_queue_new, rd_kafka_queue_poll,
    rd_kafka_resp_err_t,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::source::SourceConsumer;

/// The value of the message's first header named `name` (ASCII case ignored); `None` when it
/// has none; empty when its header block cannot be read. A header with no value (null, which
/// Kafka tells apart from empty) reads as empty: for `traceparent`, an invalid one, counted as
/// an empty one is, where it was taken for no header at all.
pub(crate) fn first_header<'m>(message: &'m BorrowedMessage<'_>, name: &[u8]) -> Option<&'m [u8]> {
    let mut headers: *mut rd_kafka_headers_t = ptr::null_mut();
    // SAFETY: `message.ptr()` is the live message `message` borrows. librdkafka parses the
    // headers into a list owned by the message ("must not be freed by the application"), valid
    // as long as the message is: at least `'m`.
    let found = unsafe { rd_kafka_message_headers(message.ptr(), &mut headers) };
    if found == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT {
        return None;
    }
    if found != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        // The record's header block cannot be parsed (`__BAD_MSG`): whether it holds `name`
        // is unknown. Read as empty, for `traceparent` an invalid one, counted, where it was
        // taken for none and nothing said so (found by review).
        return Some(&[]);
    }
    for index in 0.. {
        let (mut name_ptr, mut value_ptr, mut size): (*const c_char, *const c_void, usize) =
            (ptr::null(), ptr::null(), 0);
        // SAFETY: `headers` is the message's list (above); the out-pointers are valid locals.
        // Past the last header it answers an error and writes nothing.
        let read = unsafe { rd_kafka_header_get_all(headers, index, &mut name_ptr, &mut value_ptr, &mut size) };
        if read != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name_ptr.is_null() {
            return None;
        }
        // SAFETY: librdkafka stores each name NUL-terminated in the list, which lives for 'm.
        let key = unsafe { CStr::from_ptr(name_ptr) }.to_bytes();
        if key.eq_ignore_ascii_case(name) {
            if value_ptr.is_null() {
                return Some(&[]);
            }
            // SAFETY: `size` bytes at `value_ptr`, owned by the list, which lives for 'm.
            return Some(unsafe { std::slice::from_raw_parts(value_ptr.cast::<u8>(), size) });
        }
    }
    None
}

/// The partition's low and high watermarks as librdkafka last read them from a fetch
/// response (the partition's log start and its high watermark), with no request to the
/// broker; `None` while it has read none. librdkafka takes both from every fetch response
/// before it queues the response's messages, so once a message is delivered they are at
/// least as new as the fetch that brought it.
pub(crate) fn cached_watermarks(consumer: &SourceConsumer, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let (low, high) = cached_offsets(consumer, topic, partition)?;
    (low >= 0 && high >= 0).then_some((low, high))
}

/// The partition's high watermark as librdkafka last read it from a fetch response, with no
/// request to the broker; `None` while it has read none.
pub(crate) fn cached_high_watermark(consumer: &SourceConsumer, topic: &str, partition: i32) -> Option<i64> {
    let (_, high) = cached_offsets(consumer, topic, partition)?;
    (high >= 0).then_some(high)
}

/// librdkafka's cached low and high watermarks of the partition, either of them
/// `RD_KAFKA_OFFSET_INVALID` (-1001) while not seen.
fn cached_offsets(consumer: &SourceConsumer, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client handle is live as long as `consumer` is; `topic` is NUL-terminated
    // and outlives the call, which only reads it; the out-pointers are valid locals, written
    // under librdkafka's partition lock.
    let read = unsafe {
        rd_kafka_get_watermark_offsets(consumer.client().native_ptr(), topic.as_ptr(), partition, &mut low, &mut high)
    };
    (read == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then_some((low, high))
}

/// librdkafka's position in `partition`: the offset after the last message or marker the
/// application's reads went by, read without asking the broker or librdkafka's main thread;
/// `None` before anything was read there.
pub(crate) fn position(consumer: &SourceConsumer, topic: &str, partition: i32) -> Option<i64> {
    let mut list = TopicPartitionList::with_capacity(1);
    list.add_partition(topic, partition);
    // SAFETY: the client handle is live as long as `consumer` is; `list` is a live list of one
    // partition that librdkafka only writes the offset of, under its partition lock.
    let read = unsafe { rd_kafka_position(consumer.client().native_ptr(), list.ptr()) };
    if read != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return None;
    }
    match list.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// The topic's id as the broker describes it, as 32 hexadecimal digits; `None` when the
/// broker did not answer within `timeout`, refused, or gives topics no ids (all zero). Blocks
/// the calling thread for up to twice `timeout`.
///
/// Asked of the broker leading the topic's first partition, as the topic's metadata says: a
/// `DescribeTopics` goes to the cluster's controller by default, which a broker need not name
/// (librdkafka's mock cluster does not: every call waited the whole timeout).
pub(crate) fn topic_id(consumer: &SourceConsumer, topic: &str, timeout: std::time::Duration) -> Option<String> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout).ok()?;
    let described = metadata.topics().iter().find(|described| described.name() == topic)?;
    let broker = described.partitions().iter().map(|partition| partition.leader()).find(|leader| *leader >= 0)?;
    let name = CString::new(topic).ok()?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let client = consumer.client().native_ptr();
    let mut names = [name.as_ptr()];
    // SAFETY: the client handle is live as long as `consumer` is. The collection copies the
    // names it is given; the queue, the options and the collection are created here, and each
    // is destroyed once, after its last use (`Owned`), the options and the collection after
    // the request that only reads them has been made.
    let queue = Owned(unsafe { rd_kafka_queue_new(client) }, |queue| unsafe { rd_kafka_queue_destroy(queue) });
    let options = Owned(
        unsafe { rd_kafka_AdminOptions_new(client, rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS) },
        |options| unsafe { rd_kafka_AdminOptions_destroy(options) },
    );
    let topics = Owned(unsafe { rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1) }, |topics| unsafe {
        rd_kafka_TopicCollection_destroy(topics)
    });
    if queue.0.is_null() || options.0.is_null() || topics.0.is_null() {
        return None;
    }
    let mut error = [0 as c_char; 256];
    // SAFETY: `options` is live; `error` is a buffer of the size given.
    unsafe {
        rd_kafka_AdminOptions_set_request_timeout(options.0, timeout_ms, error.as_mut_ptr(), error.len());
        rd_kafka_AdminOptions_set_broker(options.0, broker, error.as_mut_ptr(), error.len());
    }
    // SAFETY: every handle is live (above); the answer comes as one event on `queue`.
    unsafe { rd_kafka_DescribeTopics(client, topics.0, options.0, queue.0) };
    // A little longer than the request may take: the request's own timeout answers first.
    let event = Owned(unsafe { rd_kafka_queue_poll(queue.0, timeout_ms.saturating_add(1_000)) }, |event| unsafe {
        rd_kafka_event_destroy(event)
    });
    // SAFETY: `event` is live until dropped; the result, its topics and their ids belong to it.
    unsafe {
        if event.0.is_null() || rd_kafka_event_error(event.0) != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        let result = rd_kafka_event_DescribeTopics_result(event.0);
        if result.is_null() {
            return None;
        }
        let mut n_topics = 0_usize;
        let described = rd_kafka_DescribeTopics_result_topics(result, &mut n_topics);
        if described.is_null() || n_topics != 1 {
            return None;
        }
        let description = *described;
        let failed = rd_kafka_TopicDescription_error(description);
        if !failed.is_null() && rd_kafka_error_code(failed) != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        let id = rd_kafka_TopicDescription_topic_id(description);
        if id.is_null() {
            return None;
        }
        let (high, low) = (rd_kafka_Uuid_most_significant_bits(id), rd_kafka_Uuid_least_significant_bits(id));
        ((high, low) != (0, 0)).then(|| format!("{:016x}{:016x}", high as u64, low as u64))
    }
}

/// A librdkafka object destroyed by its destructor when dropped.
struct Owned<T>(*mut T, unsafe fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by librdkafka for this owner alone, destroyed once, here.
            unsafe { (self.1)(self.0) }
        }
    }
}

//! Standard input at shutdown, or failing: the lines its pipe delivered already are applied, a
//! line whose newline had not come is said. The producer took every line it wrote as
//! delivered, and standard input has no checkpoint for a next run to read them again from.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use catalog_app::{BatchSink, Durable, Reread, SinkError, SourceBatch, SourceError};
use catalog_core::InvalidTraceParent;
use catalog_store::{Position, SourceRef};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::lines::LineReader;
use crate::{FileSource, FileSourceError, Stopped};

/// Keeps the events it is given and the errors it is told.
#[derive(Default)]
struct Kept {
    events: Mutex<usize>,
    errors: Mutex<Vec<String>>,
    /// Each error's message, as told.
    messages: Mutex<Vec<String>>,
    /// The store gives up every batch (a store failing while the worker stops).
    abandons: bool,
}

#[async_trait]
impl BatchSink for Kept {
    async fn checkpoint(&self, _source: &str, _partition: i32) -> Result<Option<Position>, SinkError> {
        Ok(None)
    }

    async fn apply(&self, batch: SourceBatch) -> Result<Durable, SinkError> {
        if self.abandons {
            return Err(SinkError::Abandoned);
        }
        *self.events.lock().expect("events") += batch.events.len();
        Ok(Durable::default())
    }

    async fn rewind_checkpoint(&self, _: &str, _: i32, _: i64, _: &Position) -> Result<bool, SinkError> {
        Ok(false)
    }

    fn reread(&self, _partition: i32, _reason: Reread) {}

    fn reading_starts(&self, _partition: i32, _next_offset: i64, _high_watermark: i64) {}

    fn source_error(&self, error: &SourceError) {
        self.errors.lock().expect("errors").push(error.operation.to_owned());
        self.messages.lock().expect("messages").push(error.message.clone());
    }

    fn offset_gap(&self, _partition: i32, _from: i64, _to: i64) {}

    fn invalid_traceparent(&self, _at: &SourceRef, _invalid: InvalidTraceParent) {}

    fn partition_started(&self, _source: &str, _partition: i32) {}

    fn message_waiting(&self, _source: &str, _partition: i32, _at: DateTime<Utc>) {}

    fn partition_done(&self, _source: &str, _partition: i32) {}
}

/// Twenty lines in the pipe and half of one more, the producer still connected, when the
/// worker is told to stop: every whole line is applied, the half is said. The stop raced the
/// reads, and lines already taken from the pipe were dropped unsaid (one read of twenty
/// winning every race has odds of one in a million).
#[tokio::test]
async fn at_shutdown_standard_input_applies_the_lines_delivered_and_says_the_half_one() {
    let (mut producer, input) = tokio::io::duplex(4096);
    for n in 0..20 {
        producer.write_all(format!("line {n}\n").as_bytes()).await.expect("write");
    }
    producer.write_all(b"half").await.expect("write");
    let source =
        FileSource { path: None, batch_size: 3, batch_max_wait: Duration::from_secs(60), max_bytes_in_flight: 1 << 20 };
    let sink = Arc::new(Kept::default());
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let lines = LineReader::new(BufReader::new(input), 0);
    let (stopped, _) = source.read_all(lines, None, "stdin", &*sink, &shutdown).await.expect("read");
    assert_eq!(stopped, Stopped::Shutdown);
    assert_eq!(*sink.events.lock().expect("events"), 20, "every whole line");
    assert_eq!(*sink.errors.lock().expect("errors"), ["stdin_line_cut_at_shutdown"]);
    drop(producer);
}

/// A producer that goes on writing after the stop is read for `DRAIN_AT_MOST`, then left, and
/// said: the drain went on for as long as lines came, so the stop never came.
#[tokio::test]
async fn at_shutdown_standard_input_still_sending_is_left_after_a_while_and_said() {
    let (mut producer, input) = tokio::io::duplex(4096);
    let writing = tokio::spawn(async move {
        let mut n = 0u64;
        while producer.write_all(format!("line {n}\n").as_bytes()).await.is_ok() {
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let source = FileSource {
        path: None,
        batch_size: 100,
        batch_max_wait: Duration::from_secs(60),
        max_bytes_in_flight: 1 << 20,
    };
    let sink = Arc::new(Kept::default());
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let lines = LineReader::new(BufReader::new(input), 0);
    let started = std::time::Instant::now();
    let (stopped, _) = source.read_all(lines, None, "stdin", &*sink, &shutdown).await.expect("read");
    assert_eq!(stopped, Stopped::Shutdown);
    assert!(started.elapsed() < crate::ends::DRAIN_AT_MOST * 2, "the stop came: {:?}", started.elapsed());
    assert!(*sink.events.lock().expect("events") > 0, "what came meanwhile is applied");
    assert_eq!(*sink.errors.lock().expect("errors"), ["stdin_still_sending_at_shutdown"]);
    writing.abort();
}

/// A pipe that breaks: every read fails.
struct Broken;

impl AsyncRead for Broken {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Err(std::io::Error::other("the pipe broke")))
    }
}

/// Standard input fails after two whole lines and half of a third: the two are applied before
/// the error is returned, and the error says the half was lost. Before, the error was
/// returned with the two still pending: standard input cannot be read again, so they were
/// lost, unsaid.
#[tokio::test]
async fn a_read_error_on_standard_input_applies_the_lines_read_before_it_and_says_the_half_one() {
    let input = (&b"line 1\nline 2\nhal"[..]).chain(Broken);
    let source = FileSource {
        path: None,
        batch_size: 100,
        batch_max_wait: Duration::from_secs(60),
        max_bytes_in_flight: 1 << 20,
    };
    let sink = Arc::new(Kept::default());
    let lines = LineReader::new(BufReader::new(input), 0);
    let error = source.read_all(lines, None, "stdin", &*sink, &CancellationToken::new()).await.expect_err("it breaks");
    assert_eq!(*sink.events.lock().expect("events"), 2, "the lines read before the error");
    assert!(matches!(error, FileSourceError::Read { offset: 14, cut: 3, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "reading the source at byte 14, every line before it applied; the 3 bytes of the line after it that \
         standard input had delivered are not journaled: send that line again: the pipe broke"
    );
}

/// The store fails while the worker stops: the batch standard input delivered is given up,
/// and said, with the offset to send again from. Before, the lines were dropped with nothing
/// but "applying a batch: abandoned at shutdown", which names no line (found by review).
#[tokio::test]
async fn lines_of_standard_input_the_store_did_not_take_are_said_with_where_they_start() {
    let (mut producer, input) = tokio::io::duplex(4096);
    producer.write_all(b"line 1\nline 2\nline 3\n").await.expect("write");
    drop(producer);
    let source = FileSource {
        path: None,
        batch_size: 100,
        batch_max_wait: Duration::from_secs(60),
        max_bytes_in_flight: 1 << 20,
    };
    let sink = Arc::new(Kept { abandons: true, ..Kept::default() });
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let lines = LineReader::new(BufReader::new(input), 0);
    let error = source.read_all(lines, None, "stdin", &*sink, &shutdown).await.expect_err("given up");
    assert!(matches!(error, FileSourceError::Sink(SinkError::Abandoned)), "{error:?}");
    assert_eq!(*sink.errors.lock().expect("errors"), ["stdin_not_applied"]);
    let told = sink.messages.lock().expect("messages").concat();
    assert!(told.contains("from offset 0 on"), "{told}");
}

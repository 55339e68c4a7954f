//! The file source through its public face, `FileSource::run`, over files in a directory of
//! their own, into a sink that keeps in memory what a store would: checkpoints and the events
//! journaled. The worker end to end, with a real store, is `sync-worker`'s `file_source`.

mod first_run;
mod not_text;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catalog_app::{BatchSink, Durable, Reread, SinkError, SourceBatch, SourceError};
use catalog_core::InvalidTraceParent;
use catalog_file::{FileSource, FileSourceError};
use catalog_store::{Position, SourceRef};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// A contract event, numbered: its id and quantity are `n`.
fn event_line(n: u64) -> String {
    format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"SKU-{n}","quantity":{n},"updated_at":"2026-06-01T12:00:00Z"}}"#
    )
}

/// The lines of events `events`, each ended by a newline.
fn event_lines(events: std::ops::Range<u64>) -> String {
    events.map(|n| event_line(n) + "\n").collect()
}

/// What a store keeps of a file source: its checkpoints, and what was journaled (the number of
/// each event, `None` for a rejection), with the errors the source told.
#[derive(Default)]
struct Memory {
    checkpoints: Mutex<HashMap<String, Position>>,
    journal: Mutex<Vec<Option<u64>>>,
    errors: Mutex<Vec<String>>,
}

#[async_trait]
impl BatchSink for Memory {
    async fn checkpoint(&self, source: &str, _partition: i32) -> Result<Option<Position>, SinkError> {
        Ok(self.checkpoints.lock().expect("checkpoints").get(source).cloned())
    }

    async fn apply(&self, batch: SourceBatch) -> Result<Durable, SinkError> {
        let numbers = batch.events.iter().map(|event| {
            let decoded = event.delivery.decoded.as_ref().ok();
            // The id's last group holds the number in decimal digits.
            decoded.map(|event| event.event_id().to_string()[24..].parse().expect("an event of `event_line`"))
        });
        self.journal.lock().expect("journal").extend(numbers);
        if let Some(checkpoint) = batch.checkpoint {
            self.checkpoints.lock().expect("checkpoints").insert(batch.source.to_string(), checkpoint);
        }
        Ok(Durable::default())
    }

    async fn rewind_checkpoint(&self, _: &str, _: i32, _: i64, _: &Position) -> Result<bool, SinkError> {
        Ok(false)
    }

    fn reread(&self, _partition: i32, _reason: Reread) {}

    fn reading_starts(&self, _partition: i32, _next_offset: i64, _high_watermark: i64) {}

    fn source_error(&self, error: &SourceError) {
        self.errors.lock().expect("errors").push(error.operation.to_owned());
    }

    fn offset_gap(&self, _partition: i32, _from: i64, _to: i64) {}

    fn invalid_traceparent(&self, _at: &SourceRef, _invalid: InvalidTraceParent) {}

    fn partition_started(&self, _source: &str, _partition: i32) {}

    fn message_waiting(&self, _source: &str, _partition: i32, _at: DateTime<Utc>) {}

    fn partition_done(&self, _source: &str, _partition: i32) {}
}

/// Files in a directory of their own, written, rotated and read by the tests run by run, into
/// one store.
struct Feed {
    directory: tempfile::TempDir,
    store: Arc<Memory>,
}

impl Feed {
    fn new() -> Self {
        Self { directory: tempfile::tempdir().expect("temp dir"), store: Arc::new(Memory::default()) }
    }

    fn at(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// Appends `text` to file `name`, made if it is not there (the same file, its inode kept).
    fn append(&self, name: &str, text: &str) {
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(self.at(name)).expect("open the feed");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write the feed");
    }

    fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.at(from), self.at(to)).expect("rotate");
    }

    /// Runs the source over file `name` once, to its end.
    async fn run(&self, name: &str) -> Result<(), FileSourceError> {
        let source = FileSource {
            path: Some(self.at(name)),
            batch_size: 100,
            batch_max_wait: Duration::from_secs(60),
            max_bytes_in_flight: 1 << 20,
        };
        let sink: Arc<dyn BatchSink> = self.store.clone();
        source.run(sink, CancellationToken::new()).await
    }

    /// The events journaled so far, in order: each one's number, `None` for a rejection.
    fn journal(&self) -> Vec<Option<u64>> {
        self.store.journal.lock().expect("journal").clone()
    }

    /// The source errors told since the last call.
    fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.store.errors.lock().expect("errors"))
    }

    /// Whether any checkpoint is stored.
    fn has_checkpoints(&self) -> bool {
        !self.store.checkpoints.lock().expect("checkpoints").is_empty()
    }
}

//! The `log` channel: publishes item versions as JSON lines on standard output, for runs
//! without a storefront. Logs go to standard error, so standard output stays
//! machine-readable.

use std::io::Write;
use std::time::Instant;

use async_trait::async_trait;
use catalog_core::PublishBody;
use serde::Serialize;

use crate::adapter::{Attempt, ChannelAdapter, Publish, Sent};
use crate::response::Verdict;

#[derive(Serialize)]
struct PublishedLine<'a> {
    tenant_id: &'a str,
    /// The storefront contract's body: `item_id`, `sku`, `quantity`, `version`.
    #[serde(flatten)]
    body: PublishBody<'a>,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
}

/// Writes each item version as one line on standard output. A line is written before its
/// publish is recorded: a crash in between writes it again on restart, which a reader of
/// this stream must (and can, by item and version) tolerate.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogChannel;

#[async_trait]
impl ChannelAdapter for LogChannel {
    /// Each line names the tenant.
    fn names_the_tenant(&self) -> bool {
        true
    }

    async fn send(&self, batch: &[Publish]) -> Sent {
        Sent { attempts: batch.iter().map(write_line).collect(), pause: None }
    }
}

/// Writes one item version's line, with the quantity its channel rules give.
fn write_line(publish: &Publish) -> Attempt {
    let entry = &publish.entry;
    let started = Instant::now();
    let line = PublishedLine {
        tenant_id: entry.item.tenant().as_str(),
        body: PublishBody { quantity: publish.quantity, ..entry.item.publish_body() },
        channel: &entry.channel,
        traceparent: entry.traceparent.as_deref(),
    };
    let written = serde_json::to_vec(&line).map_err(std::io::Error::other).and_then(|mut bytes| {
        bytes.push(b'\n');
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes)?;
        stdout.flush()
    });
    let verdict = match written {
        Ok(()) => Verdict::Answered(entry.item.accepted()),
        // A closed or full standard output: retried like any failed send.
        Err(error) => Verdict::Retry { reason: "stdout", error: error.to_string() },
    };
    Attempt { verdict, status: None, latency: started.elapsed() }
}

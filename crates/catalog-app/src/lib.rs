//! The application layer of catalog-sync, under every binary: the source port every source
//! implements (`source`) and how sources cut batches (`batching`), the applier that makes
//! batches durable (`apply`), replay as a library function (`replay`), the channels items
//! are published on (`channels`) and the publishers that drain them (`publishing`),
//! reconciliation that reads channels back and corrects drift (`reconcile`), the launch
//! signals' sampler, tracer and progress reports (`signals`), and the Prometheus metrics
//! (`metrics`).
//!
//! No clap and no adapter crate here: sources (`catalog-kafka`, `catalog-file`) implement
//! the port, stores (`catalog-postgres`, `catalog-sqlite`) implement `catalog-store`'s, and
//! the binaries wire them together.

pub mod apply;
pub mod batching;
pub mod channels;
pub mod feeds;
pub mod metrics;
pub mod publishing;
pub mod reconcile;
pub mod replay;
pub mod retention;
pub mod signals;
pub mod source;

pub use apply::{Applier, ProgressReport, RetryPolicy, Totals, WriteHealth};
pub use batching::{BatchLimits, PendingBatch};
pub use metrics::Metrics;
pub use reconcile::{ReconcileSettings, Reconciler, SweepReport};
pub use source::{BatchSink, Durable, Reread, SinkError, SourceBatch, SourceError};

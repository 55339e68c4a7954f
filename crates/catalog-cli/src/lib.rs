//! What every catalog-sync binary shares: the store options and opening the store they name
//! (`store`), the channels queued for by a process that sends none (`channels`), the launch
//! signals' and the gate's settings (`signals`), logging set up once (`telemetry`), stopping
//! cleanly on a signal (`shutdown`), and the options rule each binary's test checks
//! (`options`). Options are clap types here and in the binaries only; the crates under them
//! take plain values.

pub mod channels;
pub mod options;
pub mod shutdown;
pub mod signals;
pub mod store;
pub mod telemetry;

pub use channels::ChannelArgs;
pub use signals::{GateArgs, SignalArgs};
pub use store::{open_store, OpenError, StoreArgs, Switch};
pub use telemetry::LogFormat;

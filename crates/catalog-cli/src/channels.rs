//! The channels a process that queues item changes but sends none (`admin-api`, `replay`)
//! queues them for: named by the worker's own storefront setting and channels file, under the
//! same variables, so every process writing to the catalog routes alike.

use std::path::PathBuf;
use std::sync::Arc;

use catalog_store::prelude::CatalogStore;
use catalog_store::ChannelRoute;
use clap::Args;

use crate::store::{open_store, OpenError, StoreArgs};

/// Where the worker publishes, as far as queueing needs it. Global, as the store options are.
#[derive(Debug, Clone, Default, Args)]
pub struct ChannelArgs {
    /// The storefront's base URL, as the worker is given it (only whether it is set counts
    /// here): item changes this process queues (held events released, dead letters retried,
    /// events replayed) go to the storefront, as the worker's do.
    #[arg(long, env = "CATALOG_STOREFRONT_URL", hide_env_values = true, global = true)]
    pub storefront_url: Option<String>,

    /// The worker's channels file: item changes this process queues go to its channels too.
    /// Read and checked as the worker reads it; credentials are not read. Without it and
    /// without a storefront URL, changes are queued for the storefront alone (the worker's
    /// log channel), as the worker does.
    #[arg(long, env = "CATALOG_CHANNELS_FILE", global = true)]
    pub channels_file: Option<PathBuf>,
}

impl ChannelArgs {
    /// The routes the worker's channels give.
    pub fn routes(&self) -> Result<Vec<ChannelRoute>, catalog_app::channels::ChannelsError> {
        catalog_app::channels::routes_of(self.storefront_url.as_deref(), self.channels_file.as_deref())
    }

    /// Opens the store `store` names, queuing item changes for the worker's channels.
    pub async fn open_store(&self, store: &StoreArgs) -> Result<Arc<dyn CatalogStore>, OpenError> {
        open_store(store, self.routes()?).await
    }
}

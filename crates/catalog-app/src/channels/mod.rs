//! Which channels items are published on: the storefront from its settings, further
//! channels (storefronts and marketplaces) from a channels file, each with its adapter, its
//! stock rules and listings, its pace and the tenants it serves; credentials read from the
//! environment by reference. Everything is checked at start, with errors that name the
//! channel and the field. No credential is ever logged.

mod accounts;
mod adapters;
mod file;
mod listings;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog_publish::marketplace::{
    amazon::{AmazonChannel, AmazonConfig},
    ebay::{EbayChannel, EbayConfig},
    mercadolibre::{MercadoLibreChannel, MercadoLibreConfig},
    shopify::{ShopifyChannel, ShopifyConfig},
    walmart::{WalmartChannel, WalmartConfig},
};
use catalog_publish::{
    ChannelAdapter, ChannelConfig, ChannelHold, ChannelReader, LookupReadBack, PublishError, Secret, StorefrontChannel,
    StorefrontConfig,
};
use catalog_store::ChannelRoute;

pub use file::ChannelsError;

/// The channel the outbox is filled for when no channel is configured, drained by the log.
pub const STOREFRONT_CHANNEL: &str = "storefront";

/// Where the storefront is, from the worker's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorefrontSettings {
    pub base_url: String,
    pub token: Option<Secret>,
    pub requests_per_second: u32,
    pub concurrency: usize,
}

/// Everything that decides where changed items go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSettings {
    /// The storefront, when a URL was given.
    pub storefront: Option<StorefrontSettings>,
    /// JSON list of further channels.
    pub channels_file: Option<PathBuf>,
    pub lease: Duration,
    pub settle: Duration,
    pub max_wait: Duration,
    /// Failures before an item version is dead-lettered, on every channel the channels
    /// file gives no `max_attempts` of its own.
    pub max_attempts: u32,
}

/// What a channel speaks, with its settings and resolved credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterSettings {
    /// The storefront contract (`shared/contracts/storefront-api.md`).
    Storefront(StorefrontConfig),
    /// Shopify Admin GraphQL `inventorySetQuantities`.
    Shopify(ShopifyConfig),
    /// Amazon Selling Partner API, Listings Items `patchListingsItem`.
    Amazon(AmazonConfig),
    /// Walmart Marketplace inventory update.
    Walmart(WalmartConfig),
    /// eBay Sell Inventory `bulkUpdatePriceQuantity`.
    Ebay(EbayConfig),
    /// Mercado Libre item update.
    MercadoLibre(MercadoLibreConfig),
}

impl AdapterSettings {
    /// The adapter's kind as the channels file names it: a log field and metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterSettings::Storefront(_) => "storefront",
            AdapterSettings::Shopify(_) => "shopify",
            AdapterSettings::Amazon(_) => "amazon",
            AdapterSettings::Walmart(_) => "walmart",
            AdapterSettings::Ebay(_) => "ebay",
            AdapterSettings::MercadoLibre(_) => "mercadolibre",
        }
    }

    /// Where its requests go (no credential in it).
    pub fn base_url(&self) -> &str {
        match self {
            AdapterSettings::Storefront(config) => &config.base_url,
            AdapterSettings::Shopify(config) => &config.base_url,
            AdapterSettings::Amazon(config) => &config.base_url,
            AdapterSettings::Walmart(config) => &config.base_url,
            AdapterSettings::Ebay(config) => &config.base_url,
            AdapterSettings::MercadoLibre(config) => &config.base_url,
        }
    }

    fn base_url_mut(&mut self) -> &mut String {
        match self {
            AdapterSettings::Storefront(config) => &mut config.base_url,
            AdapterSettings::Shopify(config) => &mut config.base_url,
            AdapterSettings::Amazon(config) => &mut config.base_url,
            AdapterSettings::Walmart(config) => &mut config.base_url,
            AdapterSettings::Ebay(config) => &mut config.base_url,
            AdapterSettings::MercadoLibre(config) => &mut config.base_url,
        }
    }

    /// Where its OAuth2 access tokens are asked for, on platforms that use them.
    fn token_url(&self) -> Option<&str> {
        match self {
            AdapterSettings::Storefront(_) | AdapterSettings::Shopify(_) => None,
            AdapterSettings::Amazon(config) => Some(&config.token_url),
            AdapterSettings::Walmart(config) => Some(&config.token_url),
            AdapterSettings::Ebay(config) => Some(&config.token_url),
            AdapterSettings::MercadoLibre(config) => Some(&config.token_url),
        }
    }

    /// The adapter, with a client that gives up after `request_timeout` and keeps up to
    /// `connections` connections open, and how the same adapter (one client, one access
    /// token cache: Mercado Libre's refresh tokens are single-use) reads the channel back.
    pub fn build(
        &self,
        request_timeout: Duration,
        connections: usize,
    ) -> Result<(Arc<dyn ChannelAdapter>, Option<ChannelReader>), PublishError> {
        fn looked_up<T: ChannelAdapter + LookupReadBack>(
            channel: T,
        ) -> (Arc<dyn ChannelAdapter>, Option<ChannelReader>) {
            let channel = Arc::new(channel);
            (Arc::clone(&channel) as Arc<dyn ChannelAdapter>, Some(ChannelReader::Lookup(channel)))
        }
        Ok(match self.clone() {
            AdapterSettings::Storefront(config) => {
                let channel = Arc::new(StorefrontChannel::new(config, request_timeout, connections)?);
                (Arc::clone(&channel) as Arc<dyn ChannelAdapter>, Some(ChannelReader::List(channel)))
            }
            AdapterSettings::Shopify(config) => looked_up(ShopifyChannel::new(config, request_timeout, connections)?),
            AdapterSettings::Amazon(config) => looked_up(AmazonChannel::new(config, request_timeout, connections)?),
            AdapterSettings::Walmart(config) => looked_up(WalmartChannel::new(config, request_timeout, connections)?),
            AdapterSettings::Ebay(config) => looked_up(EbayChannel::new(config, request_timeout, connections)?),
            AdapterSettings::MercadoLibre(config) => {
                looked_up(MercadoLibreChannel::new(config, request_timeout, connections)?)
            }
        })
    }
}

/// One HTTP channel: how it is drained (with its stock rules), what it speaks, which tenants
/// it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpChannel {
    pub config: ChannelConfig,
    pub adapter: AdapterSettings,
    pub route: ChannelRoute,
    /// How long a difference read back must last before reconciliation corrects it; `None`
    /// for the adapter's own (`LookupReadBack::settle`).
    pub read_back_settle: Option<Duration>,
}

/// The HTTP channels to publish to; empty means the `log` channel.
pub fn http_channels(settings: &PublishSettings) -> Result<Vec<HttpChannel>, ChannelsError> {
    http_channels_with(settings, &|name| std::env::var(name).ok())
}

/// [`http_channels`], reading credentials through `env` (tests pass their own).
pub fn http_channels_with(
    settings: &PublishSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<HttpChannel>, ChannelsError> {
    let mut channels = Vec::new();
    if let Some(storefront) = &settings.storefront {
        catalog_publish::check_base_url(&storefront.base_url).map_err(ChannelsError::StorefrontUrl)?;
        // An HTTP channel always has a limit: at least one request per second.
        let mut config = ChannelConfig::new(STOREFRONT_CHANNEL).with_rate(storefront.requests_per_second.max(1));
        config.concurrency = storefront.concurrency.max(1);
        config.max_attempts = settings.max_attempts.max(1);
        channels.push(HttpChannel {
            config,
            adapter: AdapterSettings::Storefront(StorefrontConfig::new(&storefront.base_url, storefront.token.clone())),
            route: ChannelRoute::all(STOREFRONT_CHANNEL),
            read_back_settle: None,
        });
    }
    if let Some(path) = &settings.channels_file {
        for mut channel in file::read(path, settings.max_attempts.max(1), env)? {
            let refused = |field: &str, error: String| ChannelsError::Adapter {
                channel: channel.config.name.clone(),
                error: format!("{field} {error}"),
            };
            // One spelling, so that channels on one account or budget are found as such.
            let base_url =
                catalog_publish::canonical_base_url(channel.adapter.base_url()).map_err(|e| refused("base_url", e))?;
            // A token URL the client cannot use would hold the channel as throttled for ever.
            if let Some(token_url) = channel.adapter.token_url() {
                catalog_publish::check_base_url(token_url).map_err(|e| refused("token_url", e))?;
            }
            *channel.adapter.base_url_mut() = base_url;
            channels.push(channel);
        }
    }
    for channel in &mut channels {
        channel.config.lease = settings.lease;
        channel.config.settle = settings.settle;
        channel.config.max_wait = settings.max_wait.max(settings.settle);
    }
    let mut names: Vec<&str> = channels.iter().map(|channel| channel.config.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(ChannelsError::Duplicate(pair[0].to_owned()));
    }
    accounts::link_accounts(&mut channels)?;
    Ok(channels)
}

/// An HTTP channel with its adapter built: what publishes to it and, when it can be read
/// back, what reconciles it, over one client.
#[derive(Debug, Clone)]
pub struct BuiltChannel {
    pub channel: HttpChannel,
    pub adapter: Arc<dyn ChannelAdapter>,
    pub reader: Option<ChannelReader>,
    /// The channel's throttling hold, shared by its publisher and its reconciler: a 429 to a
    /// send holds the reads, and one to a read holds the sends. Channels spending one rate
    /// budget of the platform share it (`accounts::same_budget`).
    pub hold: Arc<ChannelHold>,
}

/// Builds each channel's adapter once, for its publisher and its reconciler. Channels on one
/// rate budget of a platform (one Shopify app and shop at several locations, one seller's
/// channel per tenant) get one hold: held apart, each went on sending into the refusal the
/// other met, and a shop that keeps exceeding its limits is locked (Shopify's 423).
pub fn build_channels(channels: Vec<HttpChannel>) -> Result<Vec<BuiltChannel>, PublishError> {
    let mut built: Vec<BuiltChannel> = Vec::with_capacity(channels.len());
    for channel in channels {
        let (adapter, reader) = channel.adapter.build(channel.config.request_timeout, channel.config.concurrency)?;
        let hold = built
            .iter()
            .find(|other| accounts::same_budget(&channel.adapter, &other.channel.adapter))
            .map_or_else(|| Arc::new(ChannelHold::default()), |other| Arc::clone(&other.hold));
        built.push(BuiltChannel { channel, adapter, reader, hold });
    }
    Ok(built)
}

/// The routes of the worker's channels, for a process that queues item changes but sends
/// none (`admin-api` releasing held events or retrying a dead letter, `replay`): the same
/// storefront setting and channels file give the same routes, so what it queues reaches every
/// channel the worker publishes to. The channels file is read and checked as the worker reads
/// it, but no credential is read: nothing is sent from here.
pub fn routes_of(
    storefront_url: Option<&str>,
    channels_file: Option<&Path>,
) -> Result<Vec<ChannelRoute>, ChannelsError> {
    let settings = PublishSettings {
        storefront: storefront_url.map(|base_url| StorefrontSettings {
            base_url: base_url.to_owned(),
            token: None,
            requests_per_second: 1,
            concurrency: 1,
        }),
        channels_file: channels_file.map(Path::to_path_buf),
        lease: Duration::ZERO,
        settle: Duration::ZERO,
        max_wait: Duration::ZERO,
        max_attempts: 1,
    };
    Ok(routes(&http_channels_with(&settings, &credentials_unread)?))
}

/// Credentials for a process that sends nothing (`admin-api`, `replay`, a `--publish off`
/// worker): every variable a channel names reads as set, and none is read. Each reads as its
/// own name: two channels are one seller account by their credentials (`same_account`), so
/// channels naming other variables must not read as sharing one (two Mercado Libre sellers
/// with files of their own were refused as one account).
pub fn credentials_unread(name: &str) -> Option<String> {
    Some(format!("not read: {name}"))
}

/// The routes the store queues item changes for: the HTTP channels', or the storefront alone
/// (drained by the log) when there are none.
pub fn routes(channels: &[HttpChannel]) -> Vec<ChannelRoute> {
    if channels.is_empty() {
        return vec![ChannelRoute::all(STOREFRONT_CHANNEL)];
    }
    channels.iter().map(|channel| channel.route.clone()).collect()
}

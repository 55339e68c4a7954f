//! A channel's `adapter` object in the channels file: `kind` and that platform's settings,
//! credentials named by environment variable (`*_env`) and read at start. Hosts default to
//! each platform's production endpoints and may be pointed elsewhere (a sandbox, a test).

use std::time::Duration;

use catalog_publish::marketplace::feeds::FeedSettings;
use catalog_publish::marketplace::{amazon, ebay, mercadolibre, shopify, walmart};
use catalog_publish::StorefrontConfig;
use serde::Deserialize;

use super::file::{credential, without_position, ChannelsError};
use super::AdapterSettings;

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum AdapterEntry {
    Storefront {
        base_url: String,
        token_env: Option<String>,
    },
    Shopify {
        /// The shop's origin, `https://{shop}.myshopify.com`.
        base_url: String,
        api_version: Option<String>,
        /// The location whose available quantity is set, a GID (`gid://shopify/Location/{id}`),
        /// checked at start.
        location_id: String,
        access_token_env: String,
    },
    Amazon {
        /// The region's endpoint; North America's by default.
        base_url: Option<String>,
        token_url: Option<String>,
        seller_id: String,
        marketplace_id: String,
        /// The listing's product type for the patch; `PRODUCT` by default.
        product_type: Option<String>,
        client_id: String,
        client_secret_env: String,
        refresh_token_env: String,
        /// Quantities go in `JSON_LISTINGS_FEED` feeds instead of one patch per listing.
        feed: Option<FeedEntry>,
    },
    Walmart {
        base_url: Option<String>,
        token_url: Option<String>,
        /// The ship node (fulfillment center) whose quantity is set; the seller's default
        /// when absent.
        ship_node: Option<String>,
        client_id: String,
        client_secret_env: String,
        /// Quantities go in bulk inventory feeds instead of one update per SKU.
        feed: Option<FeedEntry>,
    },
    Ebay {
        base_url: Option<String>,
        token_url: Option<String>,
        client_id: String,
        client_secret_env: String,
        refresh_token_env: String,
    },
    #[serde(rename = "mercadolibre")]
    MercadoLibre {
        base_url: Option<String>,
        token_url: Option<String>,
        client_id: String,
        client_secret_env: String,
        refresh_token_env: String,
        /// Where the rotated refresh token is kept across restarts (Mercado Libre spends a
        /// refresh token on its first use). Required: refused at start when missing.
        refresh_token_file: Option<std::path::PathBuf>,
    },
}

/// How a channel of feeds (Amazon, Walmart) waits for each feed; the platform's usual pace
/// when empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedEntry {
    /// How often a submitted feed's status is read; 30 s by default.
    poll_interval_ms: Option<u64>,
    /// How long a feed is waited for before its items go in a new one; 20 min (Amazon) or
    /// 40 min (Walmart) by default.
    timeout_s: Option<u64>,
}

impl FeedEntry {
    /// The settings, or why not: a poll interval of 0 reads a feed's status in a tight loop
    /// until the platform throttles, and a timeout of 0 gives up on every feed at once and
    /// submits it again, spending the platform's few feeds an hour.
    fn settings(&self, channel: &str, default_timeout: Duration) -> Result<FeedSettings, ChannelsError> {
        let refused = |field: &str| ChannelsError::Adapter {
            channel: channel.to_owned(),
            error: format!("adapter: feed: {field} must be above 0"),
        };
        if self.poll_interval_ms == Some(0) {
            return Err(refused("poll_interval_ms"));
        }
        if self.timeout_s == Some(0) {
            return Err(refused("timeout_s"));
        }
        Ok(FeedSettings {
            poll_interval: self.poll_interval_ms.map_or(FeedSettings::DEFAULT_POLL_INTERVAL, Duration::from_millis),
            timeout: self.timeout_s.map_or(default_timeout, Duration::from_secs),
        })
    }
}

/// The adapter settings of channel `channel` from its `adapter` object.
pub(super) fn adapter_settings(
    channel: &str,
    adapter: &serde_json::value::RawValue,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AdapterSettings, ChannelsError> {
    let entry: AdapterEntry = serde_json::from_str(adapter.get()).map_err(|error| ChannelsError::Adapter {
        channel: channel.to_owned(),
        error: format!("adapter: {}", without_position(&error)),
    })?;
    let secret = |what, variable: &str| credential(channel, what, variable, env);
    let url = |value: Option<String>, default: &str| value.unwrap_or_else(|| default.to_owned());
    Ok(match entry {
        AdapterEntry::Storefront { base_url, token_env } => {
            let token = token_env.as_deref().map(|variable| secret("token", variable)).transpose()?;
            AdapterSettings::Storefront(StorefrontConfig::new(base_url, token))
        }
        AdapterEntry::Shopify { base_url, api_version, location_id, access_token_env } => {
            let api_version = url(api_version, shopify::DEFAULT_API_VERSION);
            shopify::check_api_version(&api_version).map_err(|error| ChannelsError::Adapter {
                channel: channel.to_owned(),
                error: format!("adapter: api_version: {error}"),
            })?;
            shopify::check_location_id(&location_id).map_err(|error| ChannelsError::Adapter {
                channel: channel.to_owned(),
                error: format!("adapter: location_id: {error}"),
            })?;
            AdapterSettings::Shopify(shopify::ShopifyConfig {
                base_url: base_url.trim_end_matches('/').to_owned(),
                api_version,
                location_id,
                access_token: secret("access token", &access_token_env)?,
            })
        }
        AdapterEntry::Amazon {
            base_url,
            token_url,
            seller_id,
            marketplace_id,
            product_type,
            client_id,
            client_secret_env,
            refresh_token_env,
            feed,
        } => AdapterSettings::Amazon(amazon::AmazonConfig {
            base_url: url(base_url, amazon::DEFAULT_BASE_URL),
            token_url: url(token_url, amazon::DEFAULT_TOKEN_URL),
            seller_id,
            marketplace_id,
            product_type: url(product_type, amazon::DEFAULT_PRODUCT_TYPE),
            client_id,
            client_secret: secret("client secret", &client_secret_env)?,
            refresh_token: secret("refresh token", &refresh_token_env)?,
            feed: feed.map(|feed| feed.settings(channel, FeedSettings::DEFAULT_TIMEOUT)).transpose()?,
        }),
        AdapterEntry::Walmart { base_url, token_url, ship_node, client_id, client_secret_env, feed } => {
            let token_url = on_host(token_url, base_url.as_deref(), "/v3/token", walmart::DEFAULT_TOKEN_URL);
            AdapterSettings::Walmart(walmart::WalmartConfig {
                base_url: url(base_url, walmart::DEFAULT_BASE_URL),
                ship_node,
                token_url,
                client_id,
                client_secret: secret("client secret", &client_secret_env)?,
                feed: feed.map(|feed| feed.settings(channel, walmart::DEFAULT_FEED_TIMEOUT)).transpose()?,
            })
        }
        AdapterEntry::Ebay { base_url, token_url, client_id, client_secret_env, refresh_token_env } => {
            AdapterSettings::Ebay(ebay::EbayConfig {
                token_url: on_host(
                    token_url,
                    base_url.as_deref(),
                    "/identity/v1/oauth2/token",
                    ebay::DEFAULT_TOKEN_URL,
                ),
                base_url: url(base_url, ebay::DEFAULT_BASE_URL),
                client_id,
                client_secret: secret("client secret", &client_secret_env)?,
                refresh_token: secret("refresh token", &refresh_token_env)?,
            })
        }
        AdapterEntry::MercadoLibre { refresh_token_file: None, .. } => {
            return Err(ChannelsError::Adapter {
                channel: channel.to_owned(),
                error: "adapter: Mercado Libre needs a \"refresh_token_file\": it spends a refresh token on its first \
                        use and answers with the next, which only that file keeps across restarts; without it, the next \
                        start presents a spent token and the channel is held until its grant is renewed"
                    .to_owned(),
            });
        }
        AdapterEntry::MercadoLibre {
            base_url,
            token_url,
            client_id,
            client_secret_env,
            refresh_token_env,
            refresh_token_file,
        } => AdapterSettings::MercadoLibre(mercadolibre::MercadoLibreConfig {
            token_url: on_host(token_url, base_url.as_deref(), "/oauth/token", mercadolibre::DEFAULT_TOKEN_URL),
            base_url: url(base_url, mercadolibre::DEFAULT_BASE_URL),
            client_id,
            client_secret: secret("client secret", &client_secret_env)?,
            refresh_token: secret("refresh token", &refresh_token_env)?,
            refresh_token_file,
        }),
    })
}

/// A token endpoint served by the API host itself (Walmart, eBay, Mercado Libre): the one
/// given, or `path` on the API host given (a sandbox, a test), or the platform's default.
fn on_host(token_url: Option<String>, base_url: Option<&str>, path: &str, default: &str) -> String {
    match (token_url, base_url) {
        (Some(token_url), _) => token_url,
        (None, Some(base_url)) => format!("{}{path}", base_url.trim_end_matches('/')),
        (None, None) => default.to_owned(),
    }
}

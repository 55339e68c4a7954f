//! The channels file: a JSON list of channels, each with its adapter (`"adapter": {"kind":
//! "amazon", …}`; a storefront may still be written as top-level `base_url` and `token_env`),
//! credentials by the name of the environment variable that holds them (`*_env`), stock rules
//! (`stock`), listings (`listings` or `listings_file`), pace and tenants. Read and checked
//! whole at start; every error names the channel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use catalog_core::{ChannelRules, Listings, StockRules, TenantId};
use catalog_publish::marketplace::amazon::{self, AmazonConfig};
use catalog_publish::marketplace::walmart::{self, WalmartConfig};
use catalog_publish::{ChannelConfig, Rate, Secret, StorefrontConfig};
use catalog_store::ChannelRoute;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::adapters::adapter_settings;
use super::{listings, AdapterSettings, HttpChannel};

/// A channels file or setting that cannot be used, said plainly.
#[derive(Debug, thiserror::Error)]
pub enum ChannelsError {
    #[error("reading the channels file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("parsing the channels file {path}: {error}")]
    Parse { path: PathBuf, error: serde_json::Error },
    #[error("channel name {0:?} must be 1 or more of [a-z0-9_-]")]
    Name(String),
    #[error("channel {channel}: environment variable {variable} (its {what}) is not set")]
    MissingCredential { channel: String, what: &'static str, variable: String },
    #[error("channel {channel}: tenant {tenant:?} {error}")]
    Tenant { channel: String, tenant: String, error: catalog_core::IdError },
    #[error("channel {0:?} is configured twice")]
    Duplicate(String),
    #[error("channels {first} and {second} write one seller account's listings, and {error} (decision 0056)")]
    SharedAccount { first: String, second: String, error: String },
    #[error("channel {0}: max_attempts must be at least 1")]
    MaxAttempts(String),
    #[error("channel {channel}: {error}")]
    Adapter { channel: String, error: String },
    #[error("channel {channel}: listings at {at}: {error}")]
    Listing { channel: String, at: String, error: String },
    #[error("--storefront-url (CATALOG_STOREFRONT_URL): {0}, e.g. https://storefront.example.com")]
    StorefrontUrl(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelEntry {
    name: String,
    /// What the channel speaks and where; absent for a storefront written the short way. Kept
    /// as written and read apart, so an error names the channel and a field written twice is
    /// refused (a `Value` would keep the last).
    adapter: Option<Box<RawValue>>,
    /// A storefront's URL, the short way (no `adapter`).
    base_url: Option<String>,
    /// Name of the environment variable that holds a storefront's bearer token, the short way.
    token_env: Option<String>,
    /// Sends started per second at most, below 1 for a slow operation (Amazon's `createFeed`:
    /// 0.0083); as the platform's usage plan documents it.
    requests_per_second: Option<f64>,
    /// Sends allowed at once after a quiet spell; the rate rounded up when absent.
    burst: Option<u32>,
    concurrency: Option<usize>,
    /// Failures before an item version is dead-lettered; the worker's default when absent.
    max_attempts: Option<u32>,
    /// Only these tenants' items are published on this channel; all when absent.
    tenants: Option<Vec<String>>,
    #[serde(default = "enabled")]
    enabled: bool,
    /// How much of each item's stock the channel is offered; all of it when absent. Read
    /// apart, so an error names the channel.
    stock: Option<Box<RawValue>>,
    /// SKU → the channel's listing id; every SKU as it is when neither this nor
    /// `listings_file` is given.
    listings: Option<listings::Pairs>,
    /// A `sku,listing` CSV file, relative to the channels file.
    listings_file: Option<PathBuf>,
    /// How long a difference read back from the channel must last before it is corrected;
    /// the adapter's documented processing delay when absent (decision 0022).
    read_back_settle_ms: Option<u64>,
}

fn enabled() -> bool {
    true
}

/// `error`'s message without the line and column serde_json adds: they count within the
/// channel's own object, not the file.
pub(super) fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&position).map_or(text.clone(), str::to_owned)
}

/// The enabled channels of the file at `path`, credentials read through `env`.
pub(super) fn read(
    path: &Path,
    default_max_attempts: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<HttpChannel>, ChannelsError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| ChannelsError::Read { path: path.to_path_buf(), error })?;
    let entries: Vec<ChannelEntry> =
        serde_json::from_str(&text).map_err(|error| ChannelsError::Parse { path: path.to_path_buf(), error })?;
    let directory = path.parent().unwrap_or(Path::new("."));
    entries
        .into_iter()
        .filter(|entry| entry.enabled)
        .map(|entry| channel(entry, directory, default_max_attempts, env))
        .collect()
}

fn channel(
    entry: ChannelEntry,
    directory: &Path,
    default_max_attempts: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HttpChannel, ChannelsError> {
    let name = entry.name;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(ChannelsError::Name(name));
    }
    let adapter = match (entry.adapter, entry.base_url) {
        (Some(_), Some(_)) => {
            return Err(ChannelsError::Adapter {
                channel: name,
                error: "give either \"adapter\" or a storefront's \"base_url\", not both".to_owned(),
            })
        }
        (Some(_), None) if entry.token_env.is_some() => {
            return Err(ChannelsError::Adapter {
                channel: name,
                error: "\"token_env\" is a storefront's: an \"adapter\" names its own credentials".to_owned(),
            })
        }
        (Some(adapter), None) => adapter_settings(&name, &adapter, env)?,
        (None, Some(base_url)) => {
            let token =
                entry.token_env.as_deref().map(|variable| credential(&name, "token", variable, env)).transpose()?;
            AdapterSettings::Storefront(StorefrontConfig::new(base_url, token))
        }
        (None, None) => {
            return Err(ChannelsError::Adapter {
                channel: name,
                error: "no \"adapter\" (or storefront \"base_url\") says what it speaks".to_owned(),
            })
        }
    };
    let route = match &entry.tenants {
        None => ChannelRoute::all(&name),
        Some(tenants) => {
            let tenants = tenants
                .iter()
                .map(|tenant| {
                    TenantId::parse(tenant).map_err(|error| ChannelsError::Tenant {
                        channel: name.clone(),
                        tenant: tenant.clone(),
                        error,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            ChannelRoute::for_tenants(&name, tenants)
        }
    };
    let listings = match (entry.listings, entry.listings_file) {
        (Some(_), Some(_)) => {
            return Err(ChannelsError::Adapter {
                channel: name,
                error: "give either \"listings\" or \"listings_file\", not both".to_owned(),
            })
        }
        (Some(pairs), None) => Listings::Mapped(listings::from_pairs(
            &name,
            pairs.0.iter().map(|(sku, listing)| (sku.as_str(), listing.as_str())),
            &|_| "\"listings\"".to_owned(),
        )?),
        (None, Some(file)) => Listings::Mapped(listings::read_csv(&name, &directory.join(file))?),
        (None, None) => Listings::BySku,
    };
    listings::check_listings(&name, &adapter, &listings)?;
    let mut config = ChannelConfig::new(&name);
    // A send of a channel of feeds is a whole feed, waited for; it starts at the pace the
    // platform allows feeds.
    let feed = match &adapter {
        AdapterSettings::Amazon(AmazonConfig { feed: Some(feed), .. }) => Some((feed, amazon::CREATE_FEED_RATE)),
        AdapterSettings::Walmart(WalmartConfig { feed: Some(feed), .. }) => Some((feed, walmart::FEED_RATE)),
        _ => None,
    };
    if let Some((feed, rate)) = feed {
        config.request_timeout = feed.send_timeout();
        config.rate = Some(rate);
    }
    match (entry.requests_per_second, entry.burst) {
        (Some(per_second), burst) => {
            config.rate = Some(
                Rate::from_plan(per_second, burst)
                    .map_err(|error| ChannelsError::Adapter { channel: name.clone(), error })?,
            );
        }
        (None, Some(_)) => {
            return Err(ChannelsError::Adapter {
                channel: name,
                error: "\"burst\" needs the \"requests_per_second\" it bursts above".to_owned(),
            })
        }
        (None, None) => {}
    }
    match entry.concurrency {
        Some(0) => {
            return Err(ChannelsError::Adapter {
                channel: name,
                error: "concurrency must be 1 or more: 0 would send nothing".to_owned(),
            })
        }
        Some(concurrency) => config.concurrency = concurrency,
        None => {}
    }
    config.max_attempts = match entry.max_attempts {
        Some(0) => return Err(ChannelsError::MaxAttempts(name)),
        Some(max_attempts) => max_attempts,
        None => default_max_attempts,
    };
    let stock = match entry.stock {
        None => StockRules::default(),
        Some(stock) => serde_json::from_str(stock.get()).map_err(|error| ChannelsError::Adapter {
            channel: name.clone(),
            error: format!("stock: {}", without_position(&error)),
        })?,
    };
    config.rules = ChannelRules { listings, stock };
    let read_back_settle = entry.read_back_settle_ms.map(Duration::from_millis);
    Ok(HttpChannel { config, adapter, route, read_back_settle })
}

/// The credential in environment variable `variable`: set and not empty.
pub(super) fn credential(
    channel: &str,
    what: &'static str,
    variable: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ChannelsError> {
    match env(variable).filter(|value| !value.is_empty()) {
        Some(value) => Ok(Secret::new(value)),
        None => {
            Err(ChannelsError::MissingCredential { channel: channel.to_owned(), what, variable: variable.to_owned() })
        }
    }
}

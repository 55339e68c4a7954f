//! Which channels items are published on: the storefront from its settings, further
//! channels from a channels file, tokens read from the environment. No token is ever logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use catalog_core::TenantId;
use catalog_publish::{ChannelConfig, Secret, StorefrontConfig};
use catalog_store::ChannelRoute;
use serde::Deserialize;

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

/// One HTTP channel: how it is drained, where it sends, which tenants it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpChannel {
    pub config: ChannelConfig,
    pub storefront: StorefrontConfig,
    pub route: ChannelRoute,
}

/// A channels file or setting that cannot be used, said plainly.
#[derive(Debug, thiserror::Error)]
pub enum ChannelsError {
    #[error("reading the channels file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("parsing the channels file {path}: {error}")]
    Parse { path: PathBuf, error: serde_json::Error },
    #[error("channel name {0:?} must be 1 or more of [a-z0-9_-]")]
    Name(String),
    #[error("channel {channel}: environment variable {variable} (its token) is not set")]
    MissingToken { channel: String, variable: String },
    #[error("channel {channel}: tenant {tenant:?} {error}")]
    Tenant { channel: String, tenant: String, error: catalog_core::IdError },
    #[error("channel {0:?} is configured twice")]
    Duplicate(String),
    #[error("channel {0}: max_attempts must be at least 1")]
    MaxAttempts(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelEntry {
    name: String,
    base_url: String,
    /// Name of the environment variable that holds the bearer token.
    token_env: Option<String>,
    requests_per_second: Option<u32>,
    concurrency: Option<usize>,
    /// Failures before an item version is dead-lettered; the worker's default when absent.
    max_attempts: Option<u32>,
    /// Only these tenants' items are published on this channel; all when absent.
    tenants: Option<Vec<String>>,
    #[serde(default = "enabled")]
    enabled: bool,
}

fn enabled() -> bool {
    true
}

/// The HTTP channels to publish to; empty means the `log` channel.
pub fn http_channels(settings: &PublishSettings) -> Result<Vec<HttpChannel>, ChannelsError> {
    let mut channels = Vec::new();
    if let Some(storefront) = &settings.storefront {
        // An HTTP channel always has a limit: at least one request per second.
        let mut config = ChannelConfig::new(STOREFRONT_CHANNEL).with_rate(storefront.requests_per_second.max(1));
        config.concurrency = storefront.concurrency.max(1);
        config.max_attempts = settings.max_attempts.max(1);
        channels.push(HttpChannel {
            config,
            storefront: StorefrontConfig::new(&storefront.base_url, storefront.token.clone()),
            route: ChannelRoute::all(STOREFRONT_CHANNEL),
        });
    }
    if let Some(path) = &settings.channels_file {
        channels.extend(read_channels_file(path, settings.max_attempts.max(1))?);
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
    Ok(channels)
}

/// The routes the store queues item changes for: the HTTP channels', or the storefront alone
/// (drained by the log) when there are none.
pub fn routes(channels: &[HttpChannel]) -> Vec<ChannelRoute> {
    if channels.is_empty() {
        return vec![ChannelRoute::all(STOREFRONT_CHANNEL)];
    }
    channels.iter().map(|channel| channel.route.clone()).collect()
}

fn read_channels_file(path: &Path, default_max_attempts: u32) -> Result<Vec<HttpChannel>, ChannelsError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| ChannelsError::Read { path: path.to_path_buf(), error })?;
    let entries: Vec<ChannelEntry> =
        serde_json::from_str(&text).map_err(|error| ChannelsError::Parse { path: path.to_path_buf(), error })?;
    let mut channels = Vec::new();
    for entry in entries.into_iter().filter(|entry| entry.enabled) {
        if entry.name.is_empty()
            || !entry.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(ChannelsError::Name(entry.name));
        }
        let token = match &entry.token_env {
            Some(variable) => Some(Secret::new(std::env::var(variable).map_err(|_| ChannelsError::MissingToken {
                channel: entry.name.clone(),
                variable: variable.clone(),
            })?)),
            None => None,
        };
        let route = match &entry.tenants {
            None => ChannelRoute::all(&entry.name),
            Some(tenants) => {
                let tenants = tenants
                    .iter()
                    .map(|tenant| {
                        TenantId::parse(tenant).map_err(|error| ChannelsError::Tenant {
                            channel: entry.name.clone(),
                            tenant: tenant.clone(),
                            error,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ChannelRoute::for_tenants(&entry.name, tenants)
            }
        };
        let mut config = ChannelConfig::new(entry.name);
        if let Some(rate) = entry.requests_per_second {
            config = config.with_rate(rate.max(1));
        }
        if let Some(concurrency) = entry.concurrency {
            config.concurrency = concurrency.max(1);
        }
        config.max_attempts = match entry.max_attempts {
            Some(0) => return Err(ChannelsError::MaxAttempts(config.name)),
            Some(max_attempts) => max_attempts,
            None => default_max_attempts,
        };
        channels.push(HttpChannel { config, storefront: StorefrontConfig::new(entry.base_url, token), route });
    }
    Ok(channels)
}

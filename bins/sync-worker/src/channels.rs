//! Publish channels from the options: the storefront and any channels file, with tokens read
//! from the environment. No token is ever logged.

use std::path::Path;

use anyhow::{bail, Context, Result};
use catalog_core::TenantId;
use catalog_publish::{ChannelConfig, Secret};
use catalog_store::ChannelRoute;
use serde::Deserialize;

use crate::config::PublishArgs;
use crate::STOREFRONT_CHANNEL;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelEntry {
    name: String,
    base_url: String,
    /// Name of the environment variable that holds the bearer token.
    token_env: Option<String>,
    requests_per_second: Option<u32>,
    concurrency: Option<usize>,
    /// Only these tenants' items are published on this channel; all when absent.
    tenants: Option<Vec<String>>,
    #[serde(default = "enabled")]
    enabled: bool,
}

fn enabled() -> bool {
    true
}

/// The HTTP channels to publish to, each with the tenants it serves; empty means the `log`
/// publisher.
pub fn http_channels(args: &PublishArgs) -> Result<Vec<(ChannelConfig, ChannelRoute)>> {
    let mut channels = Vec::new();
    if let Some(url) = &args.storefront_url {
        let mut storefront = ChannelConfig::new(STOREFRONT_CHANNEL, url, args.storefront_token.clone());
        storefront.requests_per_second = args.storefront_rate;
        storefront.concurrency = args.storefront_concurrency.max(1);
        channels.push((storefront, ChannelRoute::all(STOREFRONT_CHANNEL)));
    }
    if let Some(path) = &args.channels_file {
        channels.extend(read_channels_file(path)?);
    }
    for (channel, _) in &mut channels {
        channel.lease = std::time::Duration::from_millis(args.publish_lease_ms);
        channel.settle = std::time::Duration::from_millis(args.publish_settle_ms);
        channel.max_wait = std::time::Duration::from_millis(args.publish_max_wait_ms.max(args.publish_settle_ms));
    }
    let mut names: Vec<&str> = channels.iter().map(|(channel, _)| channel.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!("channel {:?} is configured twice", pair[0]);
    }
    Ok(channels)
}

fn read_channels_file(path: &Path) -> Result<Vec<(ChannelConfig, ChannelRoute)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading --channels-file {}", path.display()))?;
    let entries: Vec<ChannelEntry> =
        serde_json::from_str(&text).with_context(|| format!("parsing --channels-file {}", path.display()))?;
    let mut channels = Vec::new();
    for entry in entries.into_iter().filter(|entry| entry.enabled) {
        if entry.name.is_empty()
            || !entry.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            bail!("channel name {:?} must be 1 or more of [a-z0-9_-]", entry.name);
        }
        let token = match &entry.token_env {
            Some(variable) => Some(Secret::new(std::env::var(variable).with_context(|| {
                format!("channel {}: environment variable {variable} (its token) is not set", entry.name)
            })?)),
            None => None,
        };
        let route = match &entry.tenants {
            None => ChannelRoute::all(&entry.name),
            Some(tenants) => {
                let tenants = tenants
                    .iter()
                    .map(|tenant| {
                        TenantId::parse(tenant).with_context(|| format!("channel {}: tenant {tenant:?}", entry.name))
                    })
                    .collect::<Result<Vec<_>>>()?;
                ChannelRoute::for_tenants(&entry.name, tenants)
            }
        };
        let mut channel = ChannelConfig::new(entry.name, entry.base_url, token);
        if let Some(rate) = entry.requests_per_second {
            channel.requests_per_second = rate;
        }
        if let Some(concurrency) = entry.concurrency {
            channel.concurrency = concurrency.max(1);
        }
        channels.push((channel, route));
    }
    Ok(channels)
}

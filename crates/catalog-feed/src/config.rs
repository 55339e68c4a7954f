//! The feeds file, `FEEDS.toml`: one `[[feed]]` table per tenant and supplier, parsed and
//! checked at the edge into the store's `FeedSettings`. Tokens are named, never written:
//! `token_env` is the environment variable that holds one.

use std::collections::BTreeSet;
use std::path::Path;

use catalog_core::{SupplierId, TenantId};
use catalog_store::{FeedKey, FeedSettings};
use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::Deserialize;

/// Hours between incremental runs when a feed does not say.
pub const DEFAULT_SYNC_FREQUENCY_HOURS: u32 = 6;

/// Why a feeds file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FeedsFileError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("parsing the feeds file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("feed {index} ({feed}): {problem}")]
    Invalid { index: usize, feed: String, problem: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedsFile {
    #[serde(default)]
    feed: Vec<FeedEntry>,
}

/// A date as TOML writes it (`2026-05-01`) or as a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DateValue {
    Date(toml::value::Datetime),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedEntry {
    tenant: String,
    supplier: String,
    base_url: String,
    token_env: String,
    go_live_date: DateValue,
    sync_frequency_hours: Option<u32>,
    timezone: Option<String>,
    run_times: Option<Vec<String>>,
    requests_per_second: Option<u32>,
    sync_enabled: Option<bool>,
}

/// Reads and checks a feeds file.
pub fn read_feeds_file(path: &Path) -> Result<Vec<FeedSettings>, FeedsFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| FeedsFileError::Read { path: path.display().to_string(), error })?;
    parse_feeds(&text)
}

/// Parses and checks the text of a feeds file.
pub fn parse_feeds(text: &str) -> Result<Vec<FeedSettings>, FeedsFileError> {
    let file: FeedsFile = toml::from_str(text)?;
    let mut seen: BTreeSet<FeedKey> = BTreeSet::new();
    let mut feeds = Vec::with_capacity(file.feed.len());
    for (index, entry) in file.feed.into_iter().enumerate() {
        let name = format!("{}/{}", entry.tenant, entry.supplier);
        let invalid = |problem: String| FeedsFileError::Invalid { index, feed: name.clone(), problem };
        let settings = check(entry).map_err(invalid)?;
        if !seen.insert(settings.key.clone()) {
            return Err(invalid("listed twice".to_owned()));
        }
        feeds.push(settings);
    }
    Ok(feeds)
}

fn check(entry: FeedEntry) -> Result<FeedSettings, String> {
    let tenant = TenantId::parse(&entry.tenant).map_err(|error| format!("tenant: {error}"))?;
    let supplier = SupplierId::parse(&entry.supplier).map_err(|error| format!("supplier: {error}"))?;
    check_base_url(&entry.base_url)?;
    if entry.token_env.is_empty() {
        return Err("token_env names no variable".to_owned());
    }
    let date_text = match entry.go_live_date {
        DateValue::Date(date) => date.to_string(),
        DateValue::Text(text) => text,
    };
    let go_live_date = NaiveDate::parse_from_str(&date_text, "%Y-%m-%d")
        .map_err(|error| format!("go_live_date {date_text:?}: {error}"))?;
    let sync_frequency_hours = entry.sync_frequency_hours.unwrap_or(DEFAULT_SYNC_FREQUENCY_HOURS);
    if !(1..=24 * 7).contains(&sync_frequency_hours) {
        return Err(format!("sync_frequency_hours {sync_frequency_hours} is outside 1..=168"));
    }
    let timezone = entry.timezone.unwrap_or_else(|| "UTC".to_owned());
    timezone.parse::<Tz>().map_err(|_| format!("timezone {timezone:?} is not an IANA time zone"))?;
    let run_times = match entry.run_times {
        Some(texts) if texts.is_empty() => return Err("run_times is empty".to_owned()),
        Some(texts) => texts
            .iter()
            .map(|text| NaiveTime::parse_from_str(text, "%H:%M").map_err(|error| format!("run time {text:?}: {error}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => default_run_times(sync_frequency_hours),
    };
    if entry.requests_per_second == Some(0) {
        return Err("requests_per_second is 0".to_owned());
    }
    Ok(FeedSettings {
        key: FeedKey { tenant, supplier },
        base_url: entry.base_url,
        token_env: entry.token_env,
        go_live_date,
        sync_frequency_hours,
        timezone,
        run_times,
        requests_per_second: entry.requests_per_second,
        sync_enabled: entry.sync_enabled.unwrap_or(true),
    })
}

/// Whether the feed's requests can be made at `base_url`: an http(s) URL with a host, which
/// the client appends the contract's paths to, so without a query or a fragment. Only the
/// prefix was checked before, and a URL no request can carry (a port past 65535, a space in
/// the host) failed every request as a connection error, retried for ever as the supplier's.
fn check_base_url(base_url: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(base_url).map_err(|error| format!("base_url {base_url:?} is not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("base_url {base_url:?} is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("base_url {base_url:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("base_url {base_url:?} has a query or a fragment, which the feed's paths would follow"));
    }
    Ok(())
}

/// Every `frequency` hours from local midnight: 00:00, 06:00, 12:00, 18:00 for the default 6.
pub fn default_run_times(frequency_hours: u32) -> Vec<NaiveTime> {
    (0..24)
        .step_by(frequency_hours.clamp(1, 24) as usize)
        .filter_map(|hour| NaiveTime::from_hms_opt(hour, 0, 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feeds_file_takes_defaults_and_is_checked() {
        let feeds = parse_feeds(
            r#"
            [[feed]]
            tenant = "canary"
            supplier = "acme"
            base_url = "https://feeds.acme.example"
            token_env = "ACME_FEED_TOKEN"
            go_live_date = 2026-05-01

            [[feed]]
            tenant = "canary"
            supplier = "globex"
            base_url = "http://127.0.0.1:8080"
            token_env = "GLOBEX_FEED_TOKEN"
            go_live_date = "2026-05-15"
            sync_frequency_hours = 12
            timezone = "Europe/Berlin"
            requests_per_second = 5
            sync_enabled = false
            "#,
        )
        .expect("valid");
        let shown: String = feeds
            .iter()
            .map(|feed| {
                format!(
                    "{} {} every {}h at {} {} rps={:?} enabled={}\n",
                    feed.key,
                    feed.go_live_date,
                    feed.sync_frequency_hours,
                    catalog_store::render_run_times(&feed.run_times),
                    feed.timezone,
                    feed.requests_per_second,
                    feed.sync_enabled
                )
            })
            .collect();
        insta::assert_snapshot!(shown, @r"
        canary/acme 2026-05-01 every 6h at 00:00,06:00,12:00,18:00 UTC rps=None enabled=true
        canary/globex 2026-05-15 every 12h at 00:00,12:00 Europe/Berlin rps=Some(5) enabled=false
        ");
    }

    #[test]
    fn a_bad_feed_is_refused_with_its_reason() {
        let feed = |extra: &str| {
            format!(
                "[[feed]]\ntenant = \"canary\"\nsupplier = \"acme\"\nbase_url = \"https://a.example\"\ntoken_env = \"T\"\ngo_live_date = \"2026-05-01\"\n{extra}"
            )
        };
        for (text, expected) in [
            (feed("timezone = \"Mars/Olympus\""), "is not an IANA time zone"),
            (feed("run_times = [\"25:00\"]"), "run time \"25:00\""),
            (feed("sync_frequency_hours = 0"), "outside 1..=168"),
            (feed("token = \"s3cret\""), "unknown field `token`"),
            (feed("").replace("https://a.example", "ftp://a"), "is not an http(s) URL"),
            (format!("{}\n{}", feed(""), feed("")), "listed twice"),
        ] {
            let error = parse_feeds(&text).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    /// A base URL no request can be made at is refused at start, naming its feed: only its
    /// prefix was checked, and its feed's requests failed as connection errors for ever.
    #[test]
    fn a_base_url_no_request_can_be_made_at_is_refused_naming_its_feed() {
        for (base_url, expected) in [
            ("https://feeds.acme.example:99999", "is not a URL (invalid port number)"),
            ("https://feeds acme.example", "is not a URL (invalid international domain name)"),
            ("https://feeds.acme.example/?key=1", "has a query or a fragment"),
        ] {
            let text = format!(
                "[[feed]]\ntenant = \"canary\"\nsupplier = \"acme\"\nbase_url = \"{base_url}\"\ntoken_env = \"T\"\ngo_live_date = \"2026-05-01\"\n"
            );
            let error = parse_feeds(&text).expect_err("refused").to_string();
            assert!(error.starts_with("feed 0 (canary/acme): base_url") && error.contains(expected), "{error}");
        }
    }
}

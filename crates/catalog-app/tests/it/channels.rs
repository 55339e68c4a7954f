//! The channels file and the worker's publish settings: each channel's failure budget.

use std::time::Duration;

use catalog_app::channels::{
    http_channels, http_channels_with, AdapterSettings, ChannelsError, PublishSettings, StorefrontSettings,
};
use catalog_core::Listings;

fn settings(channels_file: Option<std::path::PathBuf>) -> PublishSettings {
    PublishSettings {
        storefront: Some(StorefrontSettings {
            base_url: "http://127.0.0.1:1".into(),
            token: None,
            requests_per_second: 50,
            concurrency: 16,
        }),
        channels_file,
        lease: Duration::from_secs(60),
        settle: Duration::from_millis(50),
        max_attempts: 5,
        max_wait: Duration::from_millis(250),
    }
}

#[test]
fn a_channel_spends_its_own_failure_budget_or_the_worker_s() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    std::fs::write(
        &path,
        r#"[{"name": "shopify", "base_url": "http://127.0.0.1:2", "max_attempts": 3},
            {"name": "ebay", "base_url": "http://127.0.0.1:3"}]"#,
    )
    .expect("write the channels file");
    let budgets: Vec<(String, u32)> = http_channels(&settings(Some(path)))
        .expect("channels")
        .into_iter()
        .map(|channel| (channel.config.name, channel.config.max_attempts))
        .collect();
    assert_eq!(budgets, [("storefront".to_owned(), 5), ("shopify".to_owned(), 3), ("ebay".to_owned(), 5)]);
}

#[test]
fn a_budget_of_no_attempts_is_refused() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    std::fs::write(&path, r#"[{"name": "shopify", "base_url": "http://127.0.0.1:2", "max_attempts": 0}]"#)
        .expect("write the channels file");
    let error = http_channels(&settings(Some(path))).expect_err("refused");
    assert!(matches!(&error, ChannelsError::MaxAttempts(name) if name == "shopify"), "{error:?}");
    assert_eq!(error.to_string(), "channel shopify: max_attempts must be at least 1");
}

/// Each kind of adapter from the file, with credentials from the environment (a map here),
/// rules and listings; and a storefront the short way still works.
#[test]
fn every_adapter_kind_is_read_with_its_credentials_rules_and_listings() {
    let directory = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        directory.path().join("ml.csv"),
        "sku,listing\nabc-1,MLA111\n\nXYZ-9, MLA999\nUP-1,up:MLBU1\nUP-2,up:MLBU2@9876543/MXP1\n",
    )
    .expect("write csv");
    let path = directory.path().join("channels.json");
    std::fs::write(
        &path,
        r#"[
          {"name": "shopify", "adapter": {"kind": "shopify", "base_url": "http://127.0.0.1:9/", "location_id": "gid://shopify/Location/1", "access_token_env": "SHOP_TOKEN"},
           "stock": {"buffer": 2, "cap": 100}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}},
          {"name": "amazon", "adapter": {"kind": "amazon", "seller_id": "A1", "marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret_env": "AMZ_SECRET", "refresh_token_env": "AMZ_REFRESH"},
           "stock": {"share_percent": 50, "zero_below": 3}},
          {"name": "walmart", "adapter": {"kind": "walmart", "client_id": "c", "client_secret_env": "WM_SECRET"}},
          {"name": "ebay", "adapter": {"kind": "ebay", "client_id": "c", "client_secret_env": "EBAY_SECRET", "refresh_token_env": "EBAY_REFRESH"}},
          {"name": "mercadolibre", "adapter": {"kind": "mercadolibre", "client_id": "c", "client_secret_env": "ML_SECRET", "refresh_token_env": "ML_REFRESH", "refresh_token_file": "ml.token"},
           "listings_file": "ml.csv"},
          {"name": "eu-store", "base_url": "http://127.0.0.1:8", "tenants": ["acme"]},
          {"name": "off", "base_url": "http://127.0.0.1:7", "enabled": false}
        ]"#,
    )
    .expect("write the channels file");
    let env = |name: &str| Some(format!("value of {name}"));
    let channels = http_channels_with(&settings(Some(path)), &env).expect("channels");
    let rendered: Vec<String> = channels
        .iter()
        .map(|channel| {
            let listings = match &channel.config.rules.listings {
                Listings::BySku => "by sku".to_owned(),
                Listings::Mapped(map) => {
                    map.iter().map(|(sku, listing)| format!("{sku}={listing}")).collect::<Vec<_>>().join(" ")
                }
            };
            format!(
                "{} {} {} [{}] rules {}",
                channel.config.name,
                channel.adapter.kind(),
                channel.adapter.base_url(),
                listings,
                serde_json::to_string(&channel.config.rules.stock).expect("serializes")
            )
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n"), @r#"
    storefront storefront http://127.0.0.1:1 [by sku] rules {"buffer":0}
    shopify shopify http://127.0.0.1:9 [ABC-1=gid://shopify/InventoryItem/1] rules {"buffer":2,"cap":100}
    amazon amazon https://sellingpartnerapi-na.amazon.com [by sku] rules {"buffer":0,"share_percent":50,"zero_below":3}
    walmart walmart https://marketplace.walmartapis.com [by sku] rules {"buffer":0}
    ebay ebay https://api.ebay.com [by sku] rules {"buffer":0}
    mercadolibre mercadolibre https://api.mercadolibre.com [ABC-1=MLA111 UP-1=up:MLBU1 UP-2=up:MLBU2@9876543/MXP1 XYZ-9=MLA999] rules {"buffer":0}
    eu-store storefront http://127.0.0.1:8 [by sku] rules {"buffer":0}
    "#);
    let debug = format!("{channels:?}");
    assert!(!debug.contains("value of"), "no credential reaches Debug: {debug}");
}

/// A channel's pace as its platform documents it (below one request per second, a burst),
/// and an Amazon channel of feeds at `createFeed`'s, each send a whole feed waited for.
#[test]
fn a_channel_keeps_its_usage_plan_and_a_feed_channel_amazon_s() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    let amazon = r#""kind": "amazon", "seller_id": "A1", "marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret_env": "S", "refresh_token_env": "R""#;
    std::fs::write(
        &path,
        format!(
            r#"[{{"name": "slow", "base_url": "http://127.0.0.1:2", "requests_per_second": 0.5, "burst": 2}},
                {{"name": "listings", "tenants": ["one"], "adapter": {{{amazon}}}}},
                {{"name": "feeds", "tenants": ["two"], "adapter": {{{amazon}, "feed": {{}}}}}},
                {{"name": "feeds-tuned", "tenants": ["three"], "requests_per_second": 0.0167, "adapter": {{{amazon}, "feed": {{"poll_interval_ms": 5000, "timeout_s": 600}}}}}},
                {{"name": "walmart-feeds", "adapter": {{"kind": "walmart", "client_id": "c", "client_secret_env": "S", "feed": {{}}}}}}]"#
        ),
    )
    .expect("write the channels file");
    let env = |name: &str| Some(format!("value of {name}"));
    let rendered: Vec<String> = http_channels_with(&settings(Some(path)), &env)
        .expect("channels")
        .iter()
        .map(|channel| {
            let rate = channel.config.rate.expect("an HTTP channel has a rate");
            let feed = match &channel.adapter {
                AdapterSettings::Amazon(config) => format!(", feed {:?}", config.feed),
                AdapterSettings::Walmart(config) => format!(", feed {:?}", config.feed),
                _ => String::new(),
            };
            format!(
                "{}: one every {:?}, burst {}, timeout {:?}{feed}",
                channel.config.name, rate.interval, rate.burst, channel.config.request_timeout
            )
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n"), @r"
    storefront: one every 20ms, burst 50, timeout 5s
    slow: one every 2s, burst 2, timeout 5s
    listings: one every 20ms, burst 50, timeout 5s, feed None
    feeds: one every 120.482s, burst 15, timeout 1260s, feed Some(FeedSettings { poll_interval: 30s, timeout: 1200s })
    feeds-tuned: one every 59.880239521s, burst 1, timeout 660s, feed Some(FeedSettings { poll_interval: 5s, timeout: 600s })
    walmart-feeds: one every 360s, burst 10, timeout 2460s, feed Some(FeedSettings { poll_interval: 30s, timeout: 2400s })
    ");
}

/// Everything the file can get wrong stops the start with the channel and field named.
#[test]
fn a_channels_file_that_cannot_be_used_says_where() {
    let cases = [
        r#"[{"name": "x", "adapter": {"kind": "amazn"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "ebay", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "UNSET"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "walmart", "client_id": "c", "client_secret_env": "SET", "colour": "red"}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "stock": {"share_percent": 150}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings": {"abc-1": "A", "ABC-1": "B"}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings": {"ABC-1": " "}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings_file": "missing.csv"}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings": {}, "listings_file": "a.csv"}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "adapter": {"kind": "storefront", "base_url": "http://127.0.0.1:1"}}]"#,
        r#"[{"name": "x"}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings_file": "bad.csv"}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings": {"ABC-1": "A", "ABC-2": "A"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "mercadolibre", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET", "refresh_token_file": "x.token"}, "listings": {"ABC-1": "MLA1/174997747229", "ABC-2": "MLA2/red"}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "requests_per_second": 0}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "burst": 15}]"#,
        r#"[{"name": "x", "adapter": {"kind": "amazon", "seller_id": "A1", "marketplace_id": "M", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET", "feed": {"poll_ms": 1}}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "mercadolibre", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET", "refresh_token_file": "x.token"}, "listings": {"ABC-1": "MLA1"}},
            {"name": "y", "adapter": {"kind": "mercadolibre", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET", "refresh_token_file": "y.token"}, "listings": {"ABC-1": "MLA1"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "location_id": "gid://shopify/Location/1", "access_token_env": "SET"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "location_id": "gid://shopify/Location/1", "access_token_env": "SET"}, "listings": {"ABC-1": "30322695"}}]"#,
        r#"[{"name": "x", "token_env": "SET", "adapter": {"kind": "ebay", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "walmart", "client_id": "c", "client_secret_env": "SET", "feed": {"poll_interval_ms": 0}}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "ebay", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET"}, "listings": {"ABC-1": "1"}},
            {"name": "y", "adapter": {"kind": "ebay", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "mercadolibre", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "api_version": "2025-10", "location_id": "gid://shopify/Location/1", "access_token_env": "SET"}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "api_version": "unstable", "location_id": "gid://shopify/Location/1", "access_token_env": "SET"}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}}]"#,
        // A key written twice: a map would keep the last with nothing said.
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "listings": {"ABC-1": "A", "ABC-1": "B"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "walmart", "client_id": "c", "client_id": "d", "client_secret_env": "SET"}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "stock": {"buffer": 1, "buffer": 5}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "ebay", "token_url": "api.ebay.com/identity/v1/oauth2/token", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET"}}]"#,
        r#"[{"name": "x", "base_url": "http://127.0.0.1:1", "concurrency": 0}]"#,
        // A bare location id, as the admin's URL shows it, failed every batch at Shopify.
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "location_id": "124656943", "access_token_env": "SET"}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "location_id": "gid://shopify/InventoryItem/124656943", "access_token_env": "SET"}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}}]"#,
        r#"[{"name": "x", "adapter": {"kind": "shopify", "base_url": "https://s.myshopify.com", "location_id": "gid://shopify/Location/", "access_token_env": "SET"}, "listings": {"ABC-1": "gid://shopify/InventoryItem/1"}}]"#,
    ];
    let directory = tempfile::tempdir().expect("temp dir");
    std::fs::write(directory.path().join("bad.csv"), "sku,listing\nABC-1 MLA1\n").expect("write csv");
    let env = |name: &str| (name == "SET").then(|| "secret".to_owned());
    let rendered: Vec<String> = cases
        .iter()
        .map(|text| {
            let path = directory.path().join("channels.json");
            std::fs::write(&path, text).expect("write the channels file");
            let error = http_channels_with(&settings(Some(path)), &env).expect_err("refused");
            error.to_string().replace(&directory.path().display().to_string(), "DIR")
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n"), @r#"
    channel x: adapter: unknown variant `amazn`, expected one of `storefront`, `shopify`, `amazon`, `walmart`, `ebay`, `mercadolibre`
    channel x: environment variable UNSET (its refresh token) is not set
    channel x: adapter: unknown field `colour`, expected one of `base_url`, `token_url`, `ship_node`, `client_id`, `client_secret_env`, `feed`
    channel x: stock: share_percent must be 0 to 100, not 150
    channel x: listings at "listings": sku ABC-1 is listed twice ("A" and "B")
    channel x: listings at "listings": sku ABC-1 has an empty listing id
    channel x: listings at DIR/missing.csv: reading it: No such file or directory (os error 2)
    channel x: give either "listings" or "listings_file", not both
    channel x: give either "adapter" or a storefront's "base_url", not both
    channel x: no "adapter" (or storefront "base_url") says what it speaks
    channel x: listings at DIR/bad.csv line 2: expected "sku,listing", got "ABC-1 MLA1"
    channel x: listings at "listings": listing "A" is given to two skus (ABC-1 and ABC-2)
    channel x: listings at the listing map: sku ABC-2: "MLA2/red" is not a Mercado Libre item id (MLA123456789), one with a variation id (MLA123456789/174997747229), or a user product's stock (up:MLBU206642488, or up:MLBU206642488@9876543/MXP123451 at a warehouse)
    channel x: requests_per_second must be a number above 0, not 0
    channel x: "burst" needs the "requests_per_second" it bursts above
    channel x: adapter: unknown field `poll_ms`, expected `poll_interval_ms` or `timeout_s`
    channels x and y write one seller account's listings, and Mercado Libre spends their refresh token on its first use, so each would spend the other's: give both the same refresh_token_file (decision 0056)
    channel x: listings at the channel: Shopify knows no listing by SKU: give "listings" (or "listings_file") mapping each SKU to an inventory item (gid://shopify/InventoryItem/30322695)
    channel x: listings at the listing map: sku ABC-1: "30322695" is not an inventory item (gid://shopify/InventoryItem/30322695)
    channel x: "token_env" is a storefront's: an "adapter" names its own credentials
    channel x: adapter: feed: poll_interval_ms must be above 0
    channels x and y write one seller account's listings, and one maps SKUs to listings while the other lists them by SKU: give them listings that agree (decision 0056)
    channel x: adapter: Mercado Libre needs a "refresh_token_file": it spends a refresh token on its first use and answers with the next, which only that file keeps across restarts; without it, the next start presents a spent token and the channel is held until its grant is renewed
    channel x: adapter: api_version: 2025-10 is older than 2026-01, which brought the `@idempotent` directive and `changeFromQuantity` every publish uses
    channel x: adapter: api_version: "unstable" is no stable Admin API version (YYYY-MM, a quarter's first month: 01, 04, 07 or 10)
    channel x: listings at "listings": sku ABC-1 is listed twice ("A" and "B")
    channel x: adapter: duplicate field `client_id`
    channel x: stock: duplicate field `buffer`
    channel x: token_url "api.ebay.com/identity/v1/oauth2/token" is not a URL (relative URL without a base)
    channel x: concurrency must be 1 or more: 0 would send nothing
    channel x: adapter: location_id: "124656943" is not a location's GID (gid://shopify/Location/124656943)
    channel x: adapter: location_id: "gid://shopify/InventoryItem/124656943" is not a location's GID (gid://shopify/Location/124656943)
    channel x: adapter: location_id: "gid://shopify/Location/" is not a location's GID (gid://shopify/Location/124656943)
    "#);
}

/// Two channels on one seller account are found as such however their base URL is spelled
/// (decision 0056): written with a trailing `/` or a capital, the same host. Before, the text
/// was compared, and the two wrote each other's listings and waited out none of each other's
/// 429s.
#[test]
fn channels_on_one_account_are_found_whatever_the_spelling_of_their_host() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    let amazon = |name: &str, base_url: &str| {
        format!(
            r#"{{"name": "{name}", "tenants": ["{name}"], "adapter": {{"kind": "amazon", "base_url": "{base_url}", "seller_id": "A1", "marketplace_id": "M", "client_id": "c", "client_secret_env": "SET", "refresh_token_env": "SET"}}}}"#
        )
    };
    let text = format!(
        "[{}, {}]",
        amazon("amazon-us", "https://sellingpartnerapi-na.amazon.com"),
        amazon("amazon-bulk", "https://SellingPartnerAPI-na.amazon.com:443/")
    );
    std::fs::write(&path, text).expect("write the channels file");
    let env = |name: &str| (name == "SET").then(|| "secret".to_owned());
    let channels = http_channels_with(&settings(Some(path)), &env).expect("channels");
    let shares: Vec<(&str, Vec<&str>, &str)> = channels
        .iter()
        .filter(|channel| channel.config.name != "storefront")
        .map(|channel| {
            let shares = channel.config.shares_account_with.iter().map(|other| other.name.as_str()).collect();
            (channel.config.name.as_str(), shares, channel.adapter.base_url())
        })
        .collect();
    assert_eq!(
        shares,
        [
            ("amazon-us", vec!["amazon-bulk"], "https://sellingpartnerapi-na.amazon.com"),
            ("amazon-bulk", vec!["amazon-us"], "https://sellingpartnerapi-na.amazon.com"),
        ]
    );
}

/// The README's channels file example is one the worker reads: every channel in it parses,
/// with its adapter, rules and listings, as documented.
#[test]
fn the_readme_s_channels_file_example_is_read_as_documented() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let section = readme.split("### Sales channels").nth(1).expect("the README's sales channels section");
    let example = section.split("```json").nth(1).and_then(|rest| rest.split("```").next()).expect("a JSON example");
    let directory = tempfile::tempdir().expect("temp dir");
    std::fs::write(directory.path().join("shopify-listings.csv"), "sku,listing\nABC-1,gid://shopify/InventoryItem/1\n")
        .expect("write the listings file");
    let path = directory.path().join("channels.json");
    std::fs::write(&path, example).expect("write the channels file");
    let env = |name: &str| Some(format!("value of {name}"));
    let rendered: Vec<String> = http_channels_with(&settings(Some(path)), &env)
        .expect("the README's example is a valid channels file")
        .iter()
        .map(|channel| format!("{} {}", channel.config.name, channel.adapter.kind()))
        .collect();
    assert_eq!(
        rendered,
        [
            "storefront storefront",
            "shopify shopify",
            "amazon-us amazon",
            "amazon-bulk amazon",
            "ebay ebay",
            "walmart walmart",
            "mercadolibre mercadolibre"
        ]
    );
}

#[test]
fn a_storefront_url_that_is_not_http_with_a_host_is_refused_at_start() {
    for url in ["notaurl", "ftp://storefront.example", "http://", "storefront.example:8080"] {
        let mut settings = settings(None);
        settings.storefront.as_mut().expect("a storefront").base_url = url.to_owned();
        let error = http_channels(&settings).expect_err(url).to_string();
        assert!(
            error.contains("--storefront-url") && error.contains("CATALOG_STOREFRONT_URL") && error.contains(url),
            "{url}: {error}"
        );
    }
    // The same check for a channel in the channels file, naming the channel.
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("channels.json");
    std::fs::write(&path, r#"[{"name": "eu-store", "base_url": "notaurl"}]"#).expect("write the channels file");
    let error = http_channels(&settings(Some(path))).expect_err("a bad base_url").to_string();
    assert!(error.starts_with("channel eu-store: base_url") && error.contains("notaurl"), "{error}");
    for url in ["http://127.0.0.1:1", "https://storefront.example/prefix/"] {
        let mut settings = settings(None);
        settings.storefront.as_mut().expect("a storefront").base_url = url.to_owned();
        assert_eq!(http_channels(&settings).expect(url).len(), 1);
    }
}

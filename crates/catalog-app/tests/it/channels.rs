//! The channels file and the worker's publish settings: each channel's failure budget.

use std::time::Duration;

use catalog_app::channels::{http_channels, ChannelsError, PublishSettings, StorefrontSettings};

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

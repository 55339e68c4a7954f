//! Replay against a fixture journal in an embedded store: the binary's exact output, the
//! state it leaves, and its errors, as snapshots.

use std::path::Path;
use std::process::Command;

use catalog_core::{decode, Delivery, ItemKey, Sku, SupplierId, TenantId};
use catalog_sqlite::SqliteStore;
use catalog_store::prelude::*;
use catalog_store::{BatchInput, IncomingEvent, Provenance, SourceRef, StoreConfig};

fn message(n: u64, tenant: &str, supplier: &str, sku: &str, quantity: i64) -> IncomingEvent {
    let raw = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-{n:012}","type":"inventory.updated","tenant_id":"{tenant}","supplier_id":"{supplier}","sku":"{sku}","quantity":{quantity},"updated_at":"2026-06-01T11:00:0{n}Z"}}"#
    )
    .into_bytes();
    let received_at = format!("2026-06-01T12:00:0{n}Z").parse().expect("time");
    IncomingEvent {
        delivery: Delivery { decoded: decode(&raw), received_at },
        payload_length: raw.len() as u64,
        raw,
        source: SourceRef { source: "file:fixture".into(), partition: 0, offset: n as i64 },
        traceparent: None,
        provenance: Provenance::Received,
    }
}

/// A journal with applied, held (supplier off), other-tenant and rejected events.
async fn fixture(directory: &Path) -> SqliteStore {
    let store = SqliteStore::open_path(&directory.join("catalog.db"), StoreConfig::default()).await.expect("store");
    let canary = TenantId::parse("canary").expect("valid");
    store.set_supplier_sync(&canary, &SupplierId::parse("globex").expect("valid"), false).await.expect("flag");
    let events = vec![
        message(1, "canary", "acme", "ABC-1", 10),
        message(2, "canary", "globex", "ABC-1", 5),
        message(3, "canary", "globex", "XYZ-2", 7),
        message(4, "wide", "acme", "ABC-1", 1),
        message(5, "canary", "acme", "BAD SKU", 1),
    ];
    store.apply_batch(&BatchInput::new(events, vec![])).await.expect("apply");
    store
}

fn replay(directory: &Path, arguments: &[&str]) -> String {
    let database = format!("sqlite://{}", directory.join("catalog.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(arguments)
        .args(["--database-url", &database])
        // Errors are compared as text: no backtraces, whatever the environment says.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run replay");
    format!(
        "exit: {}\nstdout:\n{}stderr:\n{}",
        output.status.code().map_or("signal".to_owned(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `output` with the time a window left open ends, which is the replay's start, as `NOW`.
fn without_now(output: &str) -> String {
    const BEFORE: &str = "is not before ";
    match output.split_once(BEFORE).and_then(|(head, tail)| Some((head, tail.split_once(", where a window")?))) {
        Some((head, (_now, tail))) => format!("{head}{BEFORE}NOW, where a window{tail}"),
        None => output.to_owned(),
    }
}

async fn quantity(store: &SqliteStore, sku: &str) -> Option<i64> {
    let key = ItemKey { tenant: TenantId::parse("canary").expect("valid"), sku: Sku::parse(sku).expect("valid") };
    store.item(key.item_id()).await.expect("item").map(|item| item.quantity())
}

const WINDOW: [&str; 4] = ["--tenant", "canary", "--since", "2026-06-01T00:00:00Z"];

#[tokio::test]
async fn held_events_are_applied_once_the_flag_is_on_and_a_second_run_changes_nothing() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    assert_eq!(quantity(&store, "ABC-1").await, Some(10));
    let canary = TenantId::parse("canary").expect("valid");
    store.set_supplier_sync(&canary, &SupplierId::parse("globex").expect("valid"), true).await.expect("flag");

    let first = replay(directory.path(), &WINDOW);
    insta::assert_snapshot!(first, @"
    exit: 0
    stdout:
    9f52ba6c-efde-599e-a237-2a0d77b4925d
    36e20b17-5e18-573a-bbdf-137bfab1b131
    stderr:
    replay: tenant=canary journaled=4 replayed=3 applied=2 duplicate=1 items_touched=2 items_changed=2 republished=2
    ");
    assert_eq!((quantity(&store, "ABC-1").await, quantity(&store, "XYZ-2").await), (Some(15), Some(7)));

    let second = replay(directory.path(), &WINDOW);
    insta::assert_snapshot!(second, @"
    exit: 0
    stdout:
    9f52ba6c-efde-599e-a237-2a0d77b4925d
    36e20b17-5e18-573a-bbdf-137bfab1b131
    stderr:
    replay: tenant=canary journaled=4 replayed=3 duplicate=3 items_touched=2 items_changed=0 republished=2
    ");
    assert_eq!(first.split("stderr:").next(), second.split("stderr:").next(), "the same ids, in the same order");
    assert_eq!((quantity(&store, "ABC-1").await, quantity(&store, "XYZ-2").await), (Some(15), Some(7)));
}

#[tokio::test]
async fn the_supplier_filter_keeps_one_supplier() {
    let directory = tempfile::tempdir().expect("temp dir");
    let _store = fixture(directory.path()).await;
    insta::assert_snapshot!(replay(directory.path(), &[&WINDOW[..], &["--supplier", "acme"]].concat()), @"
    exit: 0
    stdout:
    9f52ba6c-efde-599e-a237-2a0d77b4925d
    stderr:
    replay: tenant=canary journaled=1 replayed=1 duplicate=1 items_touched=1 items_changed=0 republished=1
    ");
}

#[tokio::test]
async fn a_dry_run_prints_what_would_change_and_writes_nothing() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    let canary = TenantId::parse("canary").expect("valid");
    store.set_supplier_sync(&canary, &SupplierId::parse("globex").expect("valid"), true).await.expect("flag");
    let depth_before = store.outbox_depth().await.expect("depth");
    insta::assert_snapshot!(replay(directory.path(), &[&WINDOW[..], &["--dry-run"]].concat()), @"
    exit: 0
    stdout:
    9f52ba6c-efde-599e-a237-2a0d77b4925d
    36e20b17-5e18-573a-bbdf-137bfab1b131
    stderr:
    would change ABC-1: 10 -> 15
    would change XYZ-2: 0 -> 7
    replay (dry run): tenant=canary journaled=4 replayed=3 applied=2 duplicate=1 items_touched=2 items_changed=2 republished=0
    ");
    assert_eq!((quantity(&store, "ABC-1").await, quantity(&store, "XYZ-2").await), (Some(10), None));
    assert_eq!(store.outbox_depth().await.expect("depth"), depth_before, "no publish queued");
}

/// A dry run holds its window whole: one longer than `--max-dry-run-events` is refused with
/// what to do instead, and nothing is written.
#[tokio::test]
async fn a_dry_run_over_its_limit_is_refused_and_writes_nothing() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    let canary = TenantId::parse("canary").expect("valid");
    store.set_supplier_sync(&canary, &SupplierId::parse("globex").expect("valid"), true).await.expect("flag");
    let arguments = [&WINDOW[..], &["--dry-run", "--max-dry-run-events", "3"]].concat();
    insta::assert_snapshot!(replay(directory.path(), &arguments), @"
    exit: 1
    stdout:
    stderr:
    Error: a dry run previews at most 3 journaled events, and this window holds more (read through 2026-06-01T12:00:05+00:00): narrow it with --until or --supplier, raise --max-dry-run-events, or replay without --dry-run, which reads any window a page at a time
    ");
    assert_eq!((quantity(&store, "ABC-1").await, quantity(&store, "XYZ-2").await), (Some(10), None));
    let arguments = [&WINDOW[..], &["--dry-run", "--max-dry-run-events", "4"]].concat();
    assert!(replay(directory.path(), &arguments).starts_with("exit: 0\n"), "four rows are within a limit of four");
}

/// A window left open ends when the replay starts: an event journaled as received later (a
/// worker whose clock runs ahead) is the worker's to decide, not the replay's to chase.
#[tokio::test]
async fn an_open_window_ends_when_the_replay_starts() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    let mut later = message(6, "canary", "acme", "LATE-1", 3);
    later.delivery.received_at = chrono::Utc::now() + chrono::Duration::hours(1);
    store.apply_batch(&BatchInput::new(vec![later], vec![])).await.expect("apply");
    let output = replay(directory.path(), &WINDOW);
    assert!(output.contains("journaled=4 "), "{output}");
    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let output = replay(directory.path(), &[&WINDOW[..], &["--until", &until]].concat());
    assert!(output.contains("journaled=5 "), "{output}");
}

#[tokio::test]
async fn an_empty_window_exits_zero_with_no_output() {
    let directory = tempfile::tempdir().expect("temp dir");
    let _store = fixture(directory.path()).await;
    let arguments = ["--tenant", "canary", "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"];
    insta::assert_snapshot!(replay(directory.path(), &arguments), @"
    exit: 0
    stdout:
    stderr:
    replay: tenant=canary journaled=0 replayed=0 items_touched=0 items_changed=0 republished=0
    ");
}

#[tokio::test]
async fn errors_are_clear_and_exit_non_zero() {
    let directory = tempfile::tempdir().expect("temp dir");
    let _store = fixture(directory.path()).await;
    let cases: [&[&str]; 6] = [
        &["--tenant", "nobody", "--since", "2026-06-01T00:00:00Z"],
        &["--tenant", "canary", "--supplier", "acem", "--since", "2026-06-01T00:00:00Z"],
        &["--tenant", "canary", "--since", "2999-01-01T00:00:00Z"],
        &["--tenant", "canary", "--since", "2026-06-02T00:00:00Z", "--until", "2026-06-01T00:00:00Z"],
        &["--tenant", "canary", "--since", "yesterday"],
        &["--tenant", "Canary", "--since", "2026-06-01T00:00:00Z"],
    ];
    let rendered: Vec<String> =
        cases.iter().map(|arguments| without_now(&replay(directory.path(), arguments))).collect();
    insta::assert_snapshot!(rendered.join("\n---\n"), @r#"
    exit: 1
    stdout:
    stderr:
    Error: unknown tenant "nobody": no event of it was ever applied, and none is journaled in the window

    ---
    exit: 1
    stdout:
    stderr:
    Error: unknown supplier "acem" of tenant "canary": no event of it was ever applied for the tenant, and none is journaled in the window

    ---
    exit: 1
    stdout:
    stderr:
    Error: --since 2999-01-01T00:00:00+00:00 is not before NOW, where a window without --until ends (the replay's start): nothing can be in it; is it a local time written with Z?

    ---
    exit: 1
    stdout:
    stderr:
    Error: --since 2026-06-02T00:00:00+00:00 is not before --until 2026-06-01T00:00:00+00:00

    ---
    exit: 2
    stdout:
    stderr:
    error: invalid value 'yesterday' for '--since <SINCE>': "yesterday" is not an RFC 3339 time (e.g. 2026-06-01T12:00:00Z): premature end of input

    For more information, try '--help'.

    ---
    exit: 2
    stdout:
    stderr:
    error: invalid value 'Canary' for '--tenant <TENANT>': tenant "Canary" contains 'C', outside the allowed characters [a-z0-9_-]

    For more information, try '--help'.
    "#);
    let unreachable = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(WINDOW)
        .args(["--database-url", "postgres://postgres@127.0.0.1:1/none"])
        .output()
        .expect("run replay");
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("opening the PostgreSQL store"));
}

#[tokio::test]
async fn a_window_reaching_past_the_retention_is_refused_and_its_held_events_still_replay() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    let cutoff = "2026-06-02T00:00:00Z".parse().expect("time");
    let policy = catalog_store::RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 2 };
    store
        .expire_journal(&policy, &mut catalog_testkit::DiscardArchive("/archive/events_20260601.ndjson.gz".into()))
        .await
        .expect("retention");
    insta::assert_snapshot!(replay(directory.path(), &WINDOW), @"
    exit: 1
    stdout:
    stderr:
    Error: --since 2026-06-01T00:00:00+00:00 reaches past the journal's retention: it keeps events received since 2026-06-02T00:00:00+00:00 (older ones were archived, the last to /archive/events_20260601.ndjson.gz); replay from 2026-06-02T00:00:00+00:00 or later, or with --held-only for the held events retention keeps past it
    ");

    // The held events of that day were kept: once their supplier is on, they are decided.
    let canary = TenantId::parse("canary").expect("valid");
    store.set_supplier_sync(&canary, &SupplierId::parse("globex").expect("valid"), true).await.expect("flag");
    let mut arguments = WINDOW.to_vec();
    arguments.push("--held-only");
    insta::assert_snapshot!(replay(directory.path(), &arguments), @"
    exit: 0
    stdout:
    9f52ba6c-efde-599e-a237-2a0d77b4925d
    36e20b17-5e18-573a-bbdf-137bfab1b131
    stderr:
    replay: tenant=canary journaled=2 replayed=2 applied=2 items_touched=2 items_changed=2 republished=2
    ");
    assert_eq!((quantity(&store, "ABC-1").await, quantity(&store, "XYZ-2").await), (Some(15), Some(7)));
}

#[tokio::test]
async fn replayed_items_are_queued_for_every_channel_of_the_worker_s_channels_file() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    let canary = TenantId::parse("canary").expect("valid");
    store.set_supplier_sync(&canary, &SupplierId::parse("globex").expect("valid"), true).await.expect("flag");
    let channels = directory.path().join("channels.json");
    std::fs::write(
        &channels,
        r#"[{"name": "shop-eu", "base_url": "http://127.0.0.1:1", "token_env": "SHOP_EU_TOKEN"},
            {"name": "shop-wide", "base_url": "http://127.0.0.1:1", "tenants": ["wide"]}]"#,
    )
    .expect("channels file");
    let mut arguments = WINDOW.to_vec();
    let channels = channels.display().to_string();
    arguments.extend(["--channels-file", &channels]);
    let output = replay(directory.path(), &arguments);
    assert!(output.starts_with("exit: 0"), "no credential is needed to queue: {output}");
    let depth: Vec<(String, u64)> =
        store.outbox_depth().await.expect("depth").into_iter().map(|depth| (depth.channel, depth.pending)).collect();
    // The fixture's first batch queued on the storefront; the replay on the channels the
    // worker publishes the tenant to, and on no other.
    assert_eq!(depth, [("shop-eu".to_owned(), 2), ("storefront".to_owned(), 2)]);

    let broken = directory.path().join("broken.json");
    std::fs::write(&broken, r#"[{"name": "Shop EU", "base_url": "http://127.0.0.1:1"}]"#).expect("file");
    let mut arguments = WINDOW.to_vec();
    let broken = broken.display().to_string();
    arguments.extend(["--channels-file", &broken]);
    let output = replay(directory.path(), &arguments);
    assert!(output.starts_with("exit: 1") && output.contains("Shop EU"), "a bad channels file is refused: {output}");
}

/// A tenant whose every event was rejected (by a rule since fixed: here a rejection the rules
/// of today would not make) has no tenant row, but its journal is in the window: the replay
/// decides its events again instead of refusing it as unknown.
#[tokio::test]
async fn a_tenant_journaled_only_as_rejections_is_replayed() {
    let directory = tempfile::tempdir().expect("temp dir");
    let store = fixture(directory.path()).await;
    let mut rejected = message(6, "newco", "acme", "NEW-1", 4);
    // Journaled as the rejection of its twin with a quantity below zero, as sent.
    rejected.delivery.decoded = message(6, "newco", "acme", "NEW-1", -1).delivery.decoded;
    assert!(rejected.delivery.decoded.is_err());
    store.apply_batch(&BatchInput::new(vec![rejected], vec![])).await.expect("apply");
    let output = replay(directory.path(), &["--tenant", "newco", "--since", "2026-06-01T00:00:00Z"]);
    assert!(output.starts_with("exit: 0\n"), "{output}");
    let key = ItemKey { tenant: TenantId::parse("newco").expect("valid"), sku: Sku::parse("NEW-1").expect("valid") };
    assert_eq!(store.item(key.item_id()).await.expect("item").map(|item| item.quantity()), Some(4), "{output}");
}

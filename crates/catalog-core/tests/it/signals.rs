//! The launch signals as scenarios: facts in, the four signals out as text.

use catalog_core::{
    is_stale, judge, ItemKey, PartitionProgress, SignalFacts, SignalSettings, Signals, Sku, TenantId, TraceGap,
    UntracedItem, MAX_NAMED_ITEMS,
};
use chrono::{DateTime, Duration, Utc};

use crate::scenario::time;

fn now() -> DateTime<Utc> {
    time("12:00:00")
}

fn render(signals: &Signals) -> String {
    let mut out = String::new();
    for signal in signals.each() {
        out.push_str(&format!(
            "{} {} {} (target {} {}, owner {}): {}\n",
            signal.name,
            signal.status.as_str(),
            signal.value,
            signal.target,
            signal.unit,
            signal.owner,
            signal.detail
        ));
    }
    out.push_str(&format!("green: {}\n", signals.green));
    for item in &signals.untraced {
        out.push_str(&format!("untraced {}/{} {:?}\n", item.tenant_id, item.sku, item.gap));
    }
    out
}

fn partition(name: &str, reported_at: &str, oldest_unapplied_at: Option<&str>) -> PartitionProgress {
    PartitionProgress {
        source: "kafka:supplier-events".to_owned(),
        partition: name.to_owned(),
        reported_at: time(reported_at),
        oldest_unapplied_at: oldest_unapplied_at.map(time),
    }
}

fn untraced(sku: &str, gap: TraceGap) -> UntracedItem {
    let tenant_id = TenantId::parse("canary").expect("valid tenant");
    let sku = Sku::parse(sku).expect("valid sku");
    let item_id = ItemKey { tenant: tenant_id.clone(), sku: sku.clone() }.item_id();
    UntracedItem { item_id, tenant_id, sku, gap }
}

fn healthy() -> SignalFacts {
    SignalFacts {
        items: 1_000,
        stale_items: 9,
        partitions: vec![partition("0", "11:59:58", Some("11:59:00")), partition("1", "11:59:59", None)],
        publish_attempts: 1_000,
        publish_failures: 4,
        items_due_for_trace: 1_000,
        untraced_items: 0,
        untraced: Vec::new(),
    }
}

fn check(facts: &SignalFacts) -> String {
    render(&judge(None, facts, &SignalSettings::default(), now()))
}

#[test]
fn just_under_every_target_is_green() {
    insta::assert_snapshot!(check(&healthy()), @"
    stale_items green 0.009 (target < 0.01 ratio, owner storefront-integration): 9 of 1000 items
    queue_lag green 60 (target < 90 seconds, owner catalog-sync-oncall): kafka:supplier-events partition 0
    publish_errors green 0.004 (target < 0.005 ratio, owner storefront-integration): 4 of 1000 attempts
    trace_coverage green 1 (target >= 1 ratio, owner catalog-support): 1000 of 1000 items
    green: true
    ");
}

#[test]
fn at_a_target_is_red() {
    let facts = SignalFacts {
        stale_items: 10,
        partitions: vec![partition("0", "11:59:58", Some("11:58:30"))],
        publish_failures: 5,
        ..healthy()
    };
    insta::assert_snapshot!(check(&facts), @"
    stale_items red 0.01 (target < 0.01 ratio, owner storefront-integration): 10 of 1000 items
    queue_lag red 90 (target < 90 seconds, owner catalog-sync-oncall): kafka:supplier-events partition 0
    publish_errors red 0.005 (target < 0.005 ratio, owner storefront-integration): 5 of 1000 attempts
    trace_coverage green 1 (target >= 1 ratio, owner catalog-support): 1000 of 1000 items
    green: false
    ");
}

#[test]
fn a_stalled_worker_turns_lag_red_though_it_last_reported_nothing_waiting() {
    // Partition 1 reported "caught up" two minutes ago and has said nothing since.
    let facts = SignalFacts {
        partitions: vec![partition("0", "11:59:58", None), partition("1", "11:58:00", None)],
        ..healthy()
    };
    insta::assert_snapshot!(check(&facts), @"
    stale_items green 0.009 (target < 0.01 ratio, owner storefront-integration): 9 of 1000 items
    queue_lag red 120 (target < 90 seconds, owner catalog-sync-oncall): kafka:supplier-events partition 1
    publish_errors green 0.004 (target < 0.005 ratio, owner storefront-integration): 4 of 1000 attempts
    trace_coverage green 1 (target >= 1 ratio, owner catalog-support): 1000 of 1000 items
    green: false
    ");
}

#[test]
fn lag_keeps_growing_while_a_worker_is_stuck_on_a_message() {
    let stuck = partition("0", "11:59:59", Some("11:50:00"));
    let settings = SignalSettings::default();
    assert_eq!(stuck.lag(now(), settings.stall_after), Duration::minutes(10));
    assert_eq!(stuck.lag(now() + Duration::minutes(5), settings.stall_after), Duration::minutes(15));
}

#[test]
fn a_missing_journal_row_lowers_trace_coverage_and_names_the_item() {
    let facts = SignalFacts {
        untraced: vec![
            untraced(
                "ABC-1",
                TraceGap::WinnerNotJournaled {
                    supplier: catalog_core::SupplierId::parse("acme").expect("valid supplier"),
                    event_id: catalog_core::EventId(uuid::Uuid::from_u128(7)),
                },
            ),
            untraced("XYZ-9", TraceGap::QuantityDiffers { stored: 12, rederived: 10 }),
        ],
        ..healthy()
    };
    insta::assert_snapshot!(check(&facts), @r#"
    stale_items green 0.009 (target < 0.01 ratio, owner storefront-integration): 9 of 1000 items
    queue_lag green 60 (target < 90 seconds, owner catalog-sync-oncall): kafka:supplier-events partition 0
    publish_errors green 0.004 (target < 0.005 ratio, owner storefront-integration): 4 of 1000 attempts
    trace_coverage red 0.998 (target >= 1 ratio, owner catalog-support): 998 of 1000 items
    green: false
    untraced canary/ABC-1 WinnerNotJournaled { supplier: SupplierId("acme"), event_id: EventId(00000000-0000-0000-0000-000000000007) }
    untraced canary/XYZ-9 QuantityDiffers { stored: 12, rederived: 10 }
    "#);
}

#[test]
fn an_empty_tenant_is_green_and_says_why() {
    insta::assert_snapshot!(check(&SignalFacts::default()), @"
    stale_items green 0 (target < 0.01 ratio, owner storefront-integration): 0 of 0 items
    queue_lag green 0 (target < 90 seconds, owner catalog-sync-oncall): no partition reported
    publish_errors green 0 (target < 0.005 ratio, owner storefront-integration): 0 of 0 attempts
    trace_coverage green 1 (target >= 1 ratio, owner catalog-support): 0 of 0 items
    green: true
    ");
}

#[test]
fn many_untraced_items_are_counted_whole_and_the_first_are_named() {
    let facts = SignalFacts {
        untraced: (0..MAX_NAMED_ITEMS + 20).map(|n| untraced(&format!("SKU-{n}"), TraceGap::NotChecked)).collect(),
        ..healthy()
    };
    let signals = judge(None, &facts, &SignalSettings::default(), now());
    assert_eq!(signals.untraced_count, (MAX_NAMED_ITEMS + 20) as u64);
    assert_eq!(signals.untraced.len(), MAX_NAMED_ITEMS);
    assert_eq!(signals.trace_coverage.detail, "930 of 1000 items");
}

#[test]
fn a_store_that_names_only_the_first_untraced_items_still_counts_them_all() {
    let facts = SignalFacts {
        untraced_items: 400,
        untraced: (0..MAX_NAMED_ITEMS).map(|n| untraced(&format!("SKU-{n}"), TraceGap::NotChecked)).collect(),
        ..healthy()
    };
    let signals = judge(None, &facts, &SignalSettings::default(), now());
    assert_eq!(signals.untraced_count, 400);
    assert_eq!(signals.untraced.len(), MAX_NAMED_ITEMS);
    assert_eq!(signals.trace_coverage.detail, "600 of 1000 items");
}

#[test]
fn the_json_names_the_four_signals_with_value_target_owner_and_status() {
    let signals =
        judge(Some(TenantId::parse("canary").expect("valid tenant")), &healthy(), &SignalSettings::default(), now());
    let json = serde_json::to_value(&signals).expect("signals serialize");
    assert_eq!(json["tenant_id"], "canary");
    assert_eq!(json["queue_lag"]["value"], 60.0);
    assert_eq!(json["queue_lag"]["target"], "< 90");
    assert_eq!(json["queue_lag"]["owner"], "catalog-sync-oncall");
    assert_eq!(json["queue_lag"]["status"], "green");
    for name in ["stale_items", "queue_lag", "publish_errors", "trace_coverage"] {
        assert_eq!(json[name]["name"], name);
    }
}

#[test]
fn staleness_waits_out_the_grace_and_needs_every_channel() {
    let grace = Duration::seconds(60);
    let changed = time("11:58:00");
    // Accepted everywhere: never stale.
    assert!(!is_stale(3, changed, &[Some(3), Some(4)], now(), grace));
    // One channel behind, past the grace: stale.
    assert!(is_stale(3, changed, &[Some(3), Some(2)], now(), grace));
    // One channel never accepted anything: stale.
    assert!(is_stale(3, changed, &[Some(3), None], now(), grace));
    // Within the grace: not yet.
    assert!(!is_stale(3, time("11:59:30"), &[None], now(), grace));
    // Version 0 never had anything to publish.
    assert!(!is_stale(0, changed, &[None], now(), grace));
}

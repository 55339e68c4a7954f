//! A small text format for decision scenarios, so each contract case reads as data.
//!
//! One line per delivery: `RECEIVED_AT JSON`, where the JSON overrides a default
//! `inventory.updated` of `canary/acme/ABC-1`; `"event_id": N` stands for the UUID ending
//! in N, and times written `HH:MM:SS` are on 2026-06-01 UTC. `RECEIVED_AT raw TEXT` delivers
//! TEXT byte for byte. `---` ends a batch; `off tenant T` / `off supplier T/S` switch sync off
//! and `on ...` back on, between batches.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use catalog_core::{decode, ClockPolicy, Delivery, HeldReason, ReferenceCatalog, SupplierId, SyncFlags, TenantId};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

pub(crate) fn time(text: &str) -> DateTime<Utc> {
    let full = if text.contains('T') { text.to_owned() } else { format!("2026-06-01T{text}Z") };
    full.parse().unwrap_or_else(|error| panic!("bad time {text:?}: {error}"))
}

pub(crate) fn event_uuid(n: u64) -> String {
    format!("00000000-0000-0000-0000-{n:012}")
}

/// Expands a line's JSON overrides onto the default event.
pub(crate) fn message(overrides: &str) -> String {
    let overrides: Map<String, Value> =
        serde_json::from_str(overrides).unwrap_or_else(|error| panic!("bad overrides {overrides:?}: {error}"));
    let mut event = json!({
        "event_id": event_uuid(1),
        "type": "inventory.updated",
        "tenant_id": "canary",
        "supplier_id": "acme",
        "sku": "ABC-1",
        "quantity": 1,
        "updated_at": "2026-06-01T12:00:00Z",
    });
    let fields = event.as_object_mut().expect("the default is an object");
    for (name, value) in overrides {
        let value = match (name.as_str(), value) {
            ("event_id", Value::Number(n)) if n.is_u64() => {
                Value::String(event_uuid(n.as_u64().expect("checked above")))
            }
            ("updated_at", Value::String(text)) if text.len() == 8 && text.as_bytes()[2] == b':' => {
                Value::String(format!("2026-06-01T{text}Z"))
            }
            (_, value) => value,
        };
        if value.is_null() {
            fields.remove(&name);
        } else {
            fields.insert(name, value);
        }
    }
    event.to_string()
}

#[derive(Default)]
struct Flags {
    tenants_off: BTreeSet<String>,
    suppliers_off: BTreeSet<String>,
}

impl SyncFlags for Flags {
    fn check(&self, tenant: &TenantId, supplier: &SupplierId) -> Result<(), HeldReason> {
        if self.tenants_off.contains(tenant.as_str()) {
            return Err(HeldReason::TenantSyncOff);
        }
        if self.suppliers_off.contains(&format!("{tenant}/{supplier}")) {
            return Err(HeldReason::SupplierSyncOff);
        }
        Ok(())
    }
}

/// Runs a scenario through the reference catalog and renders every decision and the end state.
pub(crate) fn run(script: &str) -> String {
    let mut catalog = ReferenceCatalog::default();
    let mut flags = Flags::default();
    let mut out = String::new();
    let mut batch: Vec<Delivery> = Vec::new();
    let mut n_delivery = 0;
    let mut flush = |batch: &mut Vec<Delivery>, catalog: &mut ReferenceCatalog, flags: &Flags, out: &mut String| {
        if batch.is_empty() {
            return;
        }
        let plan = catalog.apply(batch, flags, ClockPolicy::default());
        for (delivery, decision) in batch.iter().zip(&plan.decisions) {
            n_delivery += 1;
            let (event_id, detail) = match &delivery.decoded {
                Ok(event) => (Some(event.event_id()), None),
                Err(rejection) => (rejection.event_id, Some(rejection.detail.clone())),
            };
            let who = event_id.map_or("e?".to_owned(), |event_id| format!("e{}", event_id.0.as_u128()));
            let mut notes = Vec::new();
            notes.extend(decision.reason().map(str::to_owned));
            notes.extend(detail);
            if let Some(effective) = decision.effective.filter(|effective| effective.clock_drift_clamped) {
                notes.push(format!("effective_at={}", effective.key.effective_at.format("%H:%M:%S")));
            }
            let notes = if notes.is_empty() { String::new() } else { format!(" [{}]", notes.join(", ")) };
            writeln!(out, "#{n_delivery} {who} -> {}{notes}", decision.outcome.as_str()).expect("write to string");
        }
        for (key, change) in &plan.items {
            writeln!(
                out,
                "  item {key} quantity {} -> {} version {}",
                change.previous.quantity, change.state.quantity, change.state.version
            )
            .expect("write to string");
        }
        batch.clear();
    };
    for line in script.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if line == "---" {
            flush(&mut batch, &mut catalog, &flags, &mut out);
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "off" | "on" => {
                flush(&mut batch, &mut catalog, &flags, &mut out);
                let (scope, name) = rest.split_once(' ').expect("off|on tenant|supplier NAME");
                let set = if scope == "tenant" { &mut flags.tenants_off } else { &mut flags.suppliers_off };
                if word == "off" {
                    set.insert(name.to_owned());
                } else {
                    set.remove(name);
                }
                writeln!(out, "sync {word} for {scope} {name}").expect("write to string");
            }
            received => {
                let received_at = time(received);
                let bytes = match rest.strip_prefix("raw ") {
                    Some(raw) => raw.to_owned(),
                    None => message(rest),
                };
                batch.push(Delivery { decoded: decode(bytes.as_bytes()), received_at });
            }
        }
    }
    flush(&mut batch, &mut catalog, &flags, &mut out);
    writeln!(out, "final:").expect("write to string");
    for (key, offer) in catalog.offers() {
        let winner = offer.winner().map_or("none".to_owned(), |winner| format!("e{}", winner.event_id.0.as_u128()));
        writeln!(out, "  offer {key} quantity {} winner {winner}", offer.quantity()).expect("write to string");
    }
    for (key, item) in catalog.items() {
        writeln!(out, "  item {key} quantity {} version {}", item.quantity, item.version).expect("write to string");
    }
    out
}

/// `check!(script, @"expected")`: runs a scenario and compares its rendering inline.
macro_rules! check {
    ($script:expr, @$expected:literal) => {
        insta::assert_snapshot!($crate::scenario::run($script), @$expected)
    };
}
pub(crate) use check;

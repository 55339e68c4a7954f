//! The cells of one change in the support page's tables: an event as the journal holds it,
//! or a change the offer counts whose journal row retention dropped.

use maud::{html, Markup};

use super::when;
use crate::trace::{CountedChange, EventView};

/// Why an event was decided as it was: its reason and a rejection's detail, and for a
/// rejected message the bytes the journal kept of it, folded away until asked for.
pub(super) fn reason_and_message(event: &EventView) -> Markup {
    html! {
        (event.reason.clone().unwrap_or_default()) " " (event.detail.clone().unwrap_or_default())
        @if let (Some(raw), Some(length)) = (&event.raw_payload, event.raw_payload_length) {
            details {
                summary {
                    "The message: " (length) " bytes"
                    @if length > catalog_store::RAW_PAYLOAD_PREFIX_BYTES as u64 { ", first " (catalog_store::RAW_PAYLOAD_PREFIX_BYTES) " shown" }
                }
                pre.raw { (raw) }
            }
        }
    }
}

/// An event's cells in the offer and timeline tables: id, type, quantity or delta, effective
/// time, sequence.
pub(super) fn event_cells(event: &EventView) -> Markup {
    html! {
        td { code { (event.event_id.map(|id| id.to_string()).unwrap_or_default()) } }
        td { (event.event_type.unwrap_or("-")) }
        td { (change_text(event.quantity, event.delta)) }
        td { @if let Some(at) = event.effective_at { (when(at)) } @if event.clock_drift_clamped { " (clock clamped)" } }
        td { (event.sequence.map(|s| s.to_string()).unwrap_or_default()) }
    }
}

/// A snapshot's quantity, or an adjustment's signed delta.
fn change_text(quantity: Option<i64>, delta: Option<i64>) -> String {
    quantity.map_or_else(|| delta.map_or_else(String::new, |d| format!("{d:+}")), |q| q.to_string())
}

/// A change the offer counts whose journal row retention dropped: what the offer keeps of it.
pub(super) fn counted_cells(change: &CountedChange) -> Markup {
    html! {
        td { code { (change.event_id) } br; small { "journal row archived by retention" } }
        td { (if change.quantity.is_some() { "inventory.updated" } else { "inventory.adjusted" }) }
        td { (change_text(change.quantity, change.delta)) }
        td { (when(change.effective_at)) }
        td { (change.sequence) }
    }
}

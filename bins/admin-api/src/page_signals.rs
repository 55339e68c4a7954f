//! The signals section of the support page at `/signals`: each signal's value now against
//! its target, green or red, with its history drawn as a server-rendered SVG line chart (no
//! script), per tenant and overall, and the tenant's gate: stage, steps, the sample to sign.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use catalog_core::{Rollout, SignalName, Signals, Status, TenantId};
use catalog_store::SignalSample;
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use crate::api::gate::{gate_view, GateView};
use crate::api::signals::{judge_now, read_history, tenant_signals_view};
use crate::error::ApiError;
use crate::page::{layout, sign_in_form, signed_in};
use crate::AppState;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 120.0;
const MARGIN: f64 = 4.0;

#[derive(Debug, Default, Deserialize)]
pub struct SignalsQuery {
    pub tenant: Option<String>,
    /// Hours of history drawn; 24 by default.
    pub hours: Option<i64>,
}

/// Samples a chart reads at most, the newest: a day of 34 workers' samples at the default
/// 60 s interval (every worker samples every tenant), about 10 MB read. A longer window, or more
/// workers, is read from its newest sample back, and the chart says from when.
pub const MAX_CHART_SAMPLES: usize = 50_000;

/// Points a chart draws at most: one per slice of its window, about two pixels wide.
const SLICES: i64 = 300;

/// The samples a chart reads: since its window's start, oldest first, and whether older
/// ones since then were left out (the newest [`MAX_CHART_SAMPLES`] read).
#[derive(Debug, Clone, Copy)]
pub struct ChartHistory<'h> {
    pub samples: &'h [SignalSample],
    pub older_left_out: bool,
}

/// The value of `name` in a sample.
fn sampled(sample: &SignalSample, name: SignalName) -> (f64, bool) {
    let value = match name {
        SignalName::StaleItems => sample.stale_items,
        SignalName::QueueLag => sample.queue_lag,
        SignalName::PublishErrors => sample.publish_errors,
        SignalName::TraceCoverage => sample.trace_coverage,
    };
    (value.value, value.green)
}

/// What a chart draws of one slice of its window: the last sample when all of the slice's
/// were green; else its red sample farthest from the target, with how many were red and
/// from when to when. A window holds thousands of samples, so each is not drawn, but no red
/// one goes uncounted or undrawn.
#[derive(Debug, Clone, PartialEq)]
struct Slice {
    index: i64,
    at: DateTime<Utc>,
    value: f64,
    reds: usize,
    first_red_at: Option<DateTime<Utc>>,
    last_red_at: Option<DateTime<Utc>>,
}

impl Slice {
    fn of(index: i64, at: DateTime<Utc>, value: f64) -> Self {
        Self { index, at, value, reds: 0, first_red_at: None, last_red_at: None }
    }

    fn add(&mut self, at: DateTime<Utc>, value: f64, green: bool, target: f64) {
        if green {
            if self.reds == 0 {
                (self.at, self.value) = (at, value);
            }
            return;
        }
        if self.reds == 0 || (value - target).abs() > (self.value - target).abs() {
            (self.at, self.value) = (at, value);
        }
        self.reds += 1;
        self.first_red_at.get_or_insert(at);
        self.last_red_at = Some(at);
    }
}

/// The samples' values of `name`, oldest first, thinned to at most [`SLICES`] slices of the
/// window from `since` to `now`.
fn slices(
    samples: &[SignalSample],
    name: SignalName,
    target: f64,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Slice> {
    let span = (now - since).num_milliseconds().max(1);
    let mut slices: Vec<Slice> = Vec::new();
    for sample in samples {
        let (value, green) = sampled(sample, name);
        let index = ((sample.at - since).num_milliseconds().clamp(0, span) * SLICES / span).min(SLICES - 1);
        match slices.last_mut() {
            Some(slice) if slice.index == index => slice.add(sample.at, value, green, target),
            _ => {
                let mut slice = Slice::of(index, sample.at, value);
                slice.add(sample.at, value, green, target);
                slices.push(slice);
            }
        }
    }
    slices
}

/// A line chart of one signal's history from `since` to `now`, with its target dashed and
/// every slice of the window that held a red sample dotted red.
pub fn chart(
    name: SignalName,
    history: &ChartHistory<'_>,
    target: f64,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Markup {
    let slices = slices(history.samples, name, target, since, now);
    let top = slices.iter().map(|slice| slice.value).fold(target * 1.5, f64::max).max(f64::EPSILON);
    let span = (now - since).num_milliseconds().max(1) as f64;
    let x = |at: DateTime<Utc>| MARGIN + (WIDTH - 2.0 * MARGIN) * ((at - since).num_milliseconds() as f64 / span);
    let y = |value: f64| HEIGHT - MARGIN - (HEIGHT - 2.0 * MARGIN) * (value / top).clamp(0.0, 1.0);
    let points: Vec<String> = slices.iter().map(|slice| format!("{:.1},{:.1}", x(slice.at), y(slice.value))).collect();
    let target_y = format!("{:.1}", y(target));
    let reds: usize = slices.iter().map(|slice| slice.reds).sum();
    let hours = (now - since).num_hours();
    let n_samples = history.samples.len();
    // Never a window claimed that was not read: when older samples were left out, the label
    // says from when the samples drawn are.
    let label = match history.samples.first() {
        Some(oldest) if history.older_left_out => format!(
            "{} over the last {hours} hours: only the newest {n_samples} samples read, from {}, {reds} red; older ones left out; target {target}",
            name.as_str(),
            oldest.at.to_rfc3339(),
        ),
        _ => format!("{} over the last {hours} hours: {n_samples} samples, {reds} red; target {target}", name.as_str()),
    };
    html! {
        svg width=(WIDTH) height=(HEIGHT) viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            rect x="0" y="0" width=(WIDTH) height=(HEIGHT) fill="#fafafa" stroke="#999" {}
            line x1=(MARGIN) x2=(WIDTH - MARGIN) y1=(target_y) y2=(target_y) stroke="#a00" stroke-dasharray="6 4" {}
            @if !points.is_empty() {
                polyline points=(points.join(" ")) fill="none" stroke="#0645ad" stroke-width="2" {}
            }
            @for slice in slices.iter().filter(|slice| slice.reds > 0) {
                circle cx=(format!("{:.1}", x(slice.at))) cy=(format!("{:.1}", y(slice.value))) r="3" fill="#a00" {
                    title { (red_title(name, slice)) }
                }
            }
        }
    }
}

fn red_title(name: SignalName, slice: &Slice) -> String {
    let value = slice.value;
    match (slice.reds, slice.first_red_at, slice.last_red_at) {
        (2.., Some(first), Some(last)) => format!(
            "{} red {} times from {} to {}, the farthest from its target {value} at {}",
            name.as_str(),
            slice.reds,
            first.to_rfc3339(),
            last.to_rfc3339(),
            slice.at.to_rfc3339()
        ),
        _ => format!("{} red at {}: {value}", name.as_str(), slice.at.to_rfc3339()),
    }
}

fn status_cell(status: Status) -> Markup {
    html! { td class=(if status == Status::Green { "win" } else { "err" }) { (status.as_str()) } }
}

fn signals_table(signals: &Signals) -> Markup {
    html! {
        table {
            thead { tr { th { "Signal" } th { "Value" } th { "Target" } th { "Status" } th { "Owner" } th { "Detail" } } }
            tbody {
                @for signal in signals.each() {
                    tr {
                        td { (signal.name.as_str()) }
                        td { (format!("{:.4}", signal.value)) " " (signal.unit) }
                        td { (signal.target.to_string()) }
                        (status_cell(signal.status))
                        td { (signal.owner) }
                        td { (signal.detail) }
                    }
                }
            }
        }
        @if !signals.untraced.is_empty() {
            h4 { "Untraced items (" (signals.untraced_count) ")" }
            ul {
                @for item in &signals.untraced {
                    li { a href=(format!("/?item_id={}", item.item_id)) { (item.tenant_id) " / " (item.sku) } " — " (item.gap.as_str()) }
                }
            }
        }
    }
}

fn charts(state: &AppState, history: &ChartHistory<'_>, since: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        @for name in SignalName::ALL {
            @let target = match state.launch.signals.target(name).threshold {
                catalog_core::Threshold::Below(limit) | catalog_core::Threshold::AtLeast(limit) => limit,
            };
            figure {
                (chart(name, history, target, since, now))
                figcaption { (name.as_str()) ": the line is the value, dashed red the target, red dots red samples (one per 1/300 of the window)" }
            }
        }
    }
}

fn gate_section(gate: &GateView) -> Markup {
    html! {
        h3 { "Gate" }
        p {
            "Stage: " strong { (gate.rollout.to_string()) }
            " · green now: " (gate.green_now)
            " · green since: " (gate.green_since.map_or("never".to_owned(), |at| at.to_rfc3339()))
            " (" (gate.green_hours_needed) " h needed)"
            " · sign-offs: " (gate.signed_off_traces) " of " (gate.sign_offs_needed)
        }
        @if gate.sample_short {
            p.notice role="note" {
                "The sample is short: the stage has applied only " (gate.samples.len()) " item(s) since it began (or its first "
                "200,000 journal rows hold no more), so each of them is signed off. Items it applies next join the sample."
            }
        }
        @if gate.rollout == Rollout::Closed && gate.sync_enabled == Some(true) {
            p.notice role="note" {
                "Closed by its rollout, but its sync is on, so its events apply: it was never put through the gate, or was switched on by hand. "
                "Roll it back to hold its events, or start a canary to apply one supplier's only."
            }
        }
        table {
            thead { tr { th { "Step" } th { "Supplier" } th { "Allowed now" } th { "Why not" } } }
            tbody {
                @for step in &gate.steps {
                    tr {
                        td { (step.step) }
                        td { (step.supplier.clone().unwrap_or_default()) }
                        td { (step.allowed) }
                        td { (step.refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")) }
                    }
                }
            }
        }
        h4 { "Sample to trace and sign off" }
        @if gate.samples.is_empty() {
            p { "No item applied since the rollout last changed." }
        }
        ul {
            @for sample in &gate.samples {
                li {
                    a href=(format!("/?item_id={}", sample.item_id)) { (sample.sku) }
                    " — " @if sample.signed_off { "signed off" } @else { "not signed off" }
                }
            }
        }
    }
}

/// `/signals`: every tenant's signals and the overall history, or one tenant's with its gate.
pub async fn signals_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SignalsQuery>,
) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    caller.require(catalog_store::Role::Viewer)?;
    let now = Utc::now();
    let since = now - Duration::hours(query.hours.unwrap_or(24).clamp(1, 24 * 30));
    let body = match query.tenant.as_deref().map(TenantId::parse) {
        Some(Ok(tenant)) => match tenant_signals_view(&state, &tenant, since, MAX_CHART_SAMPLES).await? {
            Some(view) => {
                let gate = gate_view(&state, &tenant).await?;
                html! {
                    h2 { "Signals of " (tenant) }
                    p { a href="/signals" { "All tenants" } }
                    (signals_table(&view.current))
                    (charts(&state, &ChartHistory { samples: &view.history, older_left_out: view.more }, since, now))
                    (gate_section(&gate))
                }
            }
            None => html! { p.err role="alert" { "No tenant " (tenant) "." } },
        },
        Some(Err(error)) => html! { p.err role="alert" { "Tenant " (error.to_string()) } },
        None => {
            let judged = judge_now(&state).await?;
            let (history, more) = read_history(&state, None, since, MAX_CHART_SAMPLES).await?;
            html! {
                h2 { "Launch signals" }
                table {
                    thead { tr { th { "Tenant" } th { "All green" } @for name in SignalName::ALL { th { (name.as_str()) } } } }
                    tbody {
                        @for signals in &judged {
                            tr {
                                td {
                                    @match &signals.tenant_id {
                                        Some(tenant) => a href=(format!("/signals?tenant={tenant}")) { (tenant) },
                                        None => strong { "overall" },
                                    }
                                }
                                td { (signals.green) }
                                @for signal in signals.each() { (status_cell(signal.status)) }
                            }
                        }
                    }
                }
                @if let Some(overall) = judged.first() {
                    h3 { "Overall" }
                    (signals_table(overall))
                }
                (charts(&state, &ChartHistory { samples: &history, older_left_out: more }, since, now))
            }
        }
    };
    Ok(layout("Signals", Some(&caller), body).into_response())
}

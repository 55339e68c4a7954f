//! The support page's feeds: each supplier feed's status (current, behind or stale by its
//! frequency, gaps with days behind, what was pulled per day, the last full refresh's drift)
//! and, for operators, its switch behind a confirmation.

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use catalog_store::FeedKey;
use chrono::Timelike as _;
use maud::{html, Markup};
use serde::Deserialize;

use super::actions::{form_supplier, form_tenant, told};
use super::{layout, sign_in_form, signed_in, when};
use crate::api::feeds::{all_feeds, run_kind, switch_feed, FeedView, RunAsk};
use crate::auth::Caller;
use crate::auth::Role;
use crate::error::ApiError;
use crate::AppState;

fn feed_switch(feed: &FeedView) -> Markup {
    let verb = if feed.sync_enabled { "off" } else { "on" };
    let what = format!("feed {} of {}", feed.supplier_id, feed.tenant_id);
    html! {
        form.inline method="post" action="/page/feeds" data-confirm=(format!("Switch pulling {verb} for {what}?")) {
            input type="hidden" name="tenant" value=(feed.tenant_id);
            input type="hidden" name="supplier" value=(feed.supplier_id);
            input type="hidden" name="enabled" value=(!feed.sync_enabled);
            button type="submit" aria-label=(format!("Switch pulling {verb} for {what}")) { "Switch " (verb) }
        }
    }
}

/// An operator's manual runs of a feed, each behind a confirmation.
fn run_controls(feed: &FeedView) -> Markup {
    let what = format!("feed {} of {}", feed.supplier_id, feed.tenant_id);
    // A feed keeps one request: the confirmation says which waiting one a new one gives up.
    let replaces = feed.run_request.as_ref().map_or_else(String::new, |waiting| {
        format!(" It replaces {} {} asked for, not yet done.", a_run(waiting.kind), waiting.requested_by)
    });
    let id = format!("{}-{}", feed.tenant_id, feed.supplier_id);
    html! {
        @for (kind, label) in [("incremental", "Pull now"), ("full_refresh", "Full refresh now")] {
            form.inline method="post" action="/page/feeds/runs" data-confirm=(format!("{label} for {what}?{replaces}")) {
                input type="hidden" name="tenant" value=(feed.tenant_id);
                input type="hidden" name="supplier" value=(feed.supplier_id);
                input type="hidden" name="kind" value=(kind);
                button type="submit" aria-label=(format!("{label} for {what}")) { (label) }
            }
            " "
        }
        form.inline method="post" action="/page/feeds/runs" data-confirm=(format!("Backfill {what} again over the dates given?{replaces}")) {
            input type="hidden" name="tenant" value=(feed.tenant_id);
            input type="hidden" name="supplier" value=(feed.supplier_id);
            input type="hidden" name="kind" value="backfill";
            label for=(format!("since-{id}")) { "From (UTC day)" }
            input id=(format!("since-{id}")) name="since" type="date" required;
            label for=(format!("until-{id}")) { "through (UTC day, included)" }
            input id=(format!("until-{id}")) name="until" type="date" required;
            button type="submit" aria-label=(format!("Backfill {what}")) { "Backfill" }
        }
    }
}

fn feed_details(feed: &FeedView, operator: bool) -> Markup {
    let live = feed.state != "not_live";
    html! {
        section aria-labelledby=(format!("feed-{}-{}", feed.tenant_id, feed.supplier_id)) {
            h3 id=(format!("feed-{}-{}", feed.tenant_id, feed.supplier_id)) { "Feed " (feed.supplier_id) " of " (feed.tenant_id) }
            p {
                "Pulled from " code { (feed.base_url) } " with the token in " code { (feed.token_env) } ", every "
                (feed.sync_frequency_hours) " h at " (feed.run_times.join(", ")) " " (feed.timezone) ", "
                @if live { "live since " } @else { "not live until " } (feed.go_live_date) "."
                @if !live { " Nothing of it is pulled before, and no run can be asked for." }
            }
            @if let Some(letter) = &feed.failing {
                p.error role="alert" {
                    "Failing: " (letter.attempts) @if letter.attempts == 1 { " run failed at " (when(letter.first_failed_at)) } @else {
                        " runs failed since " (when(letter.first_failed_at)) ", the last at " (when(letter.last_failed_at)) }
                    ": " strong { (letter.reason) }
                    @if let Some(error) = &letter.error { " (" (error) ")" }
                    ". The worker tries again after its failure hold; the first run that completes resolves "
                    a href="/dead-letters" { "dead letter " (letter.dead_letter_id) } "."
                    @if let Some(body) = &letter.body { br; small { "The feed answered: " code { (body) } } }
                }
            }
            @if let Some(until) = feed.supplier_hold_until {
                p.notice { "The supplier asked not to be asked before " (when(until)) " (a 429's Retry-After): no run, scheduled or asked for, pulls anything before." }
            }
            @if let Some(request) = &feed.run_request {
                p.notice { "Asked for by " (request.requested_by) " at " (when(request.requested_at)) ", not yet run: " (request.kind)
                    @if let (Some(since), Some(until)) = (request.since, request.until) { " from " (when(since)) " until " (when(until)) } "." }
            }
            @if operator && live && feed.sync_enabled { p { (run_controls(feed)) } }
            @if live && !feed.sync_enabled { p.notice { "Switched off: the worker runs nothing of it, scheduled or asked for, until it is switched on." } }
            @if !live {} @else if feed.gaps.is_empty() { p { "No gaps: every window since going live is pulled." } } @else {
                table {
                    caption { "Open gaps (backfill pulls them, oldest first)" }
                    thead { tr { th scope="col" { "From" } th scope="col" { "Until" } th scope="col" { "Days behind" } } }
                    tbody { @for gap in &feed.gaps { tr { td { (when(gap.since)) } td { (when(gap.until)) } td { (gap.days_behind) } } } }
                }
            }
            @if !feed.pulled_by_day.is_empty() {
                table {
                    caption { "Pulled per day (windows completed that day)" }
                    thead { tr { th scope="col" { "Day (UTC)" } th scope="col" { "Windows" } th scope="col" { "Records" } th scope="col" { "Pages" } } }
                    tbody { @for day in &feed.pulled_by_day { tr { td { (day.date) } td { (day.windows) } td { (day.records) } td { (day.pages) } } } }
                }
            }
            @if !feed.records_by_day.is_empty() {
                table {
                    caption { "Records per day of first reception (as the journal decided them)" }
                    thead { tr { th scope="col" { "Day (UTC)" } th scope="col" { "Decided" } th scope="col" { "Rejected" } th scope="col" { "Duplicates" } } }
                    tbody {
                        @for day in &feed.records_by_day {
                            tr {
                                td { (day.date) }
                                td { (day.by_outcome.iter().map(|(outcome, n)| format!("{outcome} {n}")).collect::<Vec<_>>().join(", ")) }
                                td { (day.rejected) }
                                td { (day.duplicates) }
                            }
                        }
                    }
                }
            }
            @if let Some(refreshed_at) = feed.last_full_refresh_at {
                @if feed.last_refresh_drift.is_empty() { p { "The last full refresh (" (when(refreshed_at)) ") found no drift." } } @else {
                    table {
                        caption { "Drift the last full refresh found (" (when(refreshed_at)) "), each corrected" }
                        thead { tr { th scope="col" { "SKU" } th scope="col" { "Catalog had" } th scope="col" { "Supplier has" } th scope="col" { "As of" } } }
                        tbody {
                            @for drift in &feed.last_refresh_drift {
                                tr {
                                    td { a href=(format!("/?tenant={}&sku={}", feed.tenant_id, drift.sku)) { (drift.sku) } }
                                    td { (drift.stored.map_or_else(|| "no offer".to_owned(), |quantity| quantity.to_string())) }
                                    td { (drift.supplier) }
                                    td { (when(drift.as_of)) }
                                }
                            }
                        }
                    }
                }
            } @else { p { "No full refresh has completed yet: the initial sync is not done." } }
        }
    }
}

pub(super) async fn feeds_page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    let feeds = all_feeds(&state).await?;
    let operator = caller.role >= Role::Operator;
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| at.map_or_else(|| html! { "never" }, when);
    let body = html! {
        h2 { "Supplier feeds (" (feeds.len()) ")" }
        p { "Current: a window completed within one sync period. Behind: within two. Stale: longer, or never. Not live: its go-live date has not come; nothing of it is pulled before. Failing: the feed's last run failed (a pull dead letter is open)." }
        @if feeds.is_empty() { p { "No feeds: the worker's --feeds-file adds them." } } @else {
            table {
                thead { tr { th scope="col" { "Tenant" } th scope="col" { "Supplier" } th scope="col" { "State" } th scope="col" { "Pulling" } th scope="col" { "Last sync" } th scope="col" { "Windows" } th scope="col" { "Gaps" } th scope="col" { "Initial sync" } th scope="col" { "Last full refresh" } th scope="col" { "Drift found" } } }
                tbody {
                    @for feed in &feeds {
                        tr {
                            td { (feed.tenant_id) }
                            td { a href=(format!("#feed-{}-{}", feed.tenant_id, feed.supplier_id)) { (feed.supplier_id) } }
                            td { strong { (feed.state) } @if feed.failing.is_some() { br; strong.err { "failing" } } }
                            td { (if feed.sync_enabled { "on" } else { "off" }) " " @if operator { (feed_switch(feed)) } }
                            td { (time(feed.last_sync_at)) }
                            td { (feed.windows_completed) }
                            td { (feed.gaps.len()) @if feed.days_behind > 0 { " (" (feed.days_behind) " days behind)" } }
                            td { (if feed.initial_sync_completed { "done" } else { "not yet" }) }
                            td { (time(feed.last_full_refresh_at)) }
                            td { (feed.last_refresh_drift.len()) }
                        }
                    }
                }
            }
            @for feed in &feeds { (feed_details(feed, operator)) }
        }
    };
    Ok(layout("Feeds", Some(&caller), body).into_response())
}

/// The feed a form names, refused without the form's text (`form_tenant`).
fn form_key(tenant: &str, supplier: &str) -> Result<FeedKey, ApiError> {
    Ok(FeedKey { tenant: form_tenant(tenant)?, supplier: form_supplier(supplier)? })
}

#[derive(Debug, Deserialize)]
pub(super) struct FeedSwitchForm {
    tenant: String,
    supplier: String,
    enabled: bool,
}

pub(super) async fn switch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<FeedSwitchForm>,
) -> Result<Response, ApiError> {
    let caller = signed_in(&state, &headers).await?.ok_or(ApiError::Unauthorized)?;
    let key = form_key(&form.tenant, &form.supplier);
    // The feed is named only once its ids are valid: the form's own text never reaches the
    // sealed notice.
    let refused = key
        .as_ref()
        .map_or_else(|_| "Pulling not switched".to_owned(), |key| format!("Pulling of feed {key} not switched"));
    let switched = async {
        let key = key?;
        let result = switch_feed(&state, &caller, &key, form.enabled).await?;
        Ok(format!("Pulling of feed {key} switched {}.", if result.after { "on" } else { "off" }))
    };
    told(switched.await, &refused, &caller)
}

#[derive(Debug, Deserialize)]
pub(super) struct RunForm {
    tenant: String,
    supplier: String,
    kind: String,
    /// `YYYY-MM-DD`, the first UTC day of a backfill.
    since: Option<String>,
    /// `YYYY-MM-DD`, the UTC day a backfill stops before.
    until: Option<String>,
}

pub(super) async fn ask_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Result<Response, ApiError> {
    let caller = signed_in(&state, &headers).await?.ok_or(ApiError::Unauthorized)?;
    told(run(&state, &caller, &form).await, "No run asked for", &caller)
}

/// Asks for the run `form` names: a range it cannot run, or a feed not live yet, is refused.
async fn run(state: &AppState, caller: &Caller, form: &RunForm) -> Result<String, ApiError> {
    let key = form_key(&form.tenant, &form.supplier)?;
    // The refusal names the field, not its text: a notice carries none of a form's input.
    let not_a_date = |field: &str| ApiError::bad_request("invalid_run", format!("{field} is not a date (YYYY-MM-DD)"));
    let day = |field: &str, value: &Option<String>| -> Result<Option<chrono::NaiveDate>, ApiError> {
        value
            .as_deref()
            .filter(|value| !value.is_empty())
            .map(|value| chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| not_a_date(field)))
            .transpose()
    };
    let midnight = |date: chrono::NaiveDate| date.and_time(chrono::NaiveTime::MIN).and_utc();
    // The form names days, both included: a backfill through today reaches up to now, and one
    // of a single day is that day (`until` was exclusive: "through today" was refused as in the
    // future, and the day asked for last was left out). The day after the last chrono knows
    // (`+262142-12-31`) is none: the day after is checked, where adding a day panicked.
    let now = chrono::Utc::now().with_nanosecond(0).unwrap_or_else(chrono::Utc::now);
    let kind = day("until", &form.until).and_then(|through| {
        let until = through
            .map(|day| day.checked_add_days(chrono::Days::new(1)).map(|next| midnight(next).min(now)))
            .map(|until| until.ok_or_else(|| not_a_date("until")))
            .transpose()?;
        let since = day("since", &form.since)?.map(midnight);
        run_kind(&RunAsk { kind: form.kind.clone(), since, until }, now)
    });
    let asked = crate::api::feeds::ask_run(state, caller, &key, kind?).await?;
    let mut told =
        format!("Asked for {} of feed {key}: the worker runs it within a minute.", a_run(asked.request.kind));
    // A feed keeps one request: a colleague's waiting (or half-run) backfill is given up.
    if let Some(replaced) = &asked.replaced {
        let at = replaced.requested_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        told.push_str(&format!(
            " It replaces {} {} asked for at {at}, given up where it stood.",
            a_run(replaced.kind),
            replaced.requested_by
        ));
    }
    Ok(told)
}

/// "an incremental run", "a full_refresh run", "a backfill run".
fn a_run(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind} run")
}

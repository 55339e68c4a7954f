//! The support page's lists: open dead letters (with an operator's retry and resolve, each
//! behind a confirmation), every sales channel's health, and every tenant's sync status.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use catalog_store::{DeadLetterFilter, FeedKey};
use maud::{html, Markup};
use serde::Deserialize;

use super::{layout, sign_in_form, signed_in, when};
use crate::auth::Role;
use crate::error::ApiError;
use crate::AppState;

/// An operator's retry and resolve of a dead letter, each behind a confirmation.
pub(super) fn dead_letter_actions(dead_letter_id: i64) -> Markup {
    html! {
        form.inline method="post" action="/page/dead-letters" data-confirm=(format!("Retry dead letter {dead_letter_id}?")) {
            input type="hidden" name="dead_letter_id" value=(dead_letter_id);
            input type="hidden" name="action" value="retry";
            button type="submit" aria-label=(format!("Retry dead letter {dead_letter_id}")) { "Retry" }
        }
        " "
        (resolve_form(dead_letter_id))
    }
}

/// An operator's resolve of a dead letter with a note, behind a confirmation.
fn resolve_form(dead_letter_id: i64) -> Markup {
    html! {
        form.inline method="post" action="/page/dead-letters" data-confirm=(format!("Resolve dead letter {dead_letter_id}?")) {
            input type="hidden" name="dead_letter_id" value=(dead_letter_id);
            input type="hidden" name="action" value="resolve";
            label for=(format!("note-{dead_letter_id}")) { "Note" }
            input id=(format!("note-{dead_letter_id}")) name="note" required;
            button type="submit" aria-label=(format!("Resolve dead letter {dead_letter_id}")) { "Resolve" }
        }
    }
}

/// An operator's manual run of the feed a pull dead letter is about (its retry: the first
/// run that completes resolves the letter), and its resolve, each behind a confirmation. A
/// feed switched off runs nothing (a run asked for is refused): the page says so instead.
fn pull_letter_actions(dead_letter_id: i64, feed: &FeedKey, switched_off: bool) -> Markup {
    let what = format!("feed {} of {}", feed.supplier, feed.tenant);
    html! {
        @if switched_off {
            "Switched off: switch it on on the " a href=(format!("/feeds#feed-{}-{}", feed.tenant, feed.supplier)) { "feeds page" } " to pull it."
        } @else {
            form.inline method="post" action="/page/feeds/runs" data-confirm=(format!("Pull now for {what}?")) {
                input type="hidden" name="tenant" value=(feed.tenant);
                input type="hidden" name="supplier" value=(feed.supplier);
                input type="hidden" name="kind" value="incremental";
                button type="submit" aria-label=(format!("Pull now for {what}")) { "Pull now" }
            }
        }
        " "
        (resolve_form(dead_letter_id))
    }
}

/// Open dead letters the page lists at most.
const MAX_LETTERS_SHOWN: usize = 200;

pub(super) async fn dead_letters_page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    let filter = DeadLetterFilter { open: Some(true), limit: MAX_LETTERS_SHOWN + 1, ..DeadLetterFilter::default() };
    let mut letters = state.store.dead_letters(&filter).await?;
    let more = letters.len() > MAX_LETTERS_SHOWN;
    letters.truncate(MAX_LETTERS_SHOWN);
    // The feeds of the pull letters that are switched off, each read once.
    let mut switched_off = std::collections::BTreeSet::new();
    let feeds: std::collections::BTreeSet<FeedKey> = letters.iter().filter_map(FeedKey::of_pull_letter).collect();
    for feed in feeds {
        if state.store.feed(&feed).await?.is_some_and(|stored| !stored.settings.sync_enabled) {
            switched_off.insert(feed);
        }
    }
    let body = html! {
        h2 { "Open dead letters (" (letters.len()) @if more { "+" } ")" }
        @if more {
            p.notice role="note" { "More than " (MAX_LETTERS_SHOWN) " are open: the newest are shown. Every one, with filters by tenant, channel and stage: " code { "GET /v1/dead-letters" } "." }
        }
        p { "Publishes a channel refused for good, and supplier feeds' failed runs (stage pull), the most recently opened first (one that failed again keeps its place: Last failed at says when). Retry requeues the item's current version; Pull now asks for a run of the feed, and the first run that completes resolves its letter; resolve closes the letter with your note." }
        @if letters.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Item or feed" } th scope="col" { "Channel" } th scope="col" { "Reason" } th scope="col" { "Version" } th scope="col" { "Failures" } th scope="col" { "Heal rounds" } th scope="col" { "Operator retries" } th scope="col" { "Last failed at" } @if caller.role >= Role::Operator { th scope="col" { "Actions" } } } }
                tbody {
                    @for letter in &letters {
                        @let feed = FeedKey::of_pull_letter(letter);
                        tr {
                            td { (letter.dead_letter_id) }
                            @if let Some(feed) = &feed {
                                td { "feed " a href=(format!("/feeds#feed-{}-{}", feed.tenant, feed.supplier)) { code { (letter.subject) } } }
                                td { em { "pull" } }
                            } @else {
                                td { a href=(format!("/?item_id={}", letter.subject)) { code { (letter.subject) } } }
                                td { (letter.channel.clone().unwrap_or_default()) }
                            }
                            td { (letter.reason) @if let Some(error) = &letter.error { br; small { (error) } } @if letter.quarantined_at.is_some() { br; strong { "quarantined" } } }
                            td { (letter.version) }
                            td { (letter.attempts) }
                            td { (letter.heal_rounds) }
                            td { (letter.operator_retries) }
                            td { (when(letter.last_failed_at)) }
                            @if caller.role >= Role::Operator {
                                td {
                                    @if let Some(feed) = &feed { (pull_letter_actions(letter.dead_letter_id, feed, switched_off.contains(feed))) }
                                    @else { (dead_letter_actions(letter.dead_letter_id)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Dead letters", Some(&caller), body).into_response())
}

pub(super) async fn channels_page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    let channels = crate::api::channels::read_health(state.store.as_ref(), chrono::Utc::now()).await?;
    let count =
        |health: &crate::api::channels::ChannelHealth, result: &str| health.attempts.get(result).copied().unwrap_or(0);
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| at.map_or_else(|| html! { "never" }, when);
    let body = html! {
        h2 { "Sales channels" }
        p { "Each channel's publishes in the last " (crate::api::channels::WINDOW_MINUTES) " minutes. Failing: dead letters open or failed sends. Stalled: items have waited longer than that and none was attempted: no worker publishes the channel. Throttled: the platform asked to wait in the last 5 minutes. Skipped: SKUs the channel does not list (no request, no failure). Drift corrected: what reconciliation read back that the channel had not been sent (a manual edit, a lost listing), already republished." }
        @if channels.is_empty() { p { "No channel has published yet." } } @else {
            table {
                thead { tr { th scope="col" { "Channel" } th scope="col" { "Health" } th scope="col" { "Published" } th scope="col" { "Superseded" } th scope="col" { "Throttled" } th scope="col" { "Retried" } th scope="col" { "Dead-lettered" } th scope="col" { "Skipped" } th scope="col" { "Last attempt" } th scope="col" { "Waiting" } th scope="col" { "Open dead letters" } th scope="col" { "Drift corrected" } } }
                tbody {
                    @for health in &channels {
                        tr {
                            td { (health.channel) }
                            td { strong { (health.health) } }
                            td { (count(health, "published")) }
                            td { (count(health, "superseded")) }
                            td { (count(health, "throttled")) }
                            td { (count(health, "retry")) }
                            td { (count(health, "dead_lettered")) }
                            td { (count(health, "skipped")) }
                            td { (time(health.last_attempt_at)) @if let Some(at) = health.last_throttled_at { br; small { "throttled " (when(at)) } } }
                            td { (health.pending) @if let Some(seconds) = health.oldest_waiting_seconds { br; small { "oldest " (seconds) " s" } } }
                            td { a href="/dead-letters" { (health.dead_letters_open) } @if health.dead_letters_quarantined > 0 { br; strong { (health.dead_letters_quarantined) " quarantined" } } }
                            td { (health.drifts.values().sum::<u64>()) @for (kind, n) in &health.drifts { br; small { (n) " " (kind) } } @if let Some(at) = health.last_drift_at { br; small { "last " (when(at)) } } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Channels", Some(&caller), body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct StatusQuery {
    pub(super) tenant: Option<String>,
}

pub(super) async fn status_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let mut statuses = Vec::new();
    for tenant in state.store.tenant_ids().await? {
        if query.tenant.as_deref().is_none_or(|wanted| wanted.is_empty() || wanted == tenant.as_str()) {
            statuses.push(crate::api::status_of(&state, &tenant).await?);
        }
    }
    let counts = |counts: &std::collections::BTreeMap<String, u64>| {
        counts.iter().map(|(outcome, n)| format!("{outcome} {n}")).collect::<Vec<_>>().join(", ")
    };
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| at.map_or_else(|| html! { "never" }, when);
    let body = html! {
        h2 { "Sync status per tenant" }
        p { "Current: what arrived is applied. Behind: applied lags received. Stale: nothing arrived lately." }
        table {
            thead { tr { th scope="col" { "Tenant" } th scope="col" { "State" } th scope="col" { "Sync" } th scope="col" { "Last received" } th scope="col" { "Last applied" } th scope="col" { "Today" } th scope="col" { "Last 7 days" } th scope="col" { "Redeliveries (7 days)" } th scope="col" { "Items" } th scope="col" { "Waiting to publish" } th scope="col" { "Open dead letters" } } }
            tbody {
                @for status in &statuses {
                    tr {
                        td { (status.tenant_id) }
                        td { strong { (status.state) } }
                        td { (if status.sync_enabled { "on" } else { "off" }) }
                        td { (time(status.last_received_at)) }
                        td { (time(status.last_applied_at)) }
                        td { (counts(&status.today)) }
                        td { (counts(&status.last_7_days)) }
                        td { (status.redeliveries_last_7_days) }
                        td { (status.items) }
                        td { (status.items_waiting_to_publish) }
                        td { (status.open_dead_letters) }
                    }
                }
            }
        }
    };
    Ok(layout("Status", Some(&caller), body).into_response())
}

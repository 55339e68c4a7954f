//! The support page at `/`: server-rendered HTML (maud) over the same functions as the API.
//! Sign in with a token (kept in an HttpOnly, SameSite=Strict cookie), search by tenant + SKU,
//! item id, event id or trace id, read an item's timeline; operators get flag switches and
//! dead-letter actions, each behind a confirmation. A viewer sees no write control.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use catalog_core::{EventId, ItemId, ItemKey, Sku, SupplierId, TenantId};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use self::cells::{counted_cells, event_cells, reason_and_message};
use crate::api::items::{lookup_view, rows_of_event, rows_of_trace, trace_of, PageQuery, TraceTarget};
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::trace::TraceView;
use crate::AppState;

mod actions;
mod cells;
mod feeds;
mod lists;
mod notice;
mod origin;
mod rejections;
mod session;

pub(crate) use self::session::{sign_in_form, signed_in};

/// The page's routes; a write a browser sent from another origin is refused (`origin`).
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/dead-letters", get(lists::dead_letters_page))
        .route("/rejections", get(rejections::rejections_page))
        .route("/status", get(lists::status_page))
        .route("/channels", get(lists::channels_page))
        .route("/feeds", get(feeds::feeds_page))
        .route("/page/feeds", post(feeds::switch))
        .route("/page/feeds/runs", post(feeds::ask_run))
        .route("/session", post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/page/sync", post(actions::switch))
        .route("/page/dead-letters", post(actions::dead_letter_action))
        .route("/signals", get(crate::page_signals::signals_page))
        .route_layer(axum::middleware::from_fn_with_state(state, origin::same_origin))
}

/// The journal rows a search by trace id shows.
const TRACE_ID_ROWS: usize = 100;

/// The journal rows a search by event id shows: its decided row, then the others, oldest
/// first (a supplier resending one bad event builds a rejected row per delivery).
const EVENT_ID_ROWS: usize = 100;

/// Laptop first (1366 wide): ids and times never wrap, inputs use the page's font, focus is
/// a thick outline, and every text colour keeps at least 7:1 on its background.
const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:84rem;margin:1rem auto;padding:0 1rem;color:#111;background:#fff}\
a{color:#0645ad}a:visited{color:#4b2a85}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #767676;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#eee}form.inline{display:inline}fieldset{margin:.5rem 0}label{margin:0 .4rem 0 .8rem}label:first-of-type{margin-left:0}\
input,button{font:inherit}input{padding:.15rem .3rem;margin-right:.3rem;border:1px solid #767676}button{padding:.2rem .6rem;cursor:pointer}\
button:focus,input:focus,a:focus{outline:3px solid #0645ad;outline-offset:1px}\
code,time{white-space:nowrap}code{font-size:.9em}\
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:0 2rem}header h1{margin:.5rem 0}header p{margin:0}\
.scroll{overflow-x:auto;margin:.5rem 0}.scroll table{margin:0}.win{background:#e6f4e6}.lose{color:#444}.err{color:#a00;font-weight:bold}.notice{background:#eef4ff;border-left:4px solid #0645ad;padding:.4rem .8rem}\
.error{background:#fff0f0;border-left:4px solid #a00;padding:.4rem .8rem}\
.raw{white-space:pre-wrap;overflow-wrap:anywhere;max-height:12rem;overflow-y:auto;margin:.25rem 0}";

/// Writes ask first: a form with `data-confirm` submits only once confirmed.
const CONFIRM_JS: &str = "document.addEventListener('submit',function(e){var m=e.target.getAttribute('data-confirm');\
if(m&&!window.confirm(m)){e.preventDefault();}});";

pub(crate) fn layout(title: &str, caller: Option<&Caller>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · catalog-sync support" }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    header {
                        h1 { a href="/" { "catalog-sync support" } }
                        @if let Some(caller) = caller {
                            nav aria-label="Sections" {
                                a href="/" { "Find an item" } " · " a href="/dead-letters" { "Dead letters" } " · " a href="/rejections" { "Rejected messages" } " · " a href="/channels" { "Channels" } " · " a href="/status" { "Status" } " · " a href="/feeds" { "Feeds" } " · " a href="/signals" { "Launch signals and gates" }
                            }
                            p {
                                "Signed in as " strong { (caller.name) } " (" (caller.role) "). "
                                form.inline method="post" action="/signout" { button type="submit" { "Sign out" } }
                            }
                        }
                    }
                    main { (body) }
                    script { (PreEscaped(CONFIRM_JS)) }
                }
            }
        }
        .into_string(),
    )
}

/// A time as support reads it (UTC, to the second, finer only when it is finer), whole in
/// the `datetime` attribute, never broken over two lines.
fn when(at: chrono::DateTime<chrono::Utc>) -> Markup {
    let shown = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true).replacen('T', " ", 1);
    html! { time datetime=(at.to_rfc3339()) { (shown) } }
}

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    pub tenant: Option<String>,
    pub sku: Option<String>,
    pub item_id: Option<String>,
    pub event_id: Option<String>,
    pub trace_id: Option<String>,
    pub message: Option<String>,
    /// The message's seal (`notice`): a message without this process's seal is not shown.
    pub seal: Option<String>,
    /// Where the timeline page starts, for an item with more events than one page shows.
    pub events_offset: Option<u64>,
    /// The newest journal row the timeline's pages count (the first page's).
    pub events_through: Option<i64>,
}

fn search_forms(search: &Search) -> Markup {
    let value = |field: &Option<String>| field.clone().unwrap_or_default();
    html! {
        h2 { "Find an item" }
        form method="get" action="/" {
            fieldset {
                legend { "By tenant and SKU" }
                label for="tenant" { "Tenant" } input #tenant name="tenant" value=(value(&search.tenant));
                label for="sku" { "SKU" } input #sku name="sku" value=(value(&search.sku));
                button type="submit" { "Trace" }
            }
        }
        // One form per id, so each button sends its own field alone: in one form, the event id
        // of the last search went along with a trace id typed since, and won.
        fieldset {
            legend { "By id" }
            form method="get" action="/" {
                label for="item_id" { "Item id" } input #item_id name="item_id" value=(value(&search.item_id));
                button type="submit" { "Trace item" }
            }
            form method="get" action="/" {
                label for="event_id" { "Event id" } input #event_id name="event_id" value=(value(&search.event_id));
                button type="submit" { "Find event" }
            }
            form method="get" action="/" {
                label for="trace_id" { "Trace id" } input #trace_id name="trace_id" value=(value(&search.trace_id));
                button type="submit" { "Find trace" }
            }
        }
    }
}

/// Which events of a long timeline this page shows, and links to the pages either side.
fn timeline_pages(trace: &TraceView) -> Markup {
    let events = &trace.events;
    let shown = events.entries.len() as u64;
    // By tenant and SKU (both URL-safe by their rules): an item whose events were all held
    // or rejected has no row to be found by its id.
    // Pages count the events journaled up to the first page's newest: one arriving meanwhile
    // moves no row from one page to the next.
    let through = events.through.map_or_else(String::new, |through| format!("&events_through={through}"));
    let link = |offset: u64| {
        format!("/?tenant={}&sku={}&events_offset={offset}{through}#timeline-heading", trace.tenant_id, trace.sku)
    };
    // An offset past the last event (a link edited by hand, up to u64::MAX) shows none, and
    // says so: counting from it overflowed, and the page panicked.
    let after_shown = events.offset.saturating_add(shown);
    html! {
        p.notice role="note" {
            @if shown == 0 {
                "No events from " (events.offset) ": the item has " (events.total) ". " a href=(link(0)) { "First events" }
            } @else {
                "Events " (events.offset.saturating_add(1)) "–" (after_shown) " of " (events.total) ", oldest first. "
                @if events.offset > 0 { a href=(link(events.offset.saturating_sub(events.limit))) { "Earlier events" } " " }
                @if after_shown < events.total { a href=(link(after_shown)) { "Later events" } }
            }
        }
    }
}

fn trace_section(trace: &TraceView, caller: &Caller) -> Markup {
    html! {
        h2 { "Item " (trace.tenant_id) " / " (trace.sku) }
        p { "Quantity " strong { (trace.quantity) } ", version " (trace.version) ", item id " code { (trace.item_id) } }
        h3 #channels-heading { "What each channel holds" }
        table aria-labelledby="channels-heading" {
            thead { tr { th scope="col" { "Channel" } th scope="col" { "Published version" } th scope="col" { "At" } } }
            tbody {
                @for published in &trace.published { tr { td { (published.channel) } td { (published.version) } td { (when(published.published_at)) } } }
                @for pending in &trace.pending_publishes { tr { td { (pending.channel) } td { "waiting: version " (pending.version) @if pending.not_before > chrono::Utc::now() { br; small { "not sent before " (when(pending.not_before)) ": being sent, or waiting out a retry or throttling" } } @if pending.failed_attempts > 0 { br; small { (pending.failed_attempts) " failed sends so far" } } } td { (when(pending.enqueued_at)) } } }
            }
        }
        h3 #offers-heading { "Why this quantity: the winner per offer" }
        table #offers aria-labelledby="offers-heading" {
            thead { tr { th scope="col" { "Supplier" } th scope="col" { "Offer quantity" } th scope="col" { "Counted event" } th scope="col" { "Type" } th scope="col" { "Quantity / delta" } th scope="col" { "Effective at" } th scope="col" { "Sequence" } } }
            tbody {
                @for offer in &trace.offers {
                    @if let Some(winner) = &offer.winning_event {
                        tr.win { td { (offer.supplier_id) } td { (offer.quantity) } (event_cells(winner)) }
                    } @else if let Some(snapshot) = &offer.snapshot {
                        tr.win { td { (offer.supplier_id) } td { (offer.quantity) } (counted_cells(snapshot)) }
                    } @else {
                        tr { td { (offer.supplier_id) } td { (offer.quantity) } td colspan="5" { "no snapshot: adjustments only" } }
                    }
                    @if let Some(folded) = &offer.folded_adjustments {
                        tr { td {} td {} td colspan="5" { (folded.count) " older adjustments folded: " (format!("{:+}", folded.delta)) } }
                    }
                    @for adjustment in &offer.adjustments { tr { td {} td { "+ adjustment" } (event_cells(adjustment)) } }
                    @for adjustment in offer.counted_adjustments.iter().filter(|adjustment| adjustment.archived) {
                        tr { td {} td { "+ adjustment" } (counted_cells(adjustment)) }
                    }
                }
            }
        }
        h3 #timeline-heading { "Timeline: every event, with its outcome (" (trace.events.total) ")" }
        @if trace.events.total > trace.events.entries.len() as u64 { (timeline_pages(trace)) }
        @if let Some(reach) = &trace.journal_retention { p.notice role="note" { (reach.note) } }
        // A wide timeline scrolls in its own box (keyboard-reachable), never the page.
        div.scroll role="region" aria-labelledby="timeline-heading" tabindex="0" {
            table #timeline aria-labelledby="timeline-heading" {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Quantity / delta" } th scope="col" { "Effective at" } th scope="col" { "Sequence" } th scope="col" { "Supplier" } th scope="col" { "Outcome" } th scope="col" { "Reason" } th scope="col" { "Redeliveries" } } }
                tbody {
                    @for event in &trace.events.entries {
                        tr class=(if event.outcome == "applied" { "win" } else { "lose" }) {
                            (event_cells(event))
                            td { (event.supplier_id.clone().unwrap_or_default()) }
                            td { (event.outcome) }
                            td { (reason_and_message(event)) }
                            td { (event.redelivery_count) @if event.payload_differs { br; strong.err { "another payload" } br; small { "redelivered with other values; the first journaled counts" } } }
                        }
                    }
                }
            }
        }
        h3 #publishes-heading { "What each channel was sent and answered" }
        @if trace.publishes_total > trace.publishes.len() as u64 {
            p.notice role="note" { "The newest " (trace.publishes.len()) " of " (trace.publishes_total) " attempts, oldest first." }
        }
        table aria-labelledby="publishes-heading" {
            thead { tr { th scope="col" { "Channel" } th scope="col" { "Version" } th scope="col" { "Attempt" } th scope="col" { "Listing" } th scope="col" { "Quantity sent" } th scope="col" { "By the rule" } th scope="col" { "Status" } th scope="col" { "Result" } th scope="col" { "At" } } }
            tbody {
                @for attempt in &trace.publishes {
                    tr {
                        td { (attempt.channel) } td { (attempt.version) } td { (attempt.attempt) }
                        @if let Some(sent) = &attempt.sent {
                            td { code { (sent.listing) } } td { strong { (sent.quantity) } } td { small { (sent.rule) } }
                        } @else {
                            td colspan="3" {}
                        }
                        // The channel's words go with the result whatever was sent: shown only
                        // when nothing was, a refusal of a quantity sent (a throttle, a 4xx)
                        // left the trace without the reason.
                        td { (attempt.status.map(|s| s.to_string()).unwrap_or_default()) }
                        td { (attempt.result) @if let Some(error) = &attempt.error { div.raw { small { (error) } } } }
                        td { (when(attempt.attempted_at)) }
                    }
                }
            }
        }
        h3 #drifts-heading { "Drift corrected by reconciliation" }
        @if trace.drift_corrections.is_empty() { p { "None." } } @else {
            table aria-labelledby="drifts-heading" {
                thead { tr { th scope="col" { "Channel" } th scope="col" { "Found" } th scope="col" { "It showed" } th scope="col" { "Catalog version" } th scope="col" { "Corrected as version" } th scope="col" { "At" } } }
                tbody {
                    @for drift in &trace.drift_corrections {
                        tr { td { (drift.channel) } td { (drift.kind) } td { @if let (Some(quantity), Some(version)) = (drift.shown_quantity, drift.shown_version) { "showed " (quantity) " (version " (version) ")" } @else { "nothing" } } td { (drift.catalog_version) } td { (drift.corrected_version) } td { (when(drift.detected_at)) } }
                    }
                }
            }
        }
        h3 { "Open dead letters" }
        @if trace.open_dead_letters.is_empty() { p { "None." } }
        @for letter in &trace.open_dead_letters {
            p {
                "#" (letter.dead_letter_id) " on " (letter.channel.clone().unwrap_or_default()) ": " (letter.reason)
                ", version " (letter.version) ", " (letter.attempts) " failures, " (letter.heal_rounds) " heal rounds, " (letter.operator_retries) " operator retries. "
                @if caller.role >= Role::Operator { (lists::dead_letter_actions(letter.dead_letter_id)) }
            }
        }
    }
}

async fn tenants_section(state: &AppState, caller: &Caller) -> Result<Markup, ApiError> {
    let mut rows = Vec::new();
    for tenant in state.store.tenant_ids().await? {
        if let Some(flags) = state.store.tenant_flags(&tenant).await? {
            rows.push(flags);
        }
    }
    let operator = caller.role >= Role::Operator;
    let switch = |tenant: &TenantId, supplier: Option<&SupplierId>, enabled: bool| {
        let what =
            supplier.map_or_else(|| format!("tenant {tenant}"), |supplier| format!("supplier {supplier} of {tenant}"));
        let verb = if enabled { "off" } else { "on" };
        html! {
            form.inline method="post" action="/page/sync" data-confirm=(format!("Switch sync {verb} for {what}?")) {
                input type="hidden" name="tenant" value=(tenant);
                @if let Some(supplier) = supplier { input type="hidden" name="supplier" value=(supplier); }
                input type="hidden" name="enabled" value=(!enabled);
                button type="submit" aria-label=(format!("Switch sync {verb} for {what}")) { "Switch " (verb) }
            }
        }
    };
    Ok(html! {
        h2 { "Tenants and sync flags" }
        table {
            thead { tr { th scope="col" { "Tenant" } th scope="col" { "Sync" } th scope="col" { "Suppliers" } } }
            tbody {
                @for flags in &rows {
                    tr {
                        td { (flags.tenant) " " a href=(format!("/status?tenant={}", flags.tenant)) { "status" } }
                        td { (if flags.sync_enabled { "on" } else { "off" }) " " @if operator { (switch(&flags.tenant, None, flags.sync_enabled)) } }
                        td {
                            @for (supplier, enabled) in &flags.suppliers {
                                span { (supplier) ": " (if *enabled { "on" } else { "off" }) " " @if operator { (switch(&flags.tenant, Some(supplier), *enabled)) } } br;
                            }
                        }
                    }
                }
            }
        }
    })
}

async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    search: Result<Query<Search>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Some(caller) = signed_in(&state, &headers).await? else {
        return Ok(layout("Sign in", None, sign_in_form(None)).into_response());
    };
    let search = search.map(|Query(search)| search).unwrap_or_default();
    let page = PageQuery {
        events_offset: search.events_offset,
        events_limit: Some(crate::trace::MAX_EVENTS_PER_PAGE),
        events_through: search.events_through,
    };
    let mut result = html! {};
    let mut problem: Option<String> = None;
    let target = match (&search.tenant, &search.sku, &search.item_id) {
        (Some(tenant_id), Some(sku_text), _) if !tenant_id.is_empty() && !sku_text.is_empty() => {
            // Trimmed as the SKU is (a pasted tenant often carries a space); each refusal says
            // which field and why, where one notice for both left the support person guessing.
            // Not what was typed (the search box shows it): a link's text quoted on the page
            // ("The tenant "Your session expired. Paste your token at …" …") was words of its
            // own on a signed-in page.
            match (TenantId::parse(tenant_id.trim()), Sku::parse(sku_text)) {
                (Ok(tenant), Ok(sku)) => Some(TraceTarget::Key(ItemKey { tenant, sku })),
                (tenant, sku) => {
                    let tenant = tenant.err().map(|error| format!("The tenant {error}."));
                    let sku = sku.err().map(|error| format!("The SKU {error}."));
                    problem = Some([tenant, sku].into_iter().flatten().collect::<Vec<_>>().join(" "));
                    None
                }
            }
        }
        (_, _, Some(item_id)) if !item_id.is_empty() => match item_id.trim().parse() {
            Ok(id) => Some(TraceTarget::Id(ItemId(id))),
            Err(_) => {
                problem = Some("An item id is a UUID.".into());
                None
            }
        },
        _ => None,
    };
    if let Some(target) = target {
        match trace_of(&state, target, &page).await {
            Ok(trace) => result = trace_section(&trace, &caller),
            Err(ApiError::NotFound(message)) => problem = Some(message),
            Err(error) => return Err(error),
        }
    }
    // What the notice says when more rows were found than shown.
    let mut more: Option<&str> = None;
    let entries = if let Some(event_id) = search.event_id.as_deref().filter(|id| !id.is_empty()) {
        match event_id.trim().parse() {
            Ok(id) => {
                let (entries, more_rows) = rows_of_event(&state, EventId(id), EVENT_ID_ROWS).await?;
                more = more_rows.then_some("More journal rows name this event id than shown: these are its first");
                Some(entries)
            }
            Err(_) => {
                problem = Some("An event id is a UUID.".into());
                None
            }
        }
    } else if let Some(trace_id) = search.trace_id.as_deref().filter(|id| !id.is_empty()) {
        let trace_id = trace_id.trim().to_ascii_lowercase();
        if trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let (entries, more_rows) = rows_of_trace(&state, &trace_id, TRACE_ID_ROWS).await?;
            more = more_rows.then_some("More events carry this trace id than shown: these are its oldest");
            Some(entries)
        } else {
            problem = Some("A trace id is 32 hexadecimal digits.".into());
            None
        }
    } else {
        None
    };
    if let Some(entries) = entries {
        let found = lookup_view(&entries);
        result = html! {
            h2 { "Events found (" (found.matches.len()) ")" }
            @if let Some(more) = more { p.notice { (more) " " (found.matches.len()) "." } }
            ul {
                @for found in &found.matches {
                    li {
                        (found.event.outcome) " " (reason_and_message(&found.event))
                        // By tenant and SKU (URL-safe by their rules), not by id: an item whose
                        // events were all held or rejected has no row to be found by its id.
                        @if let (Some(_), Some(tenant), Some(sku)) = (&found.item_id, &found.tenant_id, &found.sku) { " — " a href=(format!("/?tenant={tenant}&sku={sku}")) { "trace item " (tenant) " / " (sku) } }
                    }
                }
            }
        };
    }
    let tenants = tenants_section(&state, &caller).await?;
    let body = html! {
        @if let Some(message) = notice::verified(search.message.as_deref(), search.seal.as_deref(), &caller) { p.notice role="status" { (message) } }
        @if let Some(problem) = &problem { p.err role="alert" { (problem) } }
        (search_forms(&search))
        (result)
        (tenants)
    };
    Ok(layout("Support", Some(&caller), body).into_response())
}

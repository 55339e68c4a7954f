//! A supplier feed API (`supplier-feed-api.md`) served on a local port, with the failures
//! the contract warns about on demand: throttling, 5xx, expired cursors, garbage pages, slow
//! answers, refusals. Shared by the pull source's tests, the worker's and the benchmark.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// One record the feed holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord {
    pub sku: String,
    pub quantity: i64,
    pub updated_at: DateTime<Utc>,
    pub sequence: Option<u64>,
}

impl FeedRecord {
    fn to_json(&self) -> Value {
        let mut record = json!({
            "sku": self.sku,
            "quantity": self.quantity,
            "updated_at": self.updated_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        });
        if let Some(sequence) = self.sequence {
            record["sequence"] = json!(sequence);
        }
        record
    }
}

/// What the next request gets instead of (or before) its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with this `Retry-After`.
    Throttle { retry_after_secs: u64 },
    /// This status, with a small JSON body.
    Status(u16),
    /// 200 with a body that is not a page.
    Garbage,
    /// The page, after this long.
    Slow(Duration),
    /// Every cursor handed out so far expires (the request carrying one gets 410).
    ExpireCursors,
    /// The page, with this value, which is no object, first among its records.
    NotAnObject(Value),
}

/// A request the feed answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub snapshot: bool,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
struct ApiState {
    records: RwLock<Vec<FeedRecord>>,
    /// The snapshot the supplier reports; `None`: the newest record of each SKU.
    snapshot: RwLock<Option<Vec<FeedRecord>>>,
    token: String,
    faults: Mutex<VecDeque<Fault>>,
    /// Faults for the next snapshot requests alone, played before `faults`.
    snapshot_faults: Mutex<VecDeque<Fault>>,
    /// The snapshot's `as_of`; `None`: the time of each answer.
    as_of: Mutex<Option<DateTime<Utc>>>,
    page_delay: Mutex<Duration>,
    generation: AtomicU64,
    /// A broken feed: every page names its own cursor as the next one, so paging never ends.
    stuck_cursor: std::sync::atomic::AtomicBool,
    log: Mutex<Vec<LoggedRequest>>,
}

/// A running feed API. Cloning shares it.
#[derive(Debug, Clone)]
pub struct FeedApi {
    state: Arc<ApiState>,
    pub address: SocketAddr,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FeedApi {
    /// Serves `records` on 127.0.0.1 (port 0), answering only `Bearer {token}`. The server
    /// task lives as long as the runtime.
    pub async fn start(records: Vec<FeedRecord>, token: &str) -> FeedApi {
        let state = Arc::new(ApiState {
            records: RwLock::new(Vec::new()),
            snapshot: RwLock::new(None),
            token: token.to_owned(),
            faults: Mutex::new(VecDeque::new()),
            snapshot_faults: Mutex::new(VecDeque::new()),
            as_of: Mutex::new(None),
            stuck_cursor: std::sync::atomic::AtomicBool::new(false),
            page_delay: Mutex::new(Duration::ZERO),
            generation: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
        });
        let api_state = Arc::clone(&state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let address = listener.local_addr().expect("local address");
        let router = Router::new()
            .route("/v1/inventory", get(window_page))
            .route("/v1/inventory/snapshot", get(snapshot_page))
            .with_state(api_state);
        tokio::spawn(async move { axum::serve(listener, router).await.expect("feed api serves") });
        let api = FeedApi { state, address };
        api.set_records(records);
        api
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Replaces the feed's records.
    pub fn set_records(&self, mut records: Vec<FeedRecord>) {
        records.sort_by(|a, b| (a.updated_at, &a.sku).cmp(&(b.updated_at, &b.sku)));
        *self.state.records.write().unwrap_or_else(std::sync::PoisonError::into_inner) = records;
    }

    /// Sets what the snapshot lists, instead of the newest record of each SKU.
    pub fn set_snapshot(&self, records: Vec<FeedRecord>) {
        *self.state.snapshot.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(records);
    }

    /// Queues faults for the next requests, one each, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.faults).extend(faults);
    }

    /// Makes the snapshot say it is as of `as_of` (by default, the time of each answer).
    pub fn set_as_of(&self, as_of: DateTime<Utc>) {
        *lock(&self.state.as_of) = Some(as_of);
    }

    /// Queues faults for the next snapshot requests alone, one each, in order.
    pub fn inject_into_snapshot(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.snapshot_faults).extend(faults);
    }

    /// Every page is answered after this long.
    pub fn set_page_delay(&self, delay: Duration) {
        *lock(&self.state.page_delay) = delay;
    }

    /// Breaks (or mends) the feed's paging: while stuck, a page that is not the last names
    /// its own cursor as the next one, as a feed with a paging bug does, so following the
    /// cursors never ends.
    pub fn set_stuck_cursor(&self, stuck: bool) {
        self.state.stuck_cursor.store(stuck, Ordering::SeqCst);
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.state.log).clone()
    }

    /// What a correct pull ends with: per SKU, the quantity of its greatest record by
    /// (`updated_at`, `sequence`), among records the contract accepts.
    pub fn expected_offers(&self) -> BTreeMap<String, i64> {
        let records = self.state.records.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut newest: HashMap<String, &FeedRecord> = HashMap::new();
        for record in records.iter().filter(|record| catalog_core::Sku::parse(&record.sku).is_ok()) {
            if !(0..=1_000_000_000).contains(&record.quantity) {
                continue;
            }
            let sku = catalog_core::Sku::parse(&record.sku).map(|sku| sku.as_str().to_owned()).unwrap_or_default();
            let key = |r: &FeedRecord| (r.updated_at, r.sequence.unwrap_or(0));
            match newest.get(&sku) {
                Some(current) if key(current) >= key(record) => {}
                _ => {
                    newest.insert(sku, record);
                }
            }
        }
        newest.into_iter().map(|(sku, record)| (sku, record.quantity)).collect()
    }
}

/// A request the feed answers with an error status and a small body.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, body: &str) -> Refusal {
        Refusal(status, body.to_owned())
    }
}

type Answer = Result<Vec<u8>, Refusal>;

/// Checks the token, plays the next fault, waits the page delay; gives back a value to put
/// first among the page's records, if the fault asks for one.
async fn prelude(state: &ApiState, headers: &HeaderMap, snapshot: bool) -> Result<Option<Value>, Response> {
    let expected = format!("Bearer {}", state.token);
    if headers.get("authorization").and_then(|value| value.to_str().ok()) != Some(expected.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#).into_response());
    }
    let snapshot_fault = if snapshot { lock(&state.snapshot_faults).pop_front() } else { None };
    let fault = snapshot_fault.or_else(|| lock(&state.faults).pop_front());
    match fault {
        Some(Fault::Throttle { retry_after_secs }) => {
            return Err((StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after_secs.to_string())], "slow down")
                .into_response())
        }
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err((status, r#"{"error":"injected"}"#).into_response());
        }
        Some(Fault::Garbage) => return Err((StatusCode::OK, "<html>upstream proxy error</html>").into_response()),
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::ExpireCursors) => {
            state.generation.fetch_add(1, Ordering::SeqCst);
        }
        Some(Fault::NotAnObject(value)) => return Ok(Some(value)),
        None => {}
    }
    let delay = *lock(&state.page_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(None)
}

/// `body`, a page, with `value` first among its records.
fn with_first_record(body: Vec<u8>, value: Value) -> Vec<u8> {
    let mut page: Value = serde_json::from_slice(&body).expect("a page is JSON");
    if let Some(records) = page.get_mut("records").and_then(Value::as_array_mut) {
        records.insert(0, value);
    }
    serde_json::to_vec(&page).expect("a page serializes")
}

/// The start index a cursor names, if it is of the current generation.
fn cursor_index(state: &ApiState, cursor: Option<&String>) -> Result<usize, Refusal> {
    let Some(cursor) = cursor else { return Ok(0) };
    let generation = state.generation.load(Ordering::SeqCst);
    let parsed = cursor
        .strip_prefix('g')
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(g, index)| Some((g.parse::<u64>().ok()?, index.parse::<usize>().ok()?)));
    match parsed {
        Some((g, index)) if g == generation => Ok(index),
        Some(_) => Err(Refusal::new(StatusCode::GONE, r#"{"error":"cursor expired"}"#)),
        None => Err(Refusal::new(StatusCode::BAD_REQUEST, r#"{"error":"bad cursor"}"#)),
    }
}

fn limit(query: &HashMap<String, String>) -> Result<usize, Refusal> {
    match query.get("limit").and_then(|limit| limit.parse::<usize>().ok()) {
        Some(limit) if (1..=1000).contains(&limit) => Ok(limit),
        _ => Err(Refusal::new(StatusCode::BAD_REQUEST, r#"{"error":"limit"}"#)),
    }
}

fn page_body(records: &[FeedRecord], next: Option<String>, as_of: Option<DateTime<Utc>>) -> Vec<u8> {
    let mut body = json!({
        "records": records.iter().map(FeedRecord::to_json).collect::<Vec<_>>(),
        "next_cursor": next,
    });
    if let Some(as_of) = as_of {
        body["as_of"] = json!(as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    serde_json::to_vec(&body).expect("a page serializes")
}

fn window_answer(state: &ApiState, query: &HashMap<String, String>) -> Answer {
    let bound = |name: &str| {
        query
            .get(name)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.to_utc())
            .ok_or_else(|| Refusal(StatusCode::BAD_REQUEST, format!(r#"{{"error":"{name}"}}"#)))
    };
    let (since, until) = (bound("updated_since")?, bound("updated_until")?);
    let limit = limit(query)?;
    let from = cursor_index(state, query.get("cursor"))?;
    let records = state.records.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = records.partition_point(|record| record.updated_at < since);
    let end = records.partition_point(|record| record.updated_at < until).max(start);
    let from = from.max(start).min(end);
    let to = (from + limit).min(end);
    let next = next_cursor(state, from, to, end);
    Ok(page_body(&records[from..to], next, None))
}

/// The cursor of the page after `from..to` of `end` records, if any: the one of `to`, or
/// while the feed is stuck the page's own (`from`).
fn next_cursor(state: &ApiState, from: usize, to: usize, end: usize) -> Option<String> {
    let generation = state.generation.load(Ordering::SeqCst);
    let next = if state.stuck_cursor.load(Ordering::SeqCst) { from } else { to };
    (to < end).then(|| format!("g{generation}:{next}"))
}

fn snapshot_answer(state: &ApiState, query: &HashMap<String, String>) -> Answer {
    let limit = limit(query)?;
    let from = cursor_index(state, query.get("cursor"))?;
    let listed: Vec<FeedRecord> = match &*state.snapshot.read().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(snapshot) => snapshot.clone(),
        None => {
            let records = state.records.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut newest: BTreeMap<String, FeedRecord> = BTreeMap::new();
            for record in records.iter() {
                let key = |r: &FeedRecord| (r.updated_at, r.sequence.unwrap_or(0));
                match newest.get(&record.sku) {
                    Some(current) if key(current) >= key(record) => {}
                    _ => {
                        newest.insert(record.sku.clone(), record.clone());
                    }
                }
            }
            newest.into_values().collect()
        }
    };
    let from = from.min(listed.len());
    let to = (from + limit).min(listed.len());
    let next = next_cursor(state, from, to, listed.len());
    let as_of = lock(&state.as_of).unwrap_or_else(Utc::now);
    Ok(page_body(&listed[from..to], next, Some(as_of)))
}

fn log_request(state: &ApiState, snapshot: bool, query: &HashMap<String, String>, status: u16) {
    lock(&state.log).push(LoggedRequest {
        snapshot,
        since: query.get("updated_since").cloned(),
        until: query.get("updated_until").cloned(),
        cursor: query.get("cursor").cloned(),
        status,
    });
}

async fn answer(state: Arc<ApiState>, headers: HeaderMap, query: HashMap<String, String>, snapshot: bool) -> Response {
    let response = match prelude(&state, &headers, snapshot).await {
        Ok(first) => {
            let answered = if snapshot { snapshot_answer(&state, &query) } else { window_answer(&state, &query) };
            match answered.map(|body| match first {
                Some(value) => with_first_record(body, value),
                None => body,
            }) {
                Ok(body) => (StatusCode::OK, [("content-type", "application/json")], body).into_response(),
                Err(Refusal(status, body)) => (status, body).into_response(),
            }
        }
        Err(response) => response,
    };
    log_request(&state, snapshot, &query, response.status().as_u16());
    response
}

async fn window_page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    answer(state, headers, query, false).await
}

async fn snapshot_page(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    answer(state, headers, query, true).await
}

//! The Amazon adapter's feeds against a local SP-API over real HTTP: the Feeds API 2021-06-30
//! (`createFeedDocument`, the presigned upload, `createFeed`, `getFeed`, `getFeedDocument`
//! and the GZIP processing report it points to) and a Login with Amazon token endpoint,
//! answering as `docs/channels/amazon.md` ("Feeds") documents: the listings feed schema's
//! messages processed into the report schema's issues and summary, 429 `QuotaExceeded`, 403
//! for an expired token, 503, `FATAL`, and a feed that is never done. Every request is
//! recorded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::marketplace_support::{accepted, header, publish_on, Received};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use catalog_publish::marketplace::amazon::{AmazonChannel, FeedSettings, FEED_CONTENT_TYPE};
use catalog_publish::{ChannelAdapter, Publish, Verdict};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const EXPIRED: &str = r#"{"errors":[{"code":"Unauthorized","message":"Access to requested resource is denied.","details":"The access token you provided has expired."}]}"#;
const QUOTA: &str = r#"{"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource.","details":""}]}"#;

/// Which call of the Feeds API a scripted reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    CreateDocument,
    CreateFeed,
    GetFeed,
}

/// How the API answers one call of the Feeds API; after its script it behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// 403 `Unauthorized` to the first access token.
    Expired,
    /// 429 `QuotaExceeded` with `x-amzn-RateLimit-Limit: 0.0083`.
    Throttled,
    Status(u16),
}

/// How each created feed ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Processed after two reads (`IN_QUEUE`, `IN_PROGRESS`), then `DONE`.
    Done,
    Fatal,
    /// `IN_PROGRESS` forever.
    Never,
}

struct Shared {
    address: SocketAddr,
    script: VecDeque<(Call, Reply)>,
    ending: Ending,
    requests: Vec<Received>,
    n_tokens: usize,
    /// How long each token request waits for its answer, in turn; the rest answer at once.
    token_delays: VecDeque<Duration>,
    /// The token requests (counted from 1) answered 503.
    failing_tokens: HashSet<usize>,
    uploads: HashMap<String, Bytes>,
    /// Feed id → its document and the status reads it has had.
    feeds: HashMap<String, (String, usize)>,
    reports: HashMap<String, Vec<u8>>,
    /// Listings the platform holds, with their quantities.
    held: HashMap<String, i64>,
    /// SKUs whose messages the report refuses (a required attribute missing).
    invalid: HashSet<String>,
    /// How long an upload takes to be answered.
    upload_delay: Duration,
}

type Api = Arc<Mutex<Shared>>;

struct FeedsApi {
    address: SocketAddr,
    shared: Api,
}

fn record(shared: &mut Shared, method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) {
    shared.requests.push(Received::new(method, uri, headers, body));
}

async fn token(State(api): State<Api>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (n, delay) = {
        let mut shared = api.lock().expect("api state");
        record(&mut shared, method, &uri, headers, body);
        shared.n_tokens += 1;
        if shared.failing_tokens.contains(&shared.n_tokens) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        (shared.n_tokens, shared.token_delays.pop_front().unwrap_or_default())
    };
    tokio::time::sleep(delay).await;
    axum::Json(json!({"access_token": format!("Atza|token-{n}"), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

/// The scripted answer to `call`, if the script's next reply is for it: `Expired` holds until
/// a second token.
fn scripted(shared: &mut Shared, headers: &HeaderMap, call: Call) -> Option<Response> {
    let (to, reply) = *shared.script.front()?;
    if to != call {
        return None;
    }
    if reply == Reply::Expired && header(headers, "x-amz-access-token").as_deref() != Some("Atza|token-1") {
        shared.script.pop_front();
        return scripted(shared, headers, call);
    }
    shared.script.pop_front();
    let request_id = [("x-amzn-RequestId", "b7c1f0a2-0000-4000-8000-000000000002")];
    Some(match reply {
        Reply::Expired => {
            (StatusCode::FORBIDDEN, request_id, [("content-type", "application/json")], EXPIRED).into_response()
        }
        Reply::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            request_id,
            [("x-amzn-RateLimit-Limit", "0.0083"), ("content-type", "application/json")],
            QUOTA,
        )
            .into_response(),
        Reply::Status(status) => StatusCode::from_u16(status).expect("valid status").into_response(),
    })
}

async fn create_document(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shared = api.lock().expect("api state");
    record(&mut shared, method, &uri, headers.clone(), body);
    if let Some(response) = scripted(&mut shared, &headers, Call::CreateDocument) {
        return response;
    }
    let id = format!("amzn1.tortuga.4.na.doc-{}", shared.requests.len());
    let url = format!("http://{}/uploads/{id}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=5f1c", shared.address);
    (StatusCode::CREATED, axum::Json(json!({"feedDocumentId": id, "url": url}))).into_response()
}

async fn upload(
    State(api): State<Api>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = {
        let mut shared = api.lock().expect("api state");
        record(&mut shared, method, &uri, headers, body.clone());
        shared.uploads.insert(id, body);
        shared.upload_delay
    };
    tokio::time::sleep(delay).await;
    StatusCode::OK.into_response()
}

async fn create_feed(State(api): State<Api>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut shared = api.lock().expect("api state");
    record(&mut shared, method, &uri, headers.clone(), body.clone());
    if let Some(response) = scripted(&mut shared, &headers, Call::CreateFeed) {
        return response;
    }
    let specification: Value = serde_json::from_slice(&body).expect("createFeed body");
    let document = specification["inputFeedDocumentId"].as_str().expect("inputFeedDocumentId").to_owned();
    if !shared.uploads.contains_key(&document) {
        let error = json!({"errors": [{"code": "InvalidInput", "message": "The feed document was not uploaded."}]});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let id = format!("5039{}", shared.feeds.len() + 1);
    shared.feeds.insert(id.clone(), (document, 0));
    (StatusCode::ACCEPTED, axum::Json(json!({"feedId": id}))).into_response()
}

async fn feed_status(
    State(api): State<Api>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut shared = api.lock().expect("api state");
    record(&mut shared, method, &uri, headers.clone(), Bytes::new());
    if let Some(response) = scripted(&mut shared, &headers, Call::GetFeed) {
        return response;
    }
    let ending = shared.ending;
    let (document, reads) = shared.feeds.get_mut(&id).expect("a created feed");
    *reads += 1;
    let (reads, document) = (*reads, document.clone());
    let status = match (reads, ending) {
        (1, _) => "IN_QUEUE",
        (_, Ending::Never) | (2, _) => "IN_PROGRESS",
        (_, Ending::Fatal) => "FATAL",
        (_, Ending::Done) => "DONE",
    };
    let mut feed = json!({"feedId": id, "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": ["ATVPDKIKX0DER"],
        "createdTime": "2026-12-04T10:00:00Z", "processingStatus": status});
    if status == "DONE" {
        let report = process(&mut shared, &id, &document);
        let report_id = format!("amzn1.tortuga.4.na.report-{id}");
        shared.reports.insert(report_id.clone(), report);
        feed["resultFeedDocumentId"] = json!(report_id);
    }
    axum::Json(feed).into_response()
}

/// Applies a feed's messages as Amazon would and writes its processing report, GZIP'd.
fn process(shared: &mut Shared, feed_id: &str, document: &str) -> Vec<u8> {
    let feed: Value = serde_json::from_slice(&shared.uploads[document]).expect("an uploaded feed");
    let mut issues = Vec::new();
    let messages = feed["messages"].as_array().expect("messages");
    for message in messages {
        let sku = message["sku"].as_str().expect("sku").to_owned();
        if shared.invalid.contains(&sku) {
            issues.push(json!({"messageId": message["messageId"], "sku": sku, "code": "90220", "severity": "ERROR",
                "message": "'[batteries_required]' is required but not supplied."}));
            continue;
        }
        let quantity = message["patches"][0]["value"][0]["quantity"].as_i64().expect("quantity");
        shared.held.insert(sku, quantity);
    }
    let report = json!({
        "header": {"sellerId": feed["header"]["sellerId"], "version": "2.0", "feedId": feed_id},
        "issues": issues,
        "summary": {"errors": issues.len(), "warnings": 0, "messagesProcessed": messages.len(),
            "messagesAccepted": messages.len() - issues.len(), "messagesInvalid": issues.len()},
    });
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(report.to_string().as_bytes()).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn get_document(
    State(api): State<Api>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut shared = api.lock().expect("api state");
    record(&mut shared, method, &uri, headers, Bytes::new());
    let url = format!("http://{}/reports/{id}?X-Amz-Signature=9a2e", shared.address);
    axum::Json(json!({"feedDocumentId": id, "url": url, "compressionAlgorithm": "GZIP"})).into_response()
}

async fn download(
    State(api): State<Api>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut shared = api.lock().expect("api state");
    record(&mut shared, method, &uri, headers, Bytes::new());
    shared.reports[&id].clone().into_response()
}

impl FeedsApi {
    async fn start(script: Vec<(Call, Reply)>, ending: Ending) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let address = listener.local_addr().expect("address");
        let shared = Arc::new(Mutex::new(Shared {
            address,
            script: script.into(),
            ending,
            requests: Vec::new(),
            n_tokens: 0,
            token_delays: VecDeque::new(),
            failing_tokens: HashSet::new(),
            uploads: HashMap::new(),
            feeds: HashMap::new(),
            reports: HashMap::new(),
            held: HashMap::new(),
            invalid: HashSet::new(),
            upload_delay: Duration::ZERO,
        }));
        let app = Router::new()
            .route("/auth/o2/token", post(token))
            .route("/feeds/2021-06-30/documents", post(create_document))
            .route("/feeds/2021-06-30/documents/{id}", get(get_document))
            .route("/feeds/2021-06-30/feeds", post(create_feed))
            .route("/feeds/2021-06-30/feeds/{id}", get(feed_status))
            .route("/uploads/{id}", put(upload))
            .route("/reports/{id}", get(download))
            .with_state(Arc::clone(&shared));
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shared }
    }

    fn channel(&self, timeout: Duration) -> AmazonChannel {
        let feed = FeedSettings { poll_interval: Duration::from_millis(20), timeout };
        AmazonChannel::new(crate::amazon::config(self.address, Some(feed)), Duration::from_secs(5), 4)
            .expect("HTTP client")
    }

    fn requests(&self) -> Vec<Received> {
        self.shared.lock().expect("api state").requests.clone()
    }

    fn held(&self) -> HashMap<String, i64> {
        self.shared.lock().expect("api state").held.clone()
    }
}

fn publishes() -> Vec<Publish> {
    vec![
        publish_on("amazon", "ABC-1", "ABC-1 red/L", 7, None),
        publish_on("amazon", "ABC-2", "ABC-2", 0, None),
        publish_on("amazon", "ABC-3", "NO-BATTERY", 12, None),
    ]
}

/// Each request as `METHOD path`, the token it carried and its content type.
fn calls(requests: &[Received]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            let token = header(&request.headers, "x-amz-access-token").unwrap_or_else(|| "no token".into());
            let content_type = header(&request.headers, "content-type").unwrap_or_else(|| "-".into());
            format!("{} {} ({token}; {content_type})", request.method, request.path)
        })
        .collect()
}

#[tokio::test]
async fn amazon_feed_follows_the_feeds_api_reference() {
    let api = FeedsApi::start(vec![], Ending::Done).await;
    api.shared.lock().expect("api state").invalid.insert("NO-BATTERY".into());
    let batch = publishes();
    let sent = api.channel(Duration::from_secs(10)).send(&batch).await;

    let verdicts: Vec<&Verdict> = sent.attempts.iter().map(|attempt| &attempt.verdict).collect();
    assert_eq!(verdicts[..2], [&accepted(&batch[0]), &accepted(&batch[1])]);
    match verdicts[2] {
        Verdict::DeadLetter { reason, error, body } => {
            assert_eq!(reason, "rejected_invalid");
            assert_eq!(error, "90220: '[batteries_required]' is required but not supplied.");
            assert!(body.as_deref().is_some_and(|body| body.contains(r#""sku":"NO-BATTERY""#)), "{body:?}");
        }
        other => panic!("the refused message is dead-lettered, not {other:?}"),
    }
    assert_eq!(sent.attempts.iter().map(|attempt| attempt.status).collect::<Vec<_>>(), [Some(200); 3]);
    assert_eq!(api.held(), HashMap::from([("ABC-1 red/L".to_owned(), 7), ("ABC-2".to_owned(), 0)]));

    let requests = api.requests();
    let json = "application/json";
    assert_eq!(
        calls(&requests),
        [
            "POST /auth/o2/token (no token; application/x-www-form-urlencoded)".to_owned(),
            format!("POST /feeds/2021-06-30/documents (Atza|token-1; {json})"),
            format!("PUT /uploads/amzn1.tortuga.4.na.doc-2 (no token; {FEED_CONTENT_TYPE})"),
            format!("POST /feeds/2021-06-30/feeds (Atza|token-1; {json})"),
            "GET /feeds/2021-06-30/feeds/50391 (Atza|token-1; -)".to_owned(),
            "GET /feeds/2021-06-30/feeds/50391 (Atza|token-1; -)".to_owned(),
            "GET /feeds/2021-06-30/feeds/50391 (Atza|token-1; -)".to_owned(),
            "GET /feeds/2021-06-30/documents/amzn1.tortuga.4.na.report-50391 (Atza|token-1; -)".to_owned(),
            "GET /reports/amzn1.tortuga.4.na.report-50391 (no token; -)".to_owned(),
        ]
    );
    let body = |index: usize| serde_json::from_slice::<Value>(&requests[index].body).expect("a JSON body");
    assert_eq!(body(1), json!({"contentType": "application/json; charset=UTF-8"}));
    assert_eq!(requests[2].query.as_deref(), Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=5f1c"));
    let message = |id: usize, sku: &str, quantity: i64| {
        json!({"messageId": id, "sku": sku, "operationType": "PATCH", "productType": "SHIRT", "patches": [{
            "op": "merge", "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}]}]})
    };
    assert_eq!(
        body(2),
        json!({"header": {"sellerId": "A2SELLER01", "version": "2.0"},
            "messages": [message(1, "ABC-1 red/L", 7), message(2, "ABC-2", 0), message(3, "NO-BATTERY", 12)]})
    );
    assert_eq!(
        body(3),
        json!({"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": ["ATVPDKIKX0DER"],
            "inputFeedDocumentId": "amzn1.tortuga.4.na.doc-2"})
    );
    for request in requests.iter().filter(|request| request.path.starts_with("/feeds/")) {
        assert_eq!(header(&request.headers, "accept").as_deref(), Some(json), "{}", request.path);
    }
}

#[tokio::test]
async fn an_expired_token_is_renewed_and_a_throttled_feed_submits_nothing() {
    let api = FeedsApi::start(
        vec![(Call::CreateDocument, Reply::Expired), (Call::CreateDocument, Reply::Throttled)],
        Ending::Done,
    )
    .await;
    let batch = publishes();
    let sent = api.channel(Duration::from_secs(10)).send(&batch).await;
    // 0.0083 requests per second: the next token in 120.48 s.
    let wait = Duration::from_secs_f64(1.0 / 0.0083);
    for attempt in &sent.attempts {
        assert_eq!((&attempt.verdict, attempt.status), (&Verdict::Throttled { retry_after: wait }, Some(429)));
    }
    assert_eq!(sent.attempts.len(), 3);
    assert_eq!(
        calls(&api.requests()),
        [
            "POST /auth/o2/token (no token; application/x-www-form-urlencoded)",
            "POST /feeds/2021-06-30/documents (Atza|token-1; application/json)",
            "POST /auth/o2/token (no token; application/x-www-form-urlencoded)",
            "POST /feeds/2021-06-30/documents (Atza|token-2; application/json)",
        ],
        "nothing is uploaded or created once Amazon throttles"
    );
    assert!(api.held().is_empty());

    // The next send goes through with the renewed token.
    let sent = api.channel(Duration::from_secs(10)).send(&batch[..1]).await;
    assert_eq!(sent.attempts[0].verdict, accepted(&batch[0]));
}

/// The token expires while a submitted feed is read, and the token endpoint fails its renewal
/// once: the feed is read again once a token can be had, not given up on and its messages
/// submitted in a second feed (spending the platform's few feeds an hour).
#[tokio::test]
async fn a_token_endpoint_failing_while_a_feed_is_read_leaves_the_feed_to_be_read_again() {
    let api = FeedsApi::start(vec![(Call::GetFeed, Reply::Expired)], Ending::Done).await;
    api.shared.lock().expect("api state").failing_tokens.insert(2);
    let batch = publishes();
    let sent = api.channel(Duration::from_secs(30)).send(&batch).await;
    for (attempt, publish) in sent.attempts.iter().zip(&batch) {
        assert_eq!(attempt.verdict, accepted(publish));
    }
    let created = api.requests().iter().filter(|request| request.path == "/feeds/2021-06-30/feeds").count();
    assert_eq!(created, 1, "one feed, read to its end");
}

#[tokio::test]
async fn a_status_read_that_fails_is_read_again_and_a_fatal_feed_is_sent_again() {
    // The first status read answers 503; the feed then ends FATAL.
    let api = FeedsApi::start(vec![(Call::GetFeed, Reply::Status(503))], Ending::Fatal).await;
    let batch = publishes();
    let sent = api.channel(Duration::from_secs(10)).send(&batch).await;
    for attempt in &sent.attempts {
        match &attempt.verdict {
            Verdict::Retry { reason: "feed_fatal", error } => assert!(error.contains("aborted (FATAL)"), "{error}"),
            other => panic!("a FATAL feed's messages are sent again, not {other:?}"),
        }
    }
    let reads = api.requests().iter().filter(|request| request.path == "/feeds/2021-06-30/feeds/50391").count();
    assert_eq!(reads, 4, "503, IN_QUEUE, IN_PROGRESS, FATAL");
}

#[tokio::test]
async fn a_feed_not_done_in_time_is_sent_again_not_taken_as_accepted() {
    let api = FeedsApi::start(vec![], Ending::Never).await;
    let batch = publishes();
    let sent = api.channel(Duration::from_millis(300)).send(&batch).await;
    for attempt in &sent.attempts {
        assert!(matches!(&attempt.verdict, Verdict::Retry { reason: "feed_not_done", .. }), "{:?}", attempt.verdict);
    }
    assert_eq!(sent.attempts.len(), 3);
}

/// The drain loop over the feed adapter and a real store: 700 items go out in feeds as large
/// as the backlog (not rounds of 512), Amazon ends up holding each quantity, the one message
/// its report refuses is dead-lettered with Amazon's issue, and nothing is left waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_loop_sends_a_backlog_in_feeds_and_records_each_message_s_fate() {
    let api = FeedsApi::start(vec![], Ending::Done).await;
    api.shared.lock().expect("api state").invalid.insert("NO-BATTERY".into());
    let (store, _dir) = crate::store(&["amazon"]).await;
    let skus: Vec<String> = (0..700).map(|n| format!("SKU-{n:03}")).collect();
    let mut changes: Vec<(&str, i64)> = skus.iter().map(|sku| (sku.as_str(), 5)).collect();
    changes.push(("NO-BATTERY", 3));
    crate::set_many(&*store, 1, &changes).await;

    let channel = api.channel(Duration::from_secs(10));
    let mut config = catalog_publish::ChannelConfig::new("amazon");
    config.rate = Some(catalog_publish::Rate::from_plan(0.0083, Some(15)).expect("createFeed's plan"));
    config.request_timeout = Duration::from_secs(20);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let outbox: Arc<dyn catalog_store::prelude::CatalogStore> = Arc::clone(&store);
    let publisher = catalog_publish::ChannelPublisher::new(config, Arc::new(channel), outbox, Arc::new(crate::Quiet));
    let drained = tokio_util::sync::CancellationToken::new();
    drained.cancel();
    let published = tokio::time::timeout(
        Duration::from_secs(30),
        publisher.run(tokio_util::sync::CancellationToken::new(), drained),
    )
    .await
    .expect("drained within 30 s")
    .expect("publisher run");

    assert_eq!(published, 700);
    let held = api.held();
    assert_eq!(held.len(), 700);
    assert!(held.values().all(|quantity| *quantity == 5));
    let n_feeds = api.requests().iter().filter(|request| request.path == "/feeds/2021-06-30/feeds").count();
    assert!(n_feeds <= 2, "701 item versions in at most two feeds (one per lane), not {n_feeds}");
    let letters = store.open_dead_letters(10).await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "rejected_invalid");
    let depths = store.outbox_depth().await.expect("depth");
    assert_eq!(depths.iter().map(|depth| depth.pending).sum::<u64>(), 0, "nothing left waiting: {depths:?}");
}

/// Shutdown while a feed is waited for: the publisher stops at once instead of after the
/// feed's timeout, records nothing of the round, and gives its claims back, so the items
/// are due now rather than after their lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_feed_stops_at_once_and_gives_the_claims_back() {
    let shutdown = CancellationToken::new();
    let (_api, store, _dir, running) = a_feed_in_flight(Duration::from_secs(60), shutdown.clone()).await;
    shutdown.cancel();
    let published = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the publisher stops at once, not after the feed's timeout")
        .expect("publisher task")
        .expect("publisher run");
    assert_eq!(published, 0);
    let claim = catalog_store::OutboxClaim::immediate(10, Duration::from_secs(30));
    let due = store.claim_outbox("amazon", &claim).await.expect("claim");
    assert_eq!(due.len(), 2, "both items are due at once, not leased for the feed's 20 minutes");
    assert!(due.iter().all(|entry| entry.attempts == 0), "nothing was recorded: {due:?}");
}

/// A feed's round is leased for the feed's whole wait (42 minutes with Amazon's defaults), but
/// its claims are taken for the configured lease and renewed while the round runs: another
/// publisher never takes them while the feed is waited for, and a worker killed outright (no
/// shutdown, nothing given back) leaves them claimed one lease, not the round's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_feed_leaves_its_claims_held_one_lease_not_the_feed_s() {
    let (api, store, _dir, running) = a_feed_in_flight(Duration::from_millis(2_400), CancellationToken::new()).await;
    let claim = catalog_store::OutboxClaim::immediate(10, Duration::from_secs(30));
    // Three leases long, the feed in flight keeps its items.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(7_200) {
        let taken = store.claim_outbox("amazon", &claim).await.expect("claim");
        assert!(taken.is_empty(), "claimed by another publisher while the feed is waited for: {taken:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.abort();
    let killed = Instant::now();
    let due = loop {
        let due = store.claim_outbox("amazon", &claim).await.expect("claim");
        if !due.is_empty() || killed.elapsed() > Duration::from_secs(15) {
            break due;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(due.len(), 2, "both items are due within a lease of the kill, not after the feed's 20 minutes");
    assert!(due.iter().all(|entry| entry.attempts == 0), "nothing was recorded: {due:?}");
    let feeds = api.requests().iter().filter(|request| request.path == "/feeds/2021-06-30/feeds").count();
    assert_eq!(feeds, 1, "the round sent its feed once");
}

/// A publisher of channel `amazon` (claims leased for `lease`) sending items ABC-1 and ABC-2
/// in a feed that is never done, once the feed is created; it runs until `shutdown`.
async fn a_feed_in_flight(
    lease: Duration,
    shutdown: CancellationToken,
) -> (
    FeedsApi,
    Arc<dyn catalog_store::prelude::CatalogStore>,
    tempfile::TempDir,
    tokio::task::JoinHandle<Result<u64, catalog_publish::PublishError>>,
) {
    let api = FeedsApi::start(vec![], Ending::Never).await;
    let (store, dir) = crate::store(&["amazon"]).await;
    crate::set_many(&*store, 1, &[("ABC-1", 5), ("ABC-2", 6)]).await;
    let mut config = catalog_publish::ChannelConfig::new("amazon");
    config.request_timeout = Duration::from_secs(600);
    config.lease = lease;
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let channel = Arc::new(api.channel(Duration::from_secs(540)));
    let outbox: Arc<dyn catalog_store::OutboxStore> = Arc::clone(&store) as _;
    let publisher = catalog_publish::ChannelPublisher::new(config, channel, outbox, Arc::new(crate::Quiet));
    let running = tokio::spawn(publisher.run(shutdown, CancellationToken::new()));
    let submitted = async {
        while !api.requests().iter().any(|request| request.path == "/feeds/2021-06-30/feeds") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), submitted).await.expect("the feed is submitted");
    (api, store, dir, running)
}

/// The store out of reach while a feed's document is uploaded (slowly): the round's renewals
/// fail, its claims pass, and another publisher may hold the items at newer versions. The
/// feed is not created (it would be applied after theirs); nothing is recorded for the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_claims_passed_during_its_upload_is_not_created() {
    let api = FeedsApi::start(vec![], Ending::Done).await;
    api.shared.lock().expect("api state").upload_delay = Duration::from_millis(2_000);
    let (store, _dir) = crate::store(&["amazon"]).await;
    crate::set_many(&*store, 1, &[("ABC-1", 5), ("ABC-2", 6)]).await;
    let flaky = Arc::new(crate::Flaky::new(Arc::clone(&store)));
    flaky.extend_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut config = catalog_publish::ChannelConfig::new("amazon");
    config.request_timeout = Duration::from_secs(600);
    config.lease = Duration::from_millis(900);
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let channel = Arc::new(api.channel(Duration::from_secs(540)));
    let publisher = catalog_publish::ChannelPublisher::new(config, channel, flaky, Arc::new(crate::Quiet));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(publisher.run(shutdown.clone(), CancellationToken::new()));
    let uploaded = async {
        while !api.requests().iter().any(|request| request.path.starts_with("/uploads/")) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), uploaded).await.expect("the document is uploaded");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    shutdown.cancel();
    running.await.expect("task").expect("publisher run");
    let feeds = api.requests().iter().filter(|request| request.path == "/feeds/2021-06-30/feeds").count();
    assert_eq!(feeds, 0, "no feed created once the claims had passed");
    let due = store
        .claim_outbox("amazon", &catalog_store::OutboxClaim::immediate(10, Duration::from_secs(30)))
        .await
        .expect("claim");
    assert_eq!(due.len(), 2, "both items are due again");
    assert!(due.iter().all(|entry| entry.attempts == 0), "nothing was recorded: {due:?}");
}

/// Amazon answers `createFeed` that the access token expired, and Login with Amazon is slow to
/// give a new one while the store is out of reach: the round's claims pass between the
/// refused `createFeed` and the one sent again with the new token. That one is not sent, as
/// another publisher may hold the items at newer versions by then (decision 0046); nothing
/// is recorded for the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_claims_passed_while_its_token_was_renewed_is_not_created() {
    let api = FeedsApi::start(vec![(Call::CreateFeed, Reply::Expired)], Ending::Done).await;
    api.shared.lock().expect("api state").token_delays.extend([Duration::ZERO, Duration::from_millis(2_000)]);
    let (store, _dir) = crate::store(&["amazon"]).await;
    crate::set_many(&*store, 1, &[("ABC-1", 5), ("ABC-2", 6)]).await;
    let channel = Arc::new(api.channel(Duration::from_secs(540)));
    let created = || !api.shared.lock().expect("api state").feeds.is_empty();
    crate::run_until_lapsed_or_created("amazon", channel, Arc::clone(&store), created).await;
    let create_feed_calls: Vec<String> =
        calls(&api.requests()).into_iter().filter(|call| call.contains("/feeds/2021-06-30/feeds ")).collect();
    assert_eq!(
        create_feed_calls,
        ["POST /feeds/2021-06-30/feeds (Atza|token-1; application/json)"],
        "refused once for its token, then not sent again once the claims had passed"
    );
    assert!(!created(), "no feed created");
    let due = store
        .claim_outbox("amazon", &catalog_store::OutboxClaim::immediate(10, Duration::from_secs(30)))
        .await
        .expect("claim");
    assert_eq!(due.len(), 2, "both items are due again");
    assert!(due.iter().all(|entry| entry.attempts == 0), "nothing was recorded: {due:?}");
}

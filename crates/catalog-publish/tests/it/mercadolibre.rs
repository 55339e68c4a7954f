//! The Mercado Libre adapter against a Mercado Libre played over real HTTP (axum on
//! 127.0.0.1:0): `PUT /items/{item_id}`, a user product's stock (`GET` it with its
//! `x-version`, `PUT` it by location type with that version: 400 without one, 409 with a
//! stale one) and the OAuth token endpoint, with the request and
//! answer shapes of `docs/channels/mercadolibre.md`. The token endpoint rotates refresh tokens
//! as Mercado Libre does: each is good for one refresh, which answers the next. The server
//! records every request and answers each by the next scripted behavior, else with success.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::marketplace_support::{accepted, form_fields, header, publish_on};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use catalog_publish::marketplace::mercadolibre::{MercadoLibreChannel, MercadoLibreConfig};
use catalog_publish::{ChannelAdapter, Publish, Secret, Verdict, DEFAULT_RETRY_AFTER};
use serde_json::{json, Value};

const TOKEN_PATH: &str = "/oauth/token";
const ITEM_ID: &str = "MLA123456789";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// How the items API answers one request.
#[derive(Debug, Clone)]
enum Api {
    /// 200 with the updated item.
    Accept,
    /// 400 `validation_error` with the `not_modifiable` cause of a Full listing.
    Reject,
    /// 429 `local_rate_limited`, with `Retry-After` when given.
    Throttle(Option<&'static str>),
    /// 401: the access token expired.
    Expired,
    /// 500.
    ServerError,
    /// 200 showing the quantity the listing had (40), not the one sent: an account with
    /// multi-origin stock, where `available_quantity` on `/items` is ignored.
    IgnoreQuantity,
}

/// How the token endpoint answers one request, whatever refresh token it was given.
#[derive(Debug, Clone)]
enum Token {
    /// 400 `invalid_grant`.
    Refuse,
    /// 429 `local_rate_limited`, with this `Retry-After` if any.
    Throttle(Option<&'static str>),
    /// The refresh is done (the refresh token presented is spent), the answer sent this late.
    Slow(Duration),
    /// 200 with a page that is no token (a gateway's maintenance page).
    Garbage,
    /// The refresh is done, its access token said to last this many seconds.
    Lifetime(u64),
}

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    accept: Option<String>,
    traceparent: Option<String>,
    version: Option<String>,
    body: String,
}

struct Shared {
    api: VecDeque<Api>,
    token: VecDeque<Token>,
    requests: Vec<Recorded>,
    n_issued: u64,
    /// The one refresh token the endpoint takes next: each refresh spends it.
    refresh_token: String,
    /// Each user product's stock: its version and its locations.
    stocks: std::collections::HashMap<String, (u64, Vec<Value>)>,
    /// Writes of a user product's stock that another writer gets in first (the version moves
    /// on between the adapter's read and its write).
    overtaken: usize,
    /// How late the answer being made is sent.
    delay_answer: Duration,
    /// What the answer being made says its access token lasts, in seconds.
    expires_in: u64,
}

struct MercadoLibre {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

fn error(status: StatusCode, error: &str, message: &str, cause: Value) -> Response {
    let body = json!({"message": message, "error": error, "status": status.as_u16(), "cause": cause});
    (status, axum::Json(body)).into_response()
}

fn invalid_grant() -> Response {
    let body = json!({"error": "invalid_grant", "error_description": "Error validating grant. Your authorization code or refresh token may be expired or it was already used", "status": 400, "cause": []});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Every request lands here, recorded whatever its method and path, so a wrong one shows in
/// the test's assertion rather than as a bare 404.
async fn answer(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = answer_now(&shared, method, uri, headers, body);
    let delay = std::mem::take(&mut shared.lock().expect("Mercado Libre state").delay_answer);
    tokio::time::sleep(delay).await;
    response
}

fn answer_now(shared: &Mutex<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    let mut shared = shared.lock().expect("Mercado Libre state");
    shared.requests.push(Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: header(&headers, "authorization"),
        content_type: header(&headers, "content-type"),
        accept: header(&headers, "accept"),
        traceparent: header(&headers, "traceparent"),
        version: header(&headers, "x-version"),
        body: body.clone(),
    });
    if (&method, uri.path()) == (&Method::POST, TOKEN_PATH) {
        match shared.token.pop_front() {
            Some(Token::Refuse) => return invalid_grant(),
            Some(Token::Throttle(retry_after)) => {
                let body =
                    json!({"message": "local_rate_limited", "error": "too_many_requests", "status": 429, "cause": []});
                let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                if let Some(retry_after) = retry_after {
                    response.headers_mut().insert("retry-after", retry_after.parse().expect("a header value"));
                }
                return response;
            }
            Some(Token::Slow(delay)) => shared.delay_answer = delay,
            Some(Token::Lifetime(expires_in)) => shared.expires_in = expires_in,
            Some(Token::Garbage) => {
                return (StatusCode::OK, "<html><body>Down for maintenance</body></html>").into_response();
            }
            None => {}
        }
        let presented = form_fields(&body).into_iter().find(|(name, _)| name == "refresh_token");
        if presented.map(|(_, value)| value) != Some(shared.refresh_token.clone()) {
            return invalid_grant();
        }
        shared.n_issued += 1;
        let n = shared.n_issued;
        shared.refresh_token = format!("TG-{n}-241983636");
        let expires_in = std::mem::replace(&mut shared.expires_in, 21600);
        return axum::Json(json!({"access_token": format!("APP_USR-{n}-241983636"), "token_type": "bearer",
            "expires_in": expires_in, "scope": "offline_access read write", "user_id": 241983636,
            "refresh_token": shared.refresh_token}))
        .into_response();
    }
    let scripted = shared.api.pop_front();
    if let Some(failure) = scripted.as_ref().and_then(failed) {
        return failure;
    }
    if let Some(rest) = uri.path().strip_prefix("/user-products/") {
        return user_product_stock(&mut shared, &method, rest, &headers, &body);
    }
    let Some(item_id) = uri.path().strip_prefix("/items/").filter(|_| method == Method::PUT) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let quantity = serde_json::from_str::<Value>(&body).expect("a JSON body")["available_quantity"].clone();
    axum::Json(json!({"id": item_id, "available_quantity": quantity, "status": "active"})).into_response()
}

/// The answer of a scripted failure, of the items and user products APIs alike; `None` for
/// `Accept`.
fn failed(api: &Api) -> Option<Response> {
    let answer = match api {
        Api::Accept => return None,
        Api::Reject => error(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "Validation error",
            json!([{"code": "item.available_quantity.not_modifiable", "type": "error",
                    "message": "available_quantity is not modifiable for this item"}]),
        ),
        Api::Throttle(retry_after) => {
            let mut answer = error(StatusCode::TOO_MANY_REQUESTS, "local_rate_limited", "Too many requests", json!([]));
            if let Some(value) = retry_after {
                answer.headers_mut().insert("retry-after", value.parse().expect("a header value"));
            }
            answer
        }
        Api::Expired => error(StatusCode::UNAUTHORIZED, "not_found", "invalid access token", json!([])),
        Api::ServerError => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error", json!([]))
        }
        Api::IgnoreQuantity => {
            axum::Json(json!({"id": ITEM_ID, "available_quantity": 40, "status": "active"})).into_response()
        }
    };
    Some(answer)
}

/// `GET /user-products/{id}/stock` answers the locations and the stock's `x-version`;
/// `PUT /user-products/{id}/stock/type/{type}` needs that version (400 without, 409 when
/// stale), replaces the quantity at the locations it names and answers 204.
fn user_product_stock(shared: &mut Shared, method: &Method, rest: &str, headers: &HeaderMap, body: &str) -> Response {
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some((version, locations)) = shared.stocks.get(id).cloned() else {
        let message = format!("user product {id} not found");
        return error(StatusCode::NOT_FOUND, "not_found", &message, json!([]));
    };
    match (method, path) {
        (&Method::GET, "stock") => {
            let mut answer =
                axum::Json(json!({"locations": locations, "user_id": 241983636, "id": id})).into_response();
            answer.headers_mut().insert("x-version", version.to_string().parse().expect("a header value"));
            answer
        }
        (&Method::PUT, path) if path.starts_with("stock/type/") => {
            let location_type = path.trim_start_matches("stock/type/");
            let Some(presented) = header(headers, "x-version") else {
                return error(StatusCode::BAD_REQUEST, "bad_request", "x-version header is required", json!([]));
            };
            let mut version = version;
            if shared.overtaken > 0 {
                shared.overtaken -= 1;
                version += 1;
                shared.stocks.get_mut(id).expect("known").0 = version;
            }
            if presented != version.to_string() {
                return error(StatusCode::CONFLICT, "conflict", "version mismatch", json!([]));
            }
            let body: Value = serde_json::from_str(body).expect("a JSON body");
            let written: Vec<Value> = match location_type {
                "selling_address" => vec![json!({"type": "selling_address", "quantity": body["quantity"]})],
                _ => body["locations"]
                    .as_array()
                    .expect("locations")
                    .iter()
                    .map(|location| {
                        let mut location = location.clone();
                        location["type"] = json!(location_type);
                        location
                    })
                    .collect(),
            };
            let (stored_version, stored) = shared.stocks.get_mut(id).expect("known");
            for new in written {
                let same = |old: &Value| old["type"] == new["type"] && old["store_id"] == new["store_id"];
                stored.retain(|old| !same(old));
                stored.push(new);
            }
            *stored_version += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl MercadoLibre {
    async fn start(api: Vec<Api>, token: Vec<Token>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            api: api.into(),
            token: token.into(),
            requests: vec![],
            n_issued: 0,
            refresh_token: "TG-initial-241983636".to_owned(),
            delay_answer: Duration::ZERO,
            expires_in: 21600,
            stocks: std::collections::HashMap::from([(
                "MLBU206642488".to_owned(),
                (
                    41,
                    vec![
                        json!({"type": "selling_address", "quantity": 5}),
                        json!({"type": "meli_facility", "quantity": 40}),
                        json!({"type": "seller_warehouse", "store_id": "9876543", "network_node_id": "MXP123451", "quantity": 10}),
                        json!({"type": "seller_warehouse", "store_id": "9876544", "network_node_id": "MXP123452", "quantity": 3}),
                    ],
                ),
            )]),
            overtaken: 0,
        }));
        let app = Router::new().fallback(answer).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind Mercado Libre");
        let address = listener.local_addr().expect("address");
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shared }
    }

    fn channel(&self) -> MercadoLibreChannel {
        self.channel_keeping(None)
    }

    /// A channel that keeps its rotated refresh token in `refresh_token_file`.
    fn channel_keeping(&self, refresh_token_file: Option<std::path::PathBuf>) -> MercadoLibreChannel {
        let config = MercadoLibreConfig {
            base_url: format!("http://{}", self.address),
            token_url: format!("http://{}{TOKEN_PATH}", self.address),
            client_id: "4934588586838432".to_owned(),
            client_secret: Secret::new("meli-secret"),
            refresh_token: Secret::new("TG-initial-241983636"),
            refresh_token_file,
        };
        MercadoLibreChannel::new(config, Duration::from_secs(5), 4).expect("HTTP client")
    }

    /// What the user product's stock holds at each location (type, or store id).
    fn stock(&self, id: &str) -> Vec<(String, i64)> {
        let shared = self.shared.lock().expect("Mercado Libre state");
        let mut held: Vec<(String, i64)> = shared.stocks[id]
            .1
            .iter()
            .map(|location| {
                let place = location["store_id"].as_str().or(location["type"].as_str()).expect("a location");
                (place.to_owned(), location["quantity"].as_i64().expect("a quantity"))
            })
            .collect();
        held.sort();
        held
    }

    fn overtake(&self, writes: usize) {
        self.shared.lock().expect("Mercado Libre state").overtaken = writes;
    }

    fn token_requests(&self) -> Vec<Recorded> {
        let shared = self.shared.lock().expect("Mercado Libre state");
        shared.requests.iter().filter(|request| request.path == TOKEN_PATH).cloned().collect()
    }

    fn item_requests(&self) -> Vec<Recorded> {
        let shared = self.shared.lock().expect("Mercado Libre state");
        shared.requests.iter().filter(|request| request.path != TOKEN_PATH).cloned().collect()
    }
}

/// An item version of SKU `ABC-1` at catalog quantity 12, offered on listing `item_id` as
/// `quantity` by the rules.
fn publish(item_id: &str, quantity: i64, traceparent: Option<&str>) -> Publish {
    publish_on("mercadolibre", "ABC-1", item_id, quantity, traceparent)
}

/// The token request is Mercado Libre's refresh-token grant with the client's id and secret in
/// the form body (no query, no Basic authentication), presenting `refresh_token`.
fn assert_token_request(request: &Recorded, refresh_token: &str) {
    assert_eq!((&request.method, request.query.as_deref()), (&Method::POST, None));
    assert_eq!(request.authorization, None);
    assert_eq!(request.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(request.accept.as_deref(), Some("application/json"));
    let mut fields = form_fields(&request.body);
    fields.sort();
    let expected = [
        ("client_id", "4934588586838432"),
        ("client_secret", "meli-secret"),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    assert_eq!(fields, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_request_follows_the_documentation() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    assert_eq!(channel.max_batch(), 1);
    let sent = publish(ITEM_ID, 7, Some(TRACEPARENT));
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts.len(), 1);
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    assert_eq!(answer.pause, None);

    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_token_request(&tokens[0], "TG-initial-241983636");
    let updates = meli.item_requests();
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!(
        (&update.method, update.path.as_str(), update.query.as_deref()),
        (&Method::PUT, "/items/MLA123456789", None)
    );
    assert_eq!(update.authorization.as_deref(), Some("Bearer APP_USR-1-241983636"));
    assert_eq!(update.content_type.as_deref(), Some("application/json"));
    assert_eq!(update.accept.as_deref(), Some("application/json"));
    assert_eq!(update.traceparent.as_deref(), Some(TRACEPARENT));
    // The rules' quantity (7), not the catalog's (12).
    assert_eq!(serde_json::from_str::<Value>(&update.body).expect("JSON body"), json!({"available_quantity": 7}));

    // The access token is kept for the next request.
    channel.send(&[publish(ITEM_ID, 6, None)]).await;
    assert_eq!(channel.tokens_fetched().await, 1);
    assert_eq!(meli.item_requests()[1].traceparent, None);
}

/// A listing naming a variation (decision 0024) writes that variation alone, with the same
/// body, headers and token as an item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_variation_is_written_alone_on_its_own_path() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    let sent = publish("MLA123456789/174997747229", 4, Some(TRACEPARENT));
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    let updates = meli.item_requests();
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!(
        (&update.method, update.path.as_str(), update.query.as_deref()),
        (&Method::PUT, "/items/MLA123456789/variations/174997747229", None)
    );
    assert_eq!(update.authorization.as_deref(), Some("Bearer APP_USR-1-241983636"));
    assert_eq!(update.content_type.as_deref(), Some("application/json"));
    assert_eq!(update.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(serde_json::from_str::<Value>(&update.body).expect("JSON body"), json!({"available_quantity": 4}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_refresh_uses_the_refresh_token_the_last_refresh_returned() {
    let meli = MercadoLibre::start(vec![Api::Expired, Api::Accept, Api::Expired], vec![]).await;
    let channel = meli.channel();
    let sent = publish(ITEM_ID, 7, None);
    for _ in 0..2 {
        let answer = channel.send(std::slice::from_ref(&sent)).await;
        assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(200)));
    }
    assert_eq!(channel.tokens_fetched().await, 3);
    // Each refresh presents the refresh token the one before answered: the endpoint takes each
    // once only, so presenting the configured one again would have been refused.
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 3);
    for (request, refresh_token) in tokens.iter().zip(["TG-initial-241983636", "TG-1-241983636", "TG-2-241983636"]) {
        assert_token_request(request, refresh_token);
    }
    let authorizations: Vec<_> =
        meli.item_requests().iter().map(|request| request.authorization.clone().expect("a token")).collect();
    assert_eq!(
        authorizations,
        [
            "Bearer APP_USR-1-241983636",
            "Bearer APP_USR-2-241983636",
            "Bearer APP_USR-2-241983636",
            "Bearer APP_USR-3-241983636"
        ],
        "each expired answer is followed by the same request with the new token"
    );
}

/// A restart must not present the spent refresh token: the rotated one is kept in the file
/// before it is relied on, and a channel built afterwards starts from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_rotated_refresh_token_survives_a_restart_in_its_file() {
    let meli = MercadoLibre::start(vec![Api::Accept, Api::Accept], vec![]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    let sent = publish(ITEM_ID, 7, None);
    let before_restart = meli.channel_keeping(Some(file.clone()));
    let answer = before_restart.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].status, Some(200));
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-1-241983636");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the owner's only");
    }
    drop(before_restart);
    let after_restart = meli.channel_keeping(Some(file.clone()));
    let answer = after_restart.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].status, Some(200), "the kept token is accepted: {answer:?}");
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 2);
    assert_token_request(&tokens[0], "TG-initial-241983636");
    assert_token_request(&tokens[1], "TG-1-241983636");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-2-241983636");
}

/// A grant renewed by an operator in the environment after a refusal takes effect at the
/// restart, though the refresh token file still holds the revoked token: the file's is
/// presented first, refused, then the configured one, which is kept in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_renewed_in_the_environment_replaces_a_refused_one_in_the_file() {
    let meli = MercadoLibre::start(vec![Api::Accept], vec![]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    std::fs::write(&file, "TG-revoked-241983636").expect("the revoked token, kept");
    let answer = meli.channel_keeping(Some(file.clone())).send(&[publish(ITEM_ID, 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(200), "{answer:?}");
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 2);
    assert_token_request(&tokens[0], "TG-revoked-241983636");
    assert_token_request(&tokens[1], "TG-initial-241983636");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-1-241983636");
}

/// A send cancelled while its token is fetched (its timeout, a shutdown) does not lose the
/// refresh token the platform rotated: the fetch ends in a task of its own and keeps it, in
/// memory and in the file, and the next send uses the access token it brought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_rotated_refresh_token_is_kept_when_its_send_is_cancelled() {
    let meli = MercadoLibre::start(vec![Api::Accept], vec![Token::Slow(Duration::from_millis(400))]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    let channel = meli.channel_keeping(Some(file.clone()));
    let sent = publish(ITEM_ID, 7, None);
    let cancelled = tokio::time::timeout(Duration::from_millis(100), channel.send(std::slice::from_ref(&sent))).await;
    assert!(cancelled.is_err(), "the send was cut off while its token was fetched");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-1-241983636");
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].status, Some(200), "{answer:?}");
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 1, "the token the cancelled fetch brought is used: {tokens:?}");
}

/// A token endpoint saying its access token lasts `u64::MAX` seconds is taken for a day at
/// most, and the refresh token it rotated is kept first. Before, adding that lifetime to the
/// clock overflowed and panicked in the fetch's task, before the rotated token was kept:
/// Mercado Libre had spent the old one, and the channel was refused until the seller
/// authorized the application again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_token_said_to_last_for_ever_keeps_its_rotated_refresh_token() {
    let meli = MercadoLibre::start(vec![Api::Accept, Api::Accept], vec![Token::Lifetime(u64::MAX)]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    let channel = meli.channel_keeping(Some(file.clone()));
    let sent = publish(ITEM_ID, 7, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("TG-1-241983636"), "the rotated token is kept");
    assert_eq!(answer.attempts[0].status, Some(200), "{answer:?}");
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].status, Some(200), "{answer:?}");
    assert_eq!(meli.token_requests().len(), 1, "the access token is used while it lasts");
}

/// Two workers draining the same channel (or the old and the new one of a deploy) share its
/// refresh token file. Each refresh spends the token the other holds, so each reads the file
/// again before it refreshes and presents the newest token there, not the spent one it held
/// since it started (which Mercado Libre refused with `invalid_grant` until a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_workers_sharing_a_refresh_token_file_each_refresh_with_the_newest_token() {
    let meli = MercadoLibre::start(vec![Api::Accept, Api::Accept, Api::Expired], vec![]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    let first = meli.channel_keeping(Some(file.clone()));
    let second = meli.channel_keeping(Some(file.clone()));
    let sent = publish(ITEM_ID, 7, None);
    let answer = first.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].status, Some(200), "{answer:?}");
    let answer = second.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].verdict, accepted(&sent), "the second worker publishes: {answer:?}");
    // The first's access token expires: it refreshes with the token the second kept.
    let answer = first.send(std::slice::from_ref(&sent)).await;
    assert_eq!(answer.attempts[0].verdict, accepted(&sent), "the first worker publishes again: {answer:?}");
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 3, "no refresh refused: {tokens:?}");
    for (request, refresh_token) in tokens.iter().zip(["TG-initial-241983636", "TG-1-241983636", "TG-2-241983636"]) {
        assert_token_request(request, refresh_token);
    }
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-3-241983636");
}

/// Two workers sharing the file refresh at once: the second reads the file before the first
/// has kept the token its refresh rotated, and presents the one the first is spending.
/// Refused with `invalid_grant`, it reads the file once more and refreshes with the token the
/// first kept there meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_refresh_refused_as_spent_is_made_again_with_the_token_another_worker_kept() {
    // The first refresh is answered after 300 ms, the refusal of the second after a second.
    let slow = vec![Token::Slow(Duration::from_millis(300)), Token::Slow(Duration::from_millis(1_000))];
    let meli = MercadoLibre::start(vec![], slow).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    let first = meli.channel_keeping(Some(file.clone()));
    let second = meli.channel_keeping(Some(file.clone()));
    let sent = publish(ITEM_ID, 7, None);
    let second_send = async {
        while meli.token_requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        second.send(std::slice::from_ref(&sent)).await
    };
    let (first_answer, second_answer) = tokio::join!(first.send(std::slice::from_ref(&sent)), second_send);
    assert_eq!(first_answer.attempts[0].verdict, accepted(&sent), "{first_answer:?}");
    assert_eq!(second_answer.attempts[0].verdict, accepted(&sent), "the second worker publishes: {second_answer:?}");
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    for (request, refresh_token) in
        tokens.iter().zip(["TG-initial-241983636", "TG-initial-241983636", "TG-1-241983636"])
    {
        assert_token_request(request, refresh_token);
    }
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-2-241983636");
}

/// A rotated refresh token that could not be written to the file works until a restart, as
/// the error logged says: the spent one left in the file is not taken for another process's
/// newer token at the next refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_refresh_token_that_could_not_be_kept_is_used_until_a_restart() {
    let meli = MercadoLibre::start(vec![Api::Accept, Api::Expired], vec![]).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("meli-refresh-token");
    std::fs::write(&file, "TG-initial-241983636").expect("the configured token, kept");
    // The new token is written beside the file first: a directory there fails the write.
    std::fs::create_dir(file.with_extension("partial")).expect("a directory in the way");
    let channel = meli.channel_keeping(Some(file.clone()));
    let sent = publish(ITEM_ID, 7, None);
    for _ in 0..2 {
        let answer = channel.send(std::slice::from_ref(&sent)).await;
        assert_eq!(answer.attempts[0].verdict, accepted(&sent), "{answer:?}");
    }
    let tokens = meli.token_requests();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_token_request(&tokens[1], "TG-1-241983636");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "TG-initial-241983636", "never written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_batch_is_one_request_per_listing_and_a_rejection_fails_alone() {
    let meli = MercadoLibre::start(vec![Api::Accept, Api::Reject, Api::Accept], vec![]).await;
    let batch = [publish("MLA1", 5, None), publish("MLB2", 0, None), publish("MLM3", 2, None)];
    let answer = meli.channel().send(&batch).await;
    let updates: Vec<_> = meli
        .item_requests()
        .into_iter()
        .map(|request| (request.path, serde_json::from_str::<Value>(&request.body).expect("JSON")))
        .collect();
    assert_eq!(
        updates,
        [
            ("/items/MLA1".to_owned(), json!({"available_quantity": 5})),
            ("/items/MLB2".to_owned(), json!({"available_quantity": 0})),
            ("/items/MLM3".to_owned(), json!({"available_quantity": 2})),
        ]
    );
    assert_eq!(answer.attempts.len(), 3);
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&batch[0]), Some(200)));
    assert!(matches!(&answer.attempts[1].verdict, Verdict::DeadLetter { reason, .. } if reason == "rejected_400"));
    assert_eq!((&answer.attempts[2].verdict, answer.attempts[2].status), (&accepted(&batch[2]), Some(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_throttling_waits_as_told() {
    let meli = MercadoLibre::start(vec![Api::Throttle(Some("3")), Api::Throttle(None)], vec![]).await;
    let channel = meli.channel();
    for expected in [Duration::from_secs(3), DEFAULT_RETRY_AFTER] {
        let answer = channel.send(&[publish(ITEM_ID, 7, None)]).await;
        assert_eq!(
            (&answer.attempts[0].verdict, answer.attempts[0].status),
            (&Verdict::Throttled { retry_after: expected }, Some(429))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_refused_refresh_blocks_the_channel_as_token_refused() {
    let meli = MercadoLibre::start(vec![], vec![Token::Refuse]).await;
    let answer = meli.channel().send(&[publish(ITEM_ID, 7, None)]).await;
    assert_eq!(answer.attempts[0].status, None);
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Blocked { reason: "token_refused", error, .. } if error.contains("invalid_grant")),
        "{:?}",
        answer.attempts[0]
    );
    assert!(meli.item_requests().is_empty(), "nothing sent without a token");
}

/// A token endpoint that throttles holds the channel until its `Retry-After`, asked no more
/// meanwhile; one that names no wait, a moment. No request goes out without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_token_endpoint_holds_the_channel_until_its_retry_after() {
    let meli = MercadoLibre::start(vec![], vec![Token::Throttle(Some("30")), Token::Throttle(None)]).await;
    let channel = meli.channel();
    for _ in 0..3 {
        let answer = channel.send(&[publish(ITEM_ID, 7, None)]).await;
        assert_eq!(answer.attempts[0].status, None);
        match &answer.attempts[0].verdict {
            Verdict::Unavailable { reason: "token_unavailable", error, retry_after } => {
                assert!(error.contains("HTTP 429"), "{error}");
                assert!(
                    *retry_after > Duration::from_secs(29) && *retry_after <= Duration::from_secs(30),
                    "{retry_after:?}"
                );
            }
            verdict => panic!("not held for the token endpoint: {verdict:?}"),
        }
    }
    assert_eq!(meli.token_requests().len(), 1, "asked once in its Retry-After");
    assert!(meli.item_requests().is_empty(), "nothing sent without a token");

    // No Retry-After: held a moment, then asked again.
    let channel = meli.channel();
    let answer = channel.send(&[publish(ITEM_ID, 7, None)]).await;
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Unavailable { retry_after, .. } if *retry_after == Duration::from_secs(2)),
        "{answer:?}"
    );
}

/// A refused grant answers the sends after it for a while without asking the endpoint again:
/// every lane's every send asking it made up to the channel's rate of token requests, which
/// Mercado Libre counts against the application, all its sellers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_is_not_asked_again_at_every_send() {
    let meli = MercadoLibre::start(vec![], vec![Token::Refuse]).await;
    let channel = meli.channel();
    for _ in 0..5 {
        let answer = channel.send(&[publish(ITEM_ID, 7, None)]).await;
        assert!(matches!(&answer.attempts[0].verdict, Verdict::Blocked { reason: "token_refused", .. }), "{answer:?}");
    }
    assert_eq!(meli.token_requests().len(), 1, "asked once");
    assert!(meli.item_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_still_expired_after_a_refresh_is_unauthorized() {
    let meli = MercadoLibre::start(vec![Api::Expired, Api::Expired], vec![]).await;
    let channel = meli.channel();
    let answer = channel.send(&[publish(ITEM_ID, 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(401));
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Blocked { reason: "unauthorized", error, .. } if error.contains("invalid access token")),
        "{:?}",
        answer.attempts[0]
    );
    assert_eq!((channel.tokens_fetched().await, meli.item_requests().len()), (2, 2), "refreshed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_validation_error_is_dead_lettered_with_message_and_body() {
    let meli = MercadoLibre::start(vec![Api::Reject], vec![]).await;
    let answer = meli.channel().send(&[publish(ITEM_ID, 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(400));
    let Verdict::DeadLetter { reason, error, body } = &answer.attempts[0].verdict else {
        panic!("dead-lettered, not {:?}", answer.attempts[0]);
    };
    assert_eq!(
        (reason.as_str(), error.as_str()),
        (
            "rejected_400",
            "Validation error (validation_error); item.available_quantity.not_modifiable: available_quantity is not modifiable for this item"
        )
    );
    let body: Value = serde_json::from_str(body.as_deref().expect("a body")).expect("Mercado Libre's body");
    assert_eq!(
        (&body["error"], &body["cause"][0]["code"]),
        (&json!("validation_error"), &json!("item.available_quantity.not_modifiable"))
    );
}

/// Before, any 200 to an item's write was published: on an account with multi-origin stock,
/// Mercado Libre answers 200 with the quantity the listing kept, and the listing stayed where
/// it was while the item showed as published. Then it was dead-lettered on that one answer,
/// which a sale during the write, or a change not shown yet, also gives: it is retried, and
/// dead-lettered only once the channel's attempts are spent. A variation's answer is not
/// checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_item_whose_200_shows_another_quantity_is_retried_not_published() {
    let meli = MercadoLibre::start(vec![Api::IgnoreQuantity, Api::IgnoreQuantity], vec![]).await;
    let batch = [publish(ITEM_ID, 7, None), publish("MLA123456789/174997747229", 7, None)];
    let answer = meli.channel().send(&batch).await;
    assert_eq!(answer.attempts[0].status, Some(200));
    let Verdict::Retry { reason, error } = &answer.attempts[0].verdict else {
        panic!("retried, not {:?}", answer.attempts[0]);
    };
    assert_eq!(*reason, "quantity_not_applied");
    assert!(error.contains("available_quantity 40 for 7 sent") && error.contains("up:{user_product_id}@"), "{error}");
    assert_eq!((&answer.attempts[1].verdict, answer.attempts[1].status), (&accepted(&batch[1]), Some(200)));
}

/// Drained, an item whose every 200 shows another quantity (a multi-origin account) is
/// retried, then dead-lettered `retries_exhausted` once the channel's attempts are spent, the
/// error naming the quantity not applied. Before, its first answer dead-lettered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_quantity_never_applied_is_dead_lettered_once_its_attempts_are_spent() {
    use catalog_publish::{ChannelConfig, ChannelPublisher};
    use tokio_util::sync::CancellationToken;

    let meli = MercadoLibre::start(vec![Api::IgnoreQuantity, Api::IgnoreQuantity], vec![]).await;
    let (store, _directory) = crate::store(&["mercadolibre"]).await;
    crate::set(&*store, 1, "MLA1", 5).await;
    let mut config = ChannelConfig::new("mercadolibre");
    (config.settle, config.max_wait, config.max_attempts) = (Duration::ZERO, Duration::ZERO, 2);
    let outbox: Arc<dyn catalog_store::OutboxStore> = store.clone();
    let publisher = ChannelPublisher::new(config, Arc::new(meli.channel()), outbox, Arc::new(crate::Quiet));
    let drained = CancellationToken::new();
    drained.cancel();
    let run = publisher.run(CancellationToken::new(), drained);
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("the drain ends").expect("drained");

    let id = catalog_core::ItemId(crate::item_id("MLA1").parse().expect("uuid"));
    let trace = store.item_trace(id).await.expect("trace").expect("item");
    let attempts: Vec<_> = trace.publish_attempts.iter().map(|a| (a.result.as_str(), a.attempt)).collect();
    assert_eq!(attempts, [("retry", 1), ("dead_lettered", 2)], "{attempts:?}");
    let letters = store.open_dead_letters(10).await.expect("letters");
    let error = letters[0].error.as_deref().unwrap_or_default();
    assert_eq!(letters[0].reason, "retries_exhausted");
    assert!(
        error.starts_with("quantity_not_applied: ") && error.contains("available_quantity 40 for 5 sent"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_server_error_is_retried() {
    let meli = MercadoLibre::start(vec![Api::ServerError], vec![]).await;
    let answer = meli.channel().send(&[publish(ITEM_ID, 7, None)]).await;
    assert_eq!(answer.attempts[0].status, Some(500));
    assert!(
        matches!(&answer.attempts[0].verdict, Verdict::Retry { reason: "server_error", error } if error.contains("internal_error")),
        "{:?}",
        answer.attempts[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_listing_that_is_no_item_id_is_dead_lettered_unsent() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let listings = ["../users/me", "", "MLA1/", "MLA1/abc", "/174997747229", "MLA1/1/2", "MLA1/../../users/me"];
    let batch: Vec<Publish> = listings.iter().map(|listing| publish(listing, 7, None)).collect();
    let answer = meli.channel().send(&batch).await;
    for attempt in &answer.attempts {
        assert!(
            matches!(&attempt.verdict, Verdict::DeadLetter { reason, body: None, .. } if reason == "invalid_listing"),
            "{attempt:?}"
        );
    }
    assert_eq!(answer.attempts.len(), listings.len());
    assert!(meli.shared.lock().expect("Mercado Libre state").requests.is_empty(), "nothing sent, not even for a token");
}

/// A user product's stock at the selling address (decision 0027): its version read, then
/// written with it, as the User Products documentation says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_user_product_stock_is_written_with_the_version_it_read() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    let sent = publish("up:MLBU206642488", 7, Some(TRACEPARENT));
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(204)));

    let requests = meli.item_requests();
    let shape: Vec<(&Method, &str, Option<&str>, Option<&str>)> = requests
        .iter()
        .map(|request| (&request.method, request.path.as_str(), request.query.as_deref(), request.version.as_deref()))
        .collect();
    assert_eq!(
        shape,
        [
            (&Method::GET, "/user-products/MLBU206642488/stock", None, None),
            (&Method::PUT, "/user-products/MLBU206642488/stock/type/selling_address", None, Some("41")),
        ]
    );
    for request in &requests {
        assert_eq!(request.authorization.as_deref(), Some("Bearer APP_USR-1-241983636"));
        assert_eq!(request.accept.as_deref(), Some("application/json"));
    }
    let write = &requests[1];
    assert_eq!(write.content_type.as_deref(), Some("application/json"));
    assert_eq!(write.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(serde_json::from_str::<Value>(&write.body).expect("JSON body"), json!({"quantity": 7}));
    assert_eq!(
        meli.stock("MLBU206642488"),
        [("9876543".into(), 10), ("9876544".into(), 3), ("meli_facility".into(), 40), ("selling_address".into(), 7)]
    );
}

/// A multi-warehouse seller's listing names the store and network node its quantity is kept
/// at; the seller's other warehouses and Mercado Libre's own (Full) stock are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_warehouse_stock_is_written_at_its_store_alone() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    let sent = publish("up:MLBU206642488@9876543/MXP123451", 8, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(204)));
    let write = &meli.item_requests()[1];
    assert_eq!(
        (&write.method, write.path.as_str(), write.version.as_deref()),
        (&Method::PUT, "/user-products/MLBU206642488/stock/type/seller_warehouse", Some("41"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&write.body).expect("JSON body"),
        json!({"locations": [{"store_id": "9876543", "network_node_id": "MXP123451", "quantity": 8}]})
    );
    assert_eq!(
        meli.stock("MLBU206642488"),
        [("9876543".into(), 8), ("9876544".into(), 3), ("meli_facility".into(), 40), ("selling_address".into(), 5)]
    );
}

/// A version that moved on between the read and the write (409) is read again; one that keeps
/// moving leaves the attempt to be retried, never written blind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_stale_stock_version_is_read_again_then_retried() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    meli.overtake(1);
    let sent = publish("up:MLBU206642488", 6, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!((&answer.attempts[0].verdict, answer.attempts[0].status), (&accepted(&sent), Some(204)));
    let versions: Vec<(Method, Option<String>)> =
        meli.item_requests().into_iter().map(|request| (request.method, request.version)).collect();
    assert_eq!(
        versions,
        [(Method::GET, None), (Method::PUT, Some("41".into())), (Method::GET, None), (Method::PUT, Some("42".into()))]
    );
    assert!(meli.stock("MLBU206642488").contains(&("selling_address".into(), 6)));

    meli.overtake(3);
    let answer = channel.send(&[publish("up:MLBU206642488", 2, None)]).await;
    match &answer.attempts[0].verdict {
        Verdict::Retry { reason, error } => {
            assert_eq!(*reason, "stock_version_conflict");
            assert!(error.contains("409"), "{error}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(meli.item_requests().len(), 4 + 6, "three reads and three writes");
    assert!(meli.stock("MLBU206642488").contains(&("selling_address".into(), 6)), "nothing written blind");
}

/// A user product Mercado Libre does not know is dead-lettered with its answer; a malformed
/// `up:` listing is dead-lettered before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_unknown_user_product_and_malformed_listing_are_dead_lettered() {
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    let answer = channel.send(&[publish("up:MLBU1", 6, None)]).await;
    match &answer.attempts[0].verdict {
        Verdict::DeadLetter { reason, error, .. } => {
            assert_eq!((reason.as_str(), answer.attempts[0].status), ("rejected_404", Some(404)));
            assert!(error.contains("user product MLBU1 not found"), "{error}");
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let answer = channel.send(&[publish("up:MLBU206642488@9876543", 6, None)]).await;
    match &answer.attempts[0].verdict {
        Verdict::DeadLetter { reason, .. } => assert_eq!(reason, "invalid_listing"),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(meli.item_requests().len(), 1, "the malformed listing sent nothing");
}

/// Reconciliation reads a user product's stock at the listing's location, beside the items of
/// the multiget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_reads_back_user_product_stock_at_each_listing_s_location() {
    use catalog_publish::LookupReadBack;
    let meli = MercadoLibre::start(vec![], vec![]).await;
    let channel = meli.channel();
    let listings = ["up:MLBU206642488", "up:MLBU206642488@9876544/MXP123452", "up:MLBU206642488@1/MXP1", "up:MLBU1"];
    // Paced by what it asks: a stock read per user product, beside the items' one multiget.
    assert_eq!(channel.requests_per_read(&listings), 5);
    assert_eq!(channel.requests_per_read(&["MLA1", "MLA2/174997747229", "up:MLBU1"]), 2);
    let shown = channel.shown_quantities(&listings).await.expect("read back");
    let mut shown: Vec<(String, i64)> = shown.into_iter().collect();
    shown.sort();
    assert_eq!(shown, [("up:MLBU206642488".into(), 5), ("up:MLBU206642488@9876544/MXP123452".into(), 3)]);
    let reads: Vec<String> =
        meli.item_requests().iter().map(|request| format!("{} {}", request.method, request.path)).collect();
    assert_eq!(
        reads,
        vec!["GET /user-products/MLBU206642488/stock".to_owned(); 3]
            .into_iter()
            .chain(["GET /user-products/MLBU1/stock".to_owned()])
            .collect::<Vec<_>>()
    );
}

/// The stock endpoints answer an expired token and throttling as the items API does: the read
/// is made again with a new token, and a 429 on the write holds the channel as told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercadolibre_user_product_stock_renews_its_token_and_waits_when_throttled() {
    let meli = MercadoLibre::start(vec![Api::Expired, Api::Accept, Api::Throttle(Some("4"))], vec![]).await;
    let channel = meli.channel();
    let sent = publish("up:MLBU206642488", 9, None);
    let answer = channel.send(std::slice::from_ref(&sent)).await;
    assert_eq!(
        (&answer.attempts[0].verdict, answer.attempts[0].status),
        (&Verdict::Throttled { retry_after: Duration::from_secs(4) }, Some(429))
    );
    let requests: Vec<(Method, String, Option<String>)> = meli
        .item_requests()
        .into_iter()
        .map(|request| (request.method, request.authorization.unwrap_or_default(), request.version))
        .collect();
    assert_eq!(
        requests,
        [
            (Method::GET, "Bearer APP_USR-1-241983636".to_owned(), None),
            (Method::GET, "Bearer APP_USR-2-241983636".to_owned(), None),
            (Method::PUT, "Bearer APP_USR-2-241983636".to_owned(), Some("41".to_owned())),
        ]
    );
    assert_eq!(meli.token_requests().len(), 2);
    assert!(
        meli.stock("MLBU206642488").contains(&("selling_address".into(), 5)),
        "the throttled write changed nothing"
    );
}

/// Drains one item for 1.5 s on a channel whose token endpoint answers `token`, with one
/// attempt of budget (a send counted as a failure dead-letters the item at once). Checks what
/// holding the channel means: nothing dead-lettered, the item waiting, one send recorded
/// `throttled`, the endpoint asked once. Returns that attempt's error and the reasons the
/// channel was told blocked for.
async fn held_by_the_token_endpoint(token: Token) -> (String, Vec<String>) {
    use catalog_publish::{ChannelConfig, ChannelPublisher, PublishEvents};
    use catalog_store::{OutboxEntry, PublishRecord, ResolvedDeadLetter};
    use tokio_util::sync::CancellationToken;

    #[derive(Default)]
    struct Blocked(Mutex<Vec<String>>);
    impl PublishEvents for Blocked {
        fn attempted(&self, _: &OutboxEntry, _: &PublishRecord) {}
        fn resolved(&self, _: &ResolvedDeadLetter) {}
        fn lease_ran_out(&self, _: &OutboxEntry) {}
        fn blocked(&self, channel: &str, reason: &str, _error: &str) {
            assert_eq!(channel, "mercadolibre");
            self.0.lock().expect("blocked").push(reason.to_owned());
        }
    }

    let meli = MercadoLibre::start(vec![], vec![token]).await;
    let (store, _dir) = crate::store(&["mercadolibre"]).await;
    crate::set(&*store, 1, "MLA1", 5).await;
    let mut config = ChannelConfig::new("mercadolibre");
    config.max_attempts = 1;
    config.settle = Duration::ZERO;
    config.max_wait = Duration::ZERO;
    let events = Arc::new(Blocked::default());
    let outbox: Arc<dyn catalog_store::OutboxStore> = store.clone();
    let publisher = ChannelPublisher::new(config, Arc::new(meli.channel()), outbox, events.clone());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        stop.cancel();
    });
    publisher.run(shutdown, CancellationToken::new()).await.expect("publisher run");

    assert!(store.open_dead_letters(10).await.expect("letters").is_empty(), "nothing dead-lettered");
    assert_eq!(store.stale_items("mercadolibre").await.expect("stale"), 1, "the item waits");
    let id = catalog_core::ItemId(crate::item_id("MLA1").parse().expect("uuid"));
    let trace = store.item_trace(id).await.expect("trace").expect("item");
    let attempts: Vec<_> = trace.publish_attempts.iter().map(|a| (a.result.as_str(), a.attempt)).collect();
    assert_eq!(attempts, [("throttled", 1)], "one send, then the channel is held: {attempts:?}");
    assert_eq!(meli.token_requests().len(), 1, "the endpoint asked once");
    let error = trace.publish_attempts[0].error.clone().unwrap_or_default();
    let blocked = events.0.lock().expect("blocked").clone();
    (error, blocked)
}

/// A token endpoint throttling or failing is no item's failure: the drain loop holds the
/// channel until its `Retry-After` and records the send as throttled, with its reason. Counted
/// as a retry, it spent the item's attempts without a request going out: with one attempt of
/// budget, the item was dead-lettered `retries_exhausted` at its first send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_token_endpoint_spends_no_attempt() {
    let (error, blocked) = held_by_the_token_endpoint(Token::Throttle(Some("30"))).await;
    assert!(error.starts_with("token_unavailable: ") && error.contains("HTTP 429"), "{error}");
    assert!(blocked.is_empty(), "no operator is needed: {blocked:?}");
}

/// A token endpoint answering with something that is no token (a login or maintenance page:
/// most likely a `token_url` that is not the token endpoint) holds the channel for an
/// operator, and the send spends no attempt. Read as the send's failure, every item coming due
/// spent an attempt without a request going out, and the whole budget was gone in under a
/// minute: with one attempt, at the first send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_answering_garbage_spends_no_attempt() {
    let (error, blocked) = held_by_the_token_endpoint(Token::Garbage).await;
    assert!(error.starts_with("token_malformed: "), "{error}");
    assert_eq!(blocked, ["token_malformed"], "an operator is told");
}

/// Refused credentials stay refused until an operator renews them: the drain loop holds the
/// channel and records the sends as throttled, spending none of the item's attempts. Spent,
/// a refusal lasting an evening dead-lettered every item it touched, then quarantined them,
/// and reconciliation never looks at an item whose version was never accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_hold_the_channel_and_spend_no_attempt() {
    let (error, blocked) = held_by_the_token_endpoint(Token::Refuse).await;
    assert!(error.starts_with("token_refused: ") && error.contains("invalid_grant"), "{error}");
    assert_eq!(blocked, ["token_refused"]);
}

/// What a drain ended with, the store (and its directory) and the platform after it.
type Drained =
    (Result<u64, catalog_publish::PublishError>, Arc<dyn catalog_store::CatalogStore>, tempfile::TempDir, MercadoLibre);

/// Drains one item on a channel whose token endpoint answers `tokens` in turn, for at most
/// 90 s.
async fn drain_with_tokens(tokens: Vec<Token>) -> Drained {
    use catalog_publish::{ChannelConfig, ChannelPublisher};
    use tokio_util::sync::CancellationToken;

    let meli = MercadoLibre::start(vec![], tokens).await;
    let (store, directory) = crate::store(&["mercadolibre"]).await;
    crate::set(&*store, 1, "MLA1", 5).await;
    let mut config = ChannelConfig::new("mercadolibre");
    (config.settle, config.max_wait) = (Duration::ZERO, Duration::ZERO);
    let outbox: Arc<dyn catalog_store::OutboxStore> = store.clone();
    let publisher = ChannelPublisher::new(config, Arc::new(meli.channel()), outbox, Arc::new(crate::Quiet));
    let drained = CancellationToken::new();
    drained.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(90), publisher.run(CancellationToken::new(), drained))
        .await
        .expect("the drain ends");
    (ended, store, directory, meli)
}

/// A drain (a file or `--once` run) on a channel whose credentials the platform refuses ends,
/// saying so, with the item still waiting and nothing dead-lettered: its sends spend no
/// attempt, so waiting for the channel to empty sent the same item every hold, for ever. It
/// ends at the second refusal in a row, after the hold the first put on the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_while_the_credentials_are_refused() {
    let (ended, store, _directory, meli) = drain_with_tokens(vec![Token::Refuse, Token::Refuse]).await;
    match ended {
        Err(catalog_publish::PublishError::Blocked { channel, reason, error }) => {
            assert_eq!((channel.as_str(), reason), ("mercadolibre", "token_refused"));
            assert!(error.contains("invalid_grant"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(store.open_dead_letters(10).await.expect("letters").is_empty(), "nothing dead-lettered");
    assert_eq!(store.stale_items("mercadolibre").await.expect("stale"), 1, "the item waits for the next run");
    assert_eq!(meli.token_requests().len(), 2, "asked again after the hold, then given up");
}

/// One refusal does not end a drain: it may be about one item, or gone by the next send, which
/// here the platform takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_goes_on_after_one_refusal() {
    let (ended, store, _directory, meli) = drain_with_tokens(vec![Token::Refuse]).await;
    assert_eq!(ended.expect("the drain ends by itself"), 1, "published after the hold");
    assert_eq!(store.stale_items("mercadolibre").await.expect("stale"), 0);
    assert_eq!(meli.token_requests().len(), 2);
}

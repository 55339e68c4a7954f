//! The access token cache against a token endpoint played over real HTTP (axum on
//! 127.0.0.1:0): a client-credentials grant answered by a script of answers, a token with
//! a lifetime of a few seconds so that its renewal and its expiry fall within the test.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use catalog_publish::{ClientAuth, Grant, Secret, TokenCache, TokenEndpoint, TokenError};
use serde_json::json;

/// How the token endpoint answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// 200 with token `token-{n}` (the `n`th request) good for this many seconds.
    Token { expires_in: u64 },
    /// This status, without `Retry-After`.
    Status(u16),
    /// 400 `{"error": "invalid_grant"}`: the grant revoked, or its refresh token spent.
    InvalidGrant,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    n_requests: usize,
}

struct TokenApi {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

async fn token(State(shared): State<Arc<Mutex<Shared>>>) -> Response {
    let mut shared = shared.lock().expect("token endpoint state");
    shared.n_requests += 1;
    match shared.script.pop_front().expect("a scripted answer for every token request") {
        Reply::Token { expires_in } => axum::Json(
            json!({"access_token": format!("token-{}", shared.n_requests), "token_type": "Bearer", "expires_in": expires_in}),
        )
        .into_response(),
        Reply::Status(status) => StatusCode::from_u16(status).expect("a status").into_response(),
        Reply::InvalidGrant => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response(),
    }
}

impl TokenApi {
    async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), n_requests: 0 }));
        let app = Router::new().fallback(token).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind token endpoint");
        let address = listener.local_addr().expect("address");
        // The server lives as long as the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, shared }
    }

    fn cache(&self) -> TokenCache {
        let endpoint = TokenEndpoint {
            url: format!("http://{}/v3/token", self.address),
            client_id: "client".to_owned(),
            client_secret: Secret::new("secret"),
            grant: Grant::ClientCredentials,
            client_auth: ClientAuth::Basic,
            extra_form: vec![],
            extra_headers: vec![],
        };
        TokenCache::new(endpoint, reqwest::Client::new())
    }

    fn n_requests(&self) -> usize {
        self.shared.lock().expect("token endpoint state").n_requests
    }
}

/// Before, a renewal that failed threw the cached token away: a Walmart token (900 s) renewed
/// a minute early, with the endpoint answering 503 or 429, held the channel as
/// `token_unavailable` although the token was good for that minute more. Here a token of 2 s
/// is renewed after 1 s (half its life, as the minute ahead is longer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_renewal_fails_is_used_until_it_expires() {
    let api = TokenApi::start(vec![Reply::Token { expires_in: 2 }, Reply::Status(503)]).await;
    let tokens = api.cache();
    let first = tokens.access_token().await.expect("a token");
    let issued = Instant::now();
    assert_eq!(first.expose(), "token-1");

    tokio::time::sleep_until((issued + Duration::from_millis(1200)).into()).await;
    let during_renewal = tokens.access_token().await.map(|token| token.expose().to_owned());
    assert_eq!(during_renewal, Ok("token-1".to_owned()), "the renewal failed: the token is still good");
    assert_eq!(api.n_requests(), 2, "the renewal was asked for");
    let while_held = tokens.access_token().await.map(|token| token.expose().to_owned());
    assert_eq!(while_held, Ok("token-1".to_owned()));
    assert_eq!(api.n_requests(), 2, "the endpoint's failure is held for a while, not asked again");

    tokio::time::sleep_until((issued + Duration::from_millis(2100)).into()).await;
    match tokens.access_token().await {
        Err(TokenError::Unavailable { .. }) => {}
        other => panic!("an expired token is not used: expected the endpoint unavailable, got {other:?}"),
    }
    assert_eq!(tokens.n_fetched().await, 1);
}

/// A renewal the endpoint refuses (`invalid_grant`: the grant revoked, its refresh token
/// spent) is answered at once, and so while its refusal is held. Before, the cached token
/// was answered until it expired (up to 6 h on Mercado Libre): no `token_refused`, no
/// CatalogChannelCredentialsRefused, until the channel stopped with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_renewal_is_refused_is_not_used_any_longer() {
    let api = TokenApi::start(vec![Reply::Token { expires_in: 2 }, Reply::InvalidGrant]).await;
    let tokens = api.cache();
    let first = tokens.access_token().await.expect("a token");
    let issued = Instant::now();
    assert_eq!(first.expose(), "token-1");

    tokio::time::sleep_until((issued + Duration::from_millis(1200)).into()).await;
    for asked in ["the renewal", "while its refusal is held"] {
        match tokens.access_token().await {
            Err(TokenError::Refused { status: 400, body }) => assert!(body.contains("invalid_grant"), "{body}"),
            other => panic!("{asked}: the refusal is answered, not the cached token: got {other:?}"),
        }
        assert_eq!(api.n_requests(), 2, "{asked}: the renewal was asked for once");
    }
    assert_eq!(tokens.n_fetched().await, 1);
}

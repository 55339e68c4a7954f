//! Answers whose bodies are longer than the worker reads (decision 0068), streamed by local
//! servers over real HTTP a chunk at a time, so the tests hold none of them: a body that would
//! be a good answer read whole, but is a mebibyte past its real cap, and a body that never
//! ends.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use catalog_core::TenantId;
use catalog_publish::body::{MAX_ANSWER_BYTES, MAX_LIST_ANSWER_BYTES};
use catalog_publish::marketplace::shopify::{ShopifyChannel, ShopifyConfig, DEFAULT_API_VERSION};
use catalog_publish::{
    ChannelAdapter, ClientAuth, Grant, LookupReadBack, ReadBack, ReadBackError, Secret, StorefrontChannel,
    StorefrontConfig, TokenCache, TokenEndpoint, TokenError, Verdict,
};

use futures::StreamExt as _;

use crate::marketplace_support::{accepted, publish_on};

const CHUNK: usize = 64 * 1024;
const MIB: usize = 1024 * 1024;

/// `head` (the start of a JSON object, ending in an open string), then `x`s to a mebibyte past
/// `cap`, then the string and object closed: a good answer, read whole.
fn past_the_cap(head: &'static str, cap: usize) -> Body {
    let n_chunks = (cap + MIB) / CHUNK;
    let chunks = std::iter::once(Bytes::from_static(head.as_bytes()))
        .chain(std::iter::repeat_n(Bytes::from(vec![b'x'; CHUNK]), n_chunks))
        .chain(std::iter::once(Bytes::from_static(b"\"}")));
    Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>)))
}

/// `head`, then `x`s without end.
fn never_ending(head: &'static str) -> Body {
    let chunks = futures::stream::iter([Bytes::from_static(head.as_bytes())])
        .chain(futures::stream::repeat(Bytes::from(vec![b'x'; CHUNK])));
    Body::from_stream(chunks.map(Ok::<_, std::convert::Infallible>))
}

/// Serves every request with `status` and the body `body` makes, on 127.0.0.1 (port 0), for as
/// long as the runtime lives; returns its base URL.
async fn serve(status: u16, body: fn() -> Body) -> String {
    let status = StatusCode::from_u16(status).expect("a status");
    let app = Router::new().fallback(move || async move { (status, body()).into_response() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn storefront(base_url: String, request_timeout: Duration) -> StorefrontChannel {
    let config = StorefrontConfig::new(base_url, Some(Secret::new("s3cret")));
    StorefrontChannel::new(config, request_timeout, 1).expect("HTTP client")
}

/// A 202 a mebibyte past the cap of a write's answer is accepted, whatever its start says:
/// the status is the contract's signal, and a body is believed saying no only when it is read
/// whole (decision 0067), which a body past the cap never is. Read whole, this one was held in
/// memory, then parsed, and its `"accepted": false` sent the version again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_longer_than_its_cap_is_accepted_by_its_status() {
    let base_url = serve(202, || past_the_cap(r#"{"accepted": false, "padding": ""#, MAX_ANSWER_BYTES)).await;
    let publish = publish_on("storefront", "ABC-123", "ABC-123", 12, None);
    let sent = storefront(base_url, Duration::from_secs(30)).send(std::slice::from_ref(&publish)).await;
    assert_eq!((sent.attempts[0].status, &sent.attempts[0].verdict), (Some(202), &accepted(&publish)));
}

/// A 202 whose first bytes are a whole `{"accepted": false}`, then blanks a mebibyte past the
/// cap: the prefix read parses, yet is not what the answer said (it was never read whole), so
/// the status decides. Before, the prefix was believed and the version sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_whose_prefix_parses_past_its_cap_is_accepted_by_its_status() {
    let blanks = || {
        let n_chunks = (MAX_ANSWER_BYTES + MIB) / CHUNK;
        let chunks = std::iter::once(Bytes::from_static(br#"{"accepted": false}"#))
            .chain(std::iter::repeat_n(Bytes::from(vec![b' '; CHUNK]), n_chunks));
        Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>)))
    };
    let base_url = serve(202, blanks).await;
    let publish = publish_on("storefront", "ABC-123", "ABC-123", 12, None);
    let sent = storefront(base_url, Duration::from_secs(30)).send(std::slice::from_ref(&publish)).await;
    assert_eq!((sent.attempts[0].status, &sent.attempts[0].verdict), (Some(202), &accepted(&publish)));
}

/// A 503 whose body never ends is retried at once, the error holding the 4 KiB an attempt
/// keeps of it: only that much is read. Read whole, it was read until the request timed out
/// and told as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_whose_body_never_ends_is_retried_with_the_start_of_it() {
    let base_url = serve(503, || never_ending("")).await;
    let publish = publish_on("storefront", "ABC-123", "ABC-123", 12, None);
    // Read whole, the body is read until this timeout, memory growing all the while.
    let sent = storefront(base_url, Duration::from_secs(1)).send(std::slice::from_ref(&publish)).await;
    let expected = Verdict::Retry { reason: "server_error", error: format!("HTTP 503: {}", "x".repeat(4096)) };
    assert_eq!((sent.attempts[0].status, &sent.attempts[0].verdict), (Some(503), &expected));
}

/// A page of the storefront's list a mebibyte longer than a page may be is malformed (for an
/// operator), naming the cap, though read whole it would be a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_longer_than_its_cap_is_malformed_naming_the_cap() {
    let base_url =
        serve(200, || past_the_cap(r#"{"items": [], "next": null, "padding": ""#, MAX_LIST_ANSWER_BYTES)).await;
    let tenant = TenantId::parse("canary").expect("tenant");
    let page = ReadBack::list(&storefront(base_url, Duration::from_secs(30)), &tenant, None, 1_000).await;
    assert_eq!(page, Err(ReadBackError::Malformed("a list page longer than the 32 MiB one may be".to_owned())));
}

/// A token endpoint answering 200 with a token a mebibyte past the cap of a token answer is
/// `token_malformed` (the channel held for an operator), naming the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_answer_longer_than_its_cap_is_malformed_naming_the_cap() {
    let base_url =
        serve(200, || past_the_cap(r#"{"access_token": "token-1", "expires_in": 300, "padding": ""#, MAX_ANSWER_BYTES))
            .await;
    let endpoint = TokenEndpoint {
        url: format!("{base_url}/v3/token"),
        client_id: "client".to_owned(),
        client_secret: Secret::new("secret"),
        grant: Grant::ClientCredentials,
        client_auth: ClientAuth::Basic,
        extra_form: vec![],
        extra_headers: vec![],
    };
    let error = TokenCache::new(endpoint, reqwest::Client::new()).access_token().await.expect_err("no token");
    assert_eq!(error, TokenError::Malformed("HTTP 200 longer than the 1 MiB a token answer may be".to_owned()));
    assert_eq!(error.reason(), "token_malformed");
}

fn shopify(base_url: String) -> ShopifyChannel {
    let config = ShopifyConfig {
        base_url,
        api_version: DEFAULT_API_VERSION.to_owned(),
        access_token: Secret::new("shpat_local"),
        location_id: "gid://shopify/Location/7".to_owned(),
    };
    ShopifyChannel::new(config, Duration::from_secs(5), 1).expect("HTTP client")
}

/// A marketplace's success longer than its cap is no answer to read: a write's is retried
/// (`answer_too_long`), a read's is malformed, each naming its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketplace_success_longer_than_its_cap_is_retried_or_malformed_naming_the_cap() {
    const WRITTEN: &str = r#"{"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": {"createdAt": "2026-06-01T00:00:00Z", "reason": "correction", "referenceDocumentUri": null, "changes": []}, "userErrors": []}}, "padding": ""#;
    let base_url = serve(200, || past_the_cap(WRITTEN, MAX_ANSWER_BYTES)).await;
    let publish = publish_on("shopify", "ABC-123", "gid://shopify/InventoryItem/11", 12, None);
    let sent = shopify(base_url).send(std::slice::from_ref(&publish)).await;
    let expected = Verdict::Retry {
        reason: "answer_too_long",
        error: "HTTP 200 with a body longer than the 1 MiB such an answer may be".to_owned(),
    };
    assert_eq!(sent.attempts[0].verdict, expected);

    let base_url = serve(200, || past_the_cap(r#"{"data": {"nodes": []}, "padding": ""#, MAX_LIST_ANSWER_BYTES)).await;
    let shown = shopify(base_url).shown_quantities(&["gid://shopify/InventoryItem/11"]).await;
    let expected = "HTTP 200 with a body longer than the 32 MiB such an answer may be";
    assert_eq!(shown, Err(ReadBackError::Malformed(expected.to_owned())));
}

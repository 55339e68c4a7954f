//! The local Amazon's and Walmart's bulk forms: Amazon's Feeds API (feed document, presigned
//! upload, feed, status, processing report) and Walmart's bulk inventory feed with its feed
//! item status. A feed is processed when its status is first read, every message accepted;
//! a submission misbehaves by the fault plan like any other request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::Shared;

/// Feeds and documents, by id.
#[derive(Debug, Default)]
pub(super) struct Feeds {
    /// Uploaded feed documents (Amazon) and submitted files (Walmart), by document or feed id.
    documents: HashMap<String, Value>,
    /// Feed id → its document id and whether it has been processed.
    feeds: HashMap<String, (String, bool)>,
    reports: HashMap<String, Value>,
    n_ids: u64,
}

pub(super) type SharedFeeds = Arc<Mutex<Feeds>>;

impl Feeds {
    fn next_id(&mut self) -> u64 {
        self.n_ids += 1;
        self.n_ids
    }
}

/// `POST /feeds/2021-06-30/documents`: a document and the URL to upload it to.
pub(super) async fn amazon_create_document(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let id = format!("amzn1.tortuga.4.na.{}", shared.feeds.lock().expect("feeds").next_id());
    let host = headers.get("host").and_then(|host| host.to_str().ok()).unwrap_or("127.0.0.1");
    let url = format!("http://{host}/feed-uploads/{id}?X-Amz-Signature=local");
    (StatusCode::CREATED, Json(json!({ "feedDocumentId": id, "url": url }))).into_response()
}

/// `PUT {url}`: the feed's contents.
pub(super) async fn amazon_upload(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(document) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    shared.feeds.lock().expect("feeds").documents.insert(id, document);
    StatusCode::OK.into_response()
}

/// `POST /feeds/2021-06-30/feeds`: a feed of an uploaded document.
pub(super) async fn amazon_create_feed(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let document = body["inputFeedDocumentId"].as_str().unwrap_or_default().to_owned();
    let mut feeds = shared.feeds.lock().expect("feeds");
    if !feeds.documents.contains_key(&document) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": [{"code": "InvalidInput", "message": "no such document"}]})),
        )
            .into_response();
    }
    let id = feeds.next_id().to_string();
    feeds.feeds.insert(id.clone(), (document, false));
    (StatusCode::ACCEPTED, Json(json!({ "feedId": id }))).into_response()
}

/// `GET /feeds/2021-06-30/feeds/{feedId}`: processes the feed at its first read.
pub(super) async fn amazon_feed(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let messages = {
        let mut feeds = shared.feeds.lock().expect("feeds");
        let Some((document, processed)) = feeds.feeds.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if *processed {
            None
        } else {
            *processed = true;
            let document = document.clone();
            Some(feeds.documents[&document]["messages"].as_array().cloned().unwrap_or_default())
        }
    };
    if let Some(messages) = messages {
        for message in &messages {
            let quantity = message["patches"][0]["value"][0]["quantity"].as_i64().unwrap_or(-1);
            shared.set(message["sku"].as_str().unwrap_or_default(), quantity);
        }
        let report = json!({
            "header": {"sellerId": "A1", "version": "2.0", "feedId": id},
            "issues": [],
            "summary": {"errors": 0, "warnings": 0, "messagesProcessed": messages.len(),
                "messagesAccepted": messages.len(), "messagesInvalid": 0},
        });
        shared.feeds.lock().expect("feeds").reports.insert(format!("report-{id}"), report);
    }
    Json(json!({ "feedId": id, "feedType": "JSON_LISTINGS_FEED", "processingStatus": "DONE",
        "resultFeedDocumentId": format!("report-{id}") }))
    .into_response()
}

/// `GET /feeds/2021-06-30/documents/{id}`: where a report is.
pub(super) async fn amazon_document(Path(id): Path<String>, headers: HeaderMap) -> Response {
    let host = headers.get("host").and_then(|host| host.to_str().ok()).unwrap_or("127.0.0.1");
    Json(json!({ "feedDocumentId": id, "url": format!("http://{host}/feed-reports/{id}") })).into_response()
}

/// `GET {url}`: a processing report.
pub(super) async fn amazon_report(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    match shared.feeds.lock().expect("feeds").reports.get(&id) {
        Some(report) => Json(report.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /v3/feeds?feedType=inventory`: the multipart file's items, kept until the first
/// status read.
pub(super) async fn walmart_submit(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let content_type = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let Some(file) = multipart_file(content_type, &body) else {
        return (StatusCode::BAD_REQUEST, "no file part").into_response();
    };
    let mut feeds = shared.feeds.lock().expect("feeds");
    let id = format!("{:032X}@AU8BAQA", feeds.next_id());
    feeds.documents.insert(id.clone(), file);
    feeds.feeds.insert(id.clone(), (id.clone(), false));
    Json(json!({ "feedId": id })).into_response()
}

fn multipart_file(content_type: &str, body: &[u8]) -> Option<Value> {
    let boundary = content_type.split("boundary=").nth(1)?;
    let text = std::str::from_utf8(body).ok()?;
    let part = text.split(&format!("--{boundary}")).nth(1)?;
    let (_, content) = part.split_once("\r\n\r\n")?;
    serde_json::from_str(content.trim_end_matches("\r\n")).ok()
}

/// `GET /v3/feeds/{feedId}`: processes the feed at its first read; item results paged.
pub(super) async fn walmart_feed(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (items, first_read) = {
        let mut feeds = shared.feeds.lock().expect("feeds");
        let Some((document, processed)) = feeds.feeds.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let first_read = !*processed;
        *processed = true;
        let document = document.clone();
        (feeds.documents[&document]["Inventory"].as_array().cloned().unwrap_or_default(), first_read)
    };
    if first_read {
        for item in &items {
            shared.set(item["sku"].as_str().unwrap_or_default(), item["quantity"]["amount"].as_i64().unwrap_or(-1));
        }
    }
    let offset: usize = query.get("offset").and_then(|offset| offset.parse().ok()).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|limit| limit.parse().ok()).unwrap_or(50).min(1_000);
    let details: Vec<Value> = items
        .iter()
        .enumerate()
        .skip(offset)
        .take(limit)
        .map(|(index, item)| json!({"martId": 0, "sku": item["sku"], "index": index, "ingestionStatus": "SUCCESS"}))
        .collect();
    Json(json!({ "feedId": id, "feedStatus": "PROCESSED", "itemsReceived": items.len(), "itemsSucceeded": items.len(),
        "itemsFailed": 0, "itemsProcessing": 0, "offset": offset, "limit": limit,
        "itemDetails": {"itemIngestionStatus": details} }))
    .into_response()
}

//! Amazon's bulk form (`docs/channels/amazon.md`, "Feeds"): up to 10,000 quantities in one
//! `JSON_LISTINGS_FEED` of the Feeds API 2021-06-30. A send creates a feed document, uploads
//! the feed to the presigned URL Amazon gives, creates the feed, reads its processing status
//! until it is done, and reads each message's fate from the processing report. Nothing is
//! recorded as accepted before the report says so; a feed that fails, is cancelled or is not
//! done in time has its messages sent again in a new feed (setting a quantity twice leaves
//! the same quantity, and Amazon processes a seller's feeds in the order they were created).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::s3::s3_error;
use super::{access_token_refused, refusal, AmazonChannel, FULFILLMENT_CHANNEL_CODE, PATCH_OPERATION};
use crate::adapter::{Publish, Sent};
use crate::body::{read_body_capped, unpack_gzip_capped, MAX_LIST_ANSWER_BYTES as LIST_CAP, MIB};
use crate::channel::{Rate, Secret};
use crate::marketplace::feeds::{exchange_while_held, feed_sent, patiently, succeeded, FeedSettings, Refused};
use crate::marketplace::{exchange, with_token, Answer};
use crate::response::{classify_transport, truncate, TransportError, Verdict, MAX_BODY_BYTES};

/// The most messages one `JSON_LISTINGS_FEED` holds (the listings feed schema's `maxItems`).
pub const MAX_FEED_MESSAGES: usize = 10_000;
pub const FEED_TYPE: &str = "JSON_LISTINGS_FEED";
/// The content type the feed document is created with and uploaded as.
pub const FEED_CONTENT_TYPE: &str = "application/json; charset=UTF-8";
/// `createFeed`'s usage plan, and `createFeedDocument`'s: 0.0083 requests per second (one
/// every 120.48 s), a burst of 15. One send of a feed channel makes one of each.
pub const CREATE_FEED_RATE: Rate = Rate::every(Duration::from_millis(120_482), 15);

/// The feed that sets each listing of `batch` to its quantity: message `i + 1` is
/// `batch[i]`, a `PATCH` merging the merchant-fulfilled quantity, as the single-listing
/// patch does.
pub fn feed_document(seller_id: &str, product_type: &str, batch: &[Publish]) -> Value {
    let messages: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(index, publish)| {
            json!({
                "messageId": index + 1,
                "sku": publish.listing,
                "operationType": "PATCH",
                "productType": product_type,
                "patches": [{
                    "op": PATCH_OPERATION,
                    "path": "/attributes/fulfillment_availability",
                    "value": [{ "fulfillment_channel_code": FULFILLMENT_CHANNEL_CODE, "quantity": publish.quantity }],
                }],
            })
        })
        .collect();
    json!({ "header": { "sellerId": seller_id, "version": "2.0" }, "messages": messages })
}

/// Where a submitted feed is, by `getFeed`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedState {
    /// `IN_QUEUE` or `IN_PROGRESS`.
    Waiting(String),
    /// `DONE`, with the processing report's document.
    Done { result_document_id: String },
    /// Nothing can be told of its messages: they are sent again.
    Failed { reason: &'static str, error: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Feed {
    feed_id: Option<String>,
    processing_status: Option<String>,
    result_feed_document_id: Option<String>,
}

/// What `getFeed`'s answer body says of the feed.
pub fn read_feed_state(body: &str) -> FeedState {
    let Ok(feed) = serde_json::from_str::<Feed>(body) else {
        return FeedState::Failed { reason: "unexpected_answer", error: format!("getFeed: {}", truncate(body)) };
    };
    let id = feed.feed_id.unwrap_or_default();
    match (feed.processing_status.as_deref(), feed.result_feed_document_id) {
        (Some(status @ ("IN_QUEUE" | "IN_PROGRESS")), _) => FeedState::Waiting(status.to_owned()),
        (Some("DONE"), Some(result_document_id)) => FeedState::Done { result_document_id },
        (Some("DONE"), None) => FeedState::Failed {
            reason: "feed_report_missing",
            error: format!("feed {id} is DONE without a processing report; its messages are sent again"),
        },
        (Some("CANCELLED"), _) => FeedState::Failed {
            reason: "feed_cancelled",
            error: format!("feed {id} was cancelled before it was processed; its messages are sent again"),
        },
        (Some("FATAL"), _) => FeedState::Failed {
            reason: "feed_fatal",
            error: format!("feed {id} was aborted (FATAL): some, none or all of its messages may have been applied; they are sent again"),
        },
        _ => FeedState::Failed { reason: "unexpected_answer", error: format!("getFeed: {}", truncate(body)) },
    }
}

/// How one message of a feed ended, by its processing report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    Accepted,
    /// Refused: `rejected_invalid` for a message's own errors, `rejected_feed` for errors of
    /// the whole feed that accepted none of it; `issues` as the report gave them.
    Invalid {
        reason: &'static str,
        error: String,
        issues: String,
    },
    /// The report cannot tell: sent again.
    Unconfirmed {
        error: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    #[serde(default)]
    issues: Vec<ReportIssue>,
    summary: Summary,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportIssue {
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    messages_accepted: u64,
}

/// Each message's outcome, from the processing report of a feed of `n_messages`. A message
/// with an `ERROR` issue of its own was refused. The rest were accepted when the report's
/// count of accepted messages says exactly that; when it accepted none and the feed itself
/// has errors, the feed was refused whole; otherwise the rest cannot be told apart and are
/// sent again. Warnings never refuse a message.
pub fn read_report(body: &str, n_messages: usize) -> Result<Vec<MessageOutcome>, String> {
    let report: Report =
        serde_json::from_str(body).map_err(|error| format!("processing report: {error}: {}", truncate(body)))?;
    let mut own: BTreeMap<usize, Vec<&ReportIssue>> = BTreeMap::new();
    let mut of_feed = Vec::new();
    for issue in report.issues.iter().filter(|issue| issue.severity.as_deref() == Some("ERROR")) {
        match issue.message_id.and_then(|id| usize::try_from(id).ok()).filter(|id| (1..=n_messages).contains(id)) {
            Some(id) => own.entry(id).or_default().push(issue),
            None => of_feed.push(issue),
        }
    }
    let accepted = usize::try_from(report.summary.messages_accepted).unwrap_or(usize::MAX);
    let rest = if accepted == n_messages - own.len() {
        MessageOutcome::Accepted
    } else if accepted == 0 && !of_feed.is_empty() {
        MessageOutcome::Invalid { reason: "rejected_feed", error: issues_text(&of_feed), issues: issues_json(&of_feed) }
    } else {
        MessageOutcome::Unconfirmed {
            error: format!(
                "the processing report accepts {accepted} of {n_messages} messages and names {} invalid: the others are sent again",
                own.len()
            ),
        }
    };
    Ok((1..=n_messages)
        .map(|id| match own.get(&id) {
            Some(issues) => MessageOutcome::Invalid {
                reason: "rejected_invalid",
                error: issues_text(issues),
                issues: issues_json(issues),
            },
            None => rest.clone(),
        })
        .collect())
}

fn issues_text(issues: &[&ReportIssue]) -> String {
    let parts: Vec<String> = issues
        .iter()
        .map(|issue| {
            [issue.code.as_deref(), issue.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ")
        })
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        "ERROR".to_owned()
    } else {
        parts.join("; ")
    }
}

fn issues_json(issues: &[&ReportIssue]) -> String {
    truncate(&serde_json::to_string(issues).unwrap_or_default()).to_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedDocument {
    feed_document_id: String,
    url: String,
    compression_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedFeed {
    feed_id: String,
}

impl AmazonChannel {
    /// Sends `batch` as one feed and waits for its report (see the module's comment).
    pub(super) async fn send_feed(&self, settings: FeedSettings, batch: &[Publish]) -> Sent {
        let started = Instant::now();
        let outcomes = self.submit_and_wait(settings, batch, started + settings.timeout).await;
        feed_sent(batch, outcomes, started, |outcome, publish| match outcome {
            MessageOutcome::Accepted => Verdict::Answered(publish.entry.item.accepted()),
            MessageOutcome::Invalid { reason, error, issues } => {
                Verdict::DeadLetter { reason: reason.to_owned(), error, body: Some(issues) }
            }
            MessageOutcome::Unconfirmed { error } => Verdict::Retry { reason: "feed_report_unclear", error },
        })
    }

    async fn submit_and_wait(
        &self,
        settings: FeedSettings,
        batch: &[Publish],
        deadline: Instant,
    ) -> Result<Vec<MessageOutcome>, Refused> {
        let feed = feed_document(&self.config.seller_id, &self.config.product_type, batch).to_string();
        let document: FeedDocument = self
            .feeds_call(
                reqwest::Method::POST,
                "/feeds/2021-06-30/documents",
                Some(json!({ "contentType": FEED_CONTENT_TYPE })),
            )
            .await?;
        self.upload(&document.url, feed).await?;
        let feed_id = self.create_feed(&document.feed_document_id).await?.feed_id;
        tracing::info!(feed_id, n_messages = batch.len(), "feed submitted");
        // A feed is never done at once: the first read waits one interval.
        let status_path = format!("/feeds/2021-06-30/feeds/{}", super::percent_encode(&feed_id));
        let result_document_id = loop {
            let state = patiently(deadline, settings.poll_interval, true, || async {
                let answer = self.feeds_answer(reqwest::Method::GET, &status_path, None).await?;
                Ok(read_feed_state(&answer.body))
            })
            .await?;
            match state {
                FeedState::Waiting(_) => {}
                FeedState::Done { result_document_id } => break result_document_id,
                FeedState::Failed { reason, error } => return Err((Verdict::Retry { reason, error }, Some(200))),
            }
        };
        let report_path = format!("/feeds/2021-06-30/documents/{}", super::percent_encode(&result_document_id));
        let report = patiently(deadline, settings.poll_interval, false, || async {
            let document: FeedDocument = self.feeds_call(reqwest::Method::GET, &report_path, None).await?;
            self.download(&document).await
        })
        .await?;
        let outcomes = read_report(&report, batch.len())
            .map_err(|error| (Verdict::Retry { reason: "unexpected_answer", error }, Some(200)))?;
        let n_accepted = outcomes.iter().filter(|outcome| **outcome == MessageOutcome::Accepted).count();
        tracing::info!(feed_id, n_messages = batch.len(), n_accepted, "feed processed");
        Ok(outcomes)
    }

    /// A Feeds API call with the channel's access token: its answer if it succeeded,
    /// otherwise what Amazon's refusal means for every message.
    async fn feeds_answer(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Answer, Refused> {
        let answer = with_token(&self.tokens, access_token_refused, |token| {
            exchange(self.feeds_request(&token, method.clone(), path, body.as_ref()))
        })
        .await
        .map_err(|verdict| (verdict, None))?;
        succeeded(answer, refusal)
    }

    async fn feeds_call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Refused> {
        read_answer(self.feeds_answer(method, path, body).await?, path)
    }

    /// `createFeed` of the uploaded document, as [`Self::feeds_call`], sent only while the
    /// round's claims are held: after a slow upload or token fetch another publisher may hold
    /// the items at newer versions, and this feed, created after theirs, would be applied
    /// after it. The claims are checked just before the call goes out (decision 0046).
    async fn create_feed(&self, document_id: &str) -> Result<CreatedFeed, Refused> {
        let path = "/feeds/2021-06-30/feeds";
        let body = json!({
            "feedType": FEED_TYPE,
            "marketplaceIds": [self.config.marketplace_id],
            "inputFeedDocumentId": document_id,
        });
        let answer = with_token(&self.tokens, access_token_refused, |token| {
            exchange_while_held(self.feeds_request(&token, reqwest::Method::POST, path, Some(&body)))
        })
        .await
        .map_err(|verdict| (verdict, None))?;
        read_answer(succeeded(answer, refusal)?, path)
    }

    /// A Feeds API request with `token`.
    fn feeds_request(
        &self,
        token: &Secret,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let request = self
            .client
            .request(method, url)
            .header("x-amz-access-token", token.expose())
            .header("Accept", "application/json");
        match body {
            Some(body) => request.json(body),
            None => request,
        }
    }

    /// The feed, uploaded to the presigned URL as it was declared; the URL is its own
    /// authorization, so no access token goes with it.
    async fn upload(&self, url: &str, feed: String) -> Result<(), Refused> {
        let request = self.client.put(url).header("Content-Type", FEED_CONTENT_TYPE).body(feed);
        let answer = exchange(request).await.map_err(|error| (Verdict::from(error), None))?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        let error = format!("uploading the feed document: HTTP {}: {}", answer.status, s3_error(&answer.body));
        Err((Verdict::Retry { reason: "upload_failed", error }, Some(answer.status)))
    }

    /// A result document's text, unpacked when Amazon compressed it: read, and unpacked, no
    /// further than the cap of an answer that lists many items.
    async fn download(&self, document: &FeedDocument) -> Result<String, Refused> {
        let unreadable = |error: String| (Verdict::Retry { reason: "unexpected_answer", error }, Some(200));
        let too_long = || unreadable(format!("processing report longer than the {} MiB one may be", LIST_CAP / MIB));
        let transport = |error: reqwest::Error| (classify_transport(&TransportError::from_reqwest(&error)), None);
        let response = self.client.get(&document.url).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let succeeded = (200..300).contains(&status);
        let body =
            read_body_capped(response, if succeeded { LIST_CAP } else { MAX_BODY_BYTES }).await.map_err(transport)?;
        if !succeeded {
            let error = format!(
                "downloading the processing report: HTTP {status}: {}",
                s3_error(&String::from_utf8_lossy(&body.bytes))
            );
            return Err((Verdict::Retry { reason: "server_error", error: truncate(&error).to_owned() }, Some(status)));
        }
        if body.over_cap {
            return Err(too_long());
        }
        let bytes = match document.compression_algorithm.as_deref() {
            None => body.bytes,
            Some("GZIP") => match unpack_gzip_capped(&body.bytes, LIST_CAP) {
                Ok(unpacked) if unpacked.over_cap => return Err(too_long()),
                Ok(unpacked) => unpacked.bytes,
                Err(error) => return Err(unreadable(format!("processing report, GZIP: {error}"))),
            },
            Some(other) => {
                return Err(unreadable(format!("processing report compressed as {other}, which is not GZIP")))
            }
        };
        String::from_utf8(bytes).map_err(|error| unreadable(format!("processing report: {error}")))
    }
}

/// The body of a Feeds API answer to `path` that succeeded, read as `T`.
fn read_answer<T: DeserializeOwned>(answer: Answer, path: &str) -> Result<T, Refused> {
    serde_json::from_str(&answer.body).map_err(|error| {
        let error = format!("HTTP {} from {path}: {error}: {}", answer.status, truncate(&answer.body));
        (Verdict::Retry { reason: "unexpected_answer", error }, Some(answer.status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_processing_status_has_its_state() {
        let cases = [
            r#"{"feedId":"F1","feedType":"JSON_LISTINGS_FEED","createdTime":"2026-12-04T10:00:00Z","processingStatus":"IN_QUEUE"}"#,
            r#"{"feedId":"F1","processingStatus":"IN_PROGRESS","processingStartTime":"2026-12-04T10:00:05Z"}"#,
            r#"{"feedId":"F1","processingStatus":"DONE","resultFeedDocumentId":"amzn1.tortuga.3.report"}"#,
            r#"{"feedId":"F1","processingStatus":"DONE"}"#,
            r#"{"feedId":"F1","processingStatus":"CANCELLED"}"#,
            r#"{"feedId":"F1","processingStatus":"FATAL","resultFeedDocumentId":"amzn1.tortuga.3.fatal"}"#,
            r#"{"feedId":"F1","processingStatus":"PAUSED"}"#,
            r#"{"feedId":"F1"}"#,
            "<html>busy</html>",
        ];
        let rendered: Vec<String> = cases.iter().map(|body| format!("{:?}", read_feed_state(body))).collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        Waiting("IN_QUEUE")
        Waiting("IN_PROGRESS")
        Done { result_document_id: "amzn1.tortuga.3.report" }
        Failed { reason: "feed_report_missing", error: "feed F1 is DONE without a processing report; its messages are sent again" }
        Failed { reason: "feed_cancelled", error: "feed F1 was cancelled before it was processed; its messages are sent again" }
        Failed { reason: "feed_fatal", error: "feed F1 was aborted (FATAL): some, none or all of its messages may have been applied; they are sent again" }
        Failed { reason: "unexpected_answer", error: "getFeed: {\"feedId\":\"F1\",\"processingStatus\":\"PAUSED\"}" }
        Failed { reason: "unexpected_answer", error: "getFeed: {\"feedId\":\"F1\"}" }
        Failed { reason: "unexpected_answer", error: "getFeed: <html>busy</html>" }
        "#);
    }

    /// The report of the schema's example, cut to its issues and summary: messages 4 and 5
    /// invalid, the rest of a feed of `n` accepted when the summary says so.
    fn report(issues: &str, accepted: u64) -> String {
        format!(
            r#"{{"header":{{"sellerId":"A2SELLER01","version":"2.0","feedId":"F1"}},"issues":{issues},"summary":{{"errors":3,"warnings":1,"messagesProcessed":5,"messagesAccepted":{accepted},"messagesInvalid":2}}}}"#
        )
    }

    #[test]
    fn a_processing_report_names_each_message_s_fate() {
        let own = r#"[{"messageId":4,"sku":"My-SKU-B","code":"90220","severity":"ERROR","message":"'[batteries_required]' is required but not supplied."},
            {"messageId":4,"sku":"My-SKU-B","code":"90220","severity":"ERROR","message":"'[supplier_declared_dg_hz_regulation]' is required but not supplied."},
            {"messageId":5,"sku":"My-SKU-C","code":"99022","severity":"ERROR","message":"The field 'prices' does not have enough values."},
            {"messageId":1,"sku":"My-SKU-A","code":"18448","severity":"WARNING","message":"Attributes tagged as relevant_attributes are incomplete."}]"#;
        let of_feed = r#"[{"code":"4000001","severity":"ERROR","message":"The feed is not valid JSON."}]"#;
        let cases = [
            ("two invalid, three accepted", report(own, 3), 5),
            ("two invalid, only two accepted", report(own, 2), 5),
            ("a warning is no refusal", report(r#"[{"messageId":2,"severity":"WARNING","message":"just so"}]"#, 3), 3),
            ("the feed refused whole", report(of_feed, 0), 2),
            ("feed errors beside accepted messages", report(of_feed, 2), 2),
            (
                "an issue of a message the feed never had",
                report(r#"[{"messageId":9,"severity":"ERROR","message":"?"}]"#, 1),
                2,
            ),
            ("no summary", r#"{"header":{},"issues":[]}"#.to_owned(), 1),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(name, body, n)| {
                let outcomes = match read_report(body, *n) {
                    Ok(outcomes) => {
                        outcomes.iter().map(|outcome| format!("  {outcome:?}")).collect::<Vec<_>>().join("\n")
                    }
                    Err(error) => format!("  error: {error}"),
                };
                format!("{name}:\n{outcomes}")
            })
            .collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        two invalid, three accepted:
          Accepted
          Accepted
          Accepted
          Invalid { reason: "rejected_invalid", error: "90220: '[batteries_required]' is required but not supplied.; 90220: '[supplier_declared_dg_hz_regulation]' is required but not supplied.", issues: "[{\"messageId\":4,\"sku\":\"My-SKU-B\",\"code\":\"90220\",\"severity\":\"ERROR\",\"message\":\"'[batteries_required]' is required but not supplied.\"},{\"messageId\":4,\"sku\":\"My-SKU-B\",\"code\":\"90220\",\"severity\":\"ERROR\",\"message\":\"'[supplier_declared_dg_hz_regulation]' is required but not supplied.\"}]" }
          Invalid { reason: "rejected_invalid", error: "99022: The field 'prices' does not have enough values.", issues: "[{\"messageId\":5,\"sku\":\"My-SKU-C\",\"code\":\"99022\",\"severity\":\"ERROR\",\"message\":\"The field 'prices' does not have enough values.\"}]" }
        two invalid, only two accepted:
          Unconfirmed { error: "the processing report accepts 2 of 5 messages and names 2 invalid: the others are sent again" }
          Unconfirmed { error: "the processing report accepts 2 of 5 messages and names 2 invalid: the others are sent again" }
          Unconfirmed { error: "the processing report accepts 2 of 5 messages and names 2 invalid: the others are sent again" }
          Invalid { reason: "rejected_invalid", error: "90220: '[batteries_required]' is required but not supplied.; 90220: '[supplier_declared_dg_hz_regulation]' is required but not supplied.", issues: "[{\"messageId\":4,\"sku\":\"My-SKU-B\",\"code\":\"90220\",\"severity\":\"ERROR\",\"message\":\"'[batteries_required]' is required but not supplied.\"},{\"messageId\":4,\"sku\":\"My-SKU-B\",\"code\":\"90220\",\"severity\":\"ERROR\",\"message\":\"'[supplier_declared_dg_hz_regulation]' is required but not supplied.\"}]" }
          Invalid { reason: "rejected_invalid", error: "99022: The field 'prices' does not have enough values.", issues: "[{\"messageId\":5,\"sku\":\"My-SKU-C\",\"code\":\"99022\",\"severity\":\"ERROR\",\"message\":\"The field 'prices' does not have enough values.\"}]" }
        a warning is no refusal:
          Accepted
          Accepted
          Accepted
        the feed refused whole:
          Invalid { reason: "rejected_feed", error: "4000001: The feed is not valid JSON.", issues: "[{\"code\":\"4000001\",\"severity\":\"ERROR\",\"message\":\"The feed is not valid JSON.\"}]" }
          Invalid { reason: "rejected_feed", error: "4000001: The feed is not valid JSON.", issues: "[{\"code\":\"4000001\",\"severity\":\"ERROR\",\"message\":\"The feed is not valid JSON.\"}]" }
        feed errors beside accepted messages:
          Accepted
          Accepted
        an issue of a message the feed never had:
          Unconfirmed { error: "the processing report accepts 1 of 2 messages and names 0 invalid: the others are sent again" }
          Unconfirmed { error: "the processing report accepts 1 of 2 messages and names 0 invalid: the others are sent again" }
        no summary:
          error: processing report: missing field `summary` at line 1 column 25: {"header":{},"issues":[]}
        "#);
    }
}

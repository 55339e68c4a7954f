//! Walmart's bulk form (`docs/channels/walmart.md`, "Bulk inventory feed"): up to 10,000
//! quantities in one bulk item inventory update feed (`POST /v3/feeds?feedType=inventory`,
//! spec 1.4, one ship node), read back with the feed item status API
//! (`GET /v3/feeds/{feedId}?includeDetails=true`, pages of up to 1,000 items) until the feed
//! is `PROCESSED`; each item is recorded by its own `ingestionStatus`. A feed that errs or is
//! not processed in time has its items sent again in a new feed, as Amazon's are (decision
//! 0029).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{access_token_expired, correlation_id, refusal, WalmartChannel, SERVICE_NAME};
use crate::adapter::{Publish, Sent};
use crate::channel::{Rate, Secret};
use crate::marketplace::feeds::{exchange_while_held, feed_sent, patiently, succeeded, FeedSettings, Refused};
use crate::marketplace::{exchange_list, percent_encode, with_token, Answer};
use crate::response::{truncate, Verdict};

/// The most items one feed holds (Walmart's bulk feeds take up to 10,000; the file stays far
/// under its 5 MB).
pub const MAX_FEED_ITEMS: usize = 10_000;
/// Bulk inventory feeds: 10 per hour (Walmart's bulk inventory guide), all ten at once.
pub const FEED_RATE: Rate = Rate::every(Duration::from_secs(360), 10);
/// Items per page of the feed item status API, its maximum.
pub const STATUS_PAGE: usize = 1_000;

/// The bulk item inventory update feed (spec 1.4) setting each SKU of `batch` to its
/// quantity, in order: Walmart's `index` of an item is its place here.
pub fn inventory_feed(batch: &[Publish]) -> Value {
    let inventory: Vec<Value> = batch
        .iter()
        .map(|publish| json!({ "sku": publish.listing, "quantity": { "unit": "EACH", "amount": publish.quantity } }))
        .collect();
    json!({ "InventoryHeader": { "version": "1.4" }, "Inventory": inventory })
}

/// How one item of a feed ended, by its `ingestionStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Accepted,
    /// `DATA_ERROR`: the item's data is refused; sending it again changes nothing.
    Refused {
        error: String,
        errors: String,
    },
    /// `SYSTEM_ERROR`, `TIMEOUT_ERROR`, or no status for the item: sent again.
    Unconfirmed {
        reason: &'static str,
        error: String,
    },
}

/// One page of a feed's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// `RECEIVED`, `INPROGRESS`, `PROCESSED` or `ERROR`.
    pub status: String,
    pub items_received: usize,
    /// The feed's own errors (an `ERROR` feed's), as one line.
    pub errors: Option<String>,
    /// The page's items: their index in the feed (when Walmart gives it), SKU and outcome.
    pub items: Vec<(Option<usize>, String, ItemOutcome)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    feed_status: String,
    #[serde(default)]
    items_received: usize,
    #[serde(default)]
    ingestion_errors: Option<Value>,
    #[serde(default)]
    item_details: Option<ItemDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemDetails {
    #[serde(default)]
    item_ingestion_status: Vec<ItemStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemStatus {
    sku: Option<String>,
    index: Option<usize>,
    ingestion_status: Option<String>,
    #[serde(default)]
    ingestion_errors: Option<Value>,
}

/// `ingestionErrors.ingestionError[]` as one line (`type code: description`), if any.
fn ingestion_errors_text(errors: Option<&Value>) -> Option<String> {
    let list = errors?.get("ingestionError")?.as_array()?;
    let parts: Vec<String> = list
        .iter()
        .map(|error| {
            let text = ["type", "code"].iter().filter_map(|field| error[*field].as_str()).collect::<Vec<_>>().join(" ");
            match error["description"].as_str() {
                Some(description) if !text.is_empty() => format!("{text}: {description}"),
                Some(description) => description.to_owned(),
                None => text,
            }
        })
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What a page of the feed item status API says.
pub fn read_feed_page(body: &str) -> Result<FeedPage, String> {
    let page: StatusBody =
        serde_json::from_str(body).map_err(|error| format!("feed status: {error}: {}", truncate(body)))?;
    let items = page
        .item_details
        .map(|details| details.item_ingestion_status)
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let errors = ingestion_errors_text(item.ingestion_errors.as_ref());
            let raw = item.ingestion_errors.as_ref().map(Value::to_string).unwrap_or_default();
            let outcome = match item.ingestion_status.as_deref() {
                Some("SUCCESS") => ItemOutcome::Accepted,
                Some("DATA_ERROR") => ItemOutcome::Refused {
                    error: errors.unwrap_or_else(|| "DATA_ERROR".to_owned()),
                    errors: truncate(&raw).to_owned(),
                },
                Some(status @ ("SYSTEM_ERROR" | "TIMEOUT_ERROR")) => ItemOutcome::Unconfirmed {
                    reason: "feed_item_failed",
                    error: errors.unwrap_or_else(|| status.to_owned()),
                },
                other => ItemOutcome::Unconfirmed {
                    reason: "feed_report_unclear",
                    error: format!("ingestionStatus {other:?} is not final"),
                },
            };
            (item.index, item.sku.unwrap_or_default(), outcome)
        })
        .collect();
    Ok(FeedPage {
        status: page.feed_status,
        items_received: page.items_received,
        errors: ingestion_errors_text(page.ingestion_errors.as_ref()),
        items,
    })
}

/// Each item of a feed of `batch`'s order from its status pages: by `index` when Walmart
/// gives it and the entry names that index's SKU (or none), else by SKU; an item no page
/// names is sent again. Walmart documents the pages' `offset` as counted from 0, not
/// `index`: an entry whose SKU is another item's is never taken for the item at its index (a
/// feed counted from 1 would give each item its neighbour's outcome, a refusal dead-letter the
/// wrong SKU and the refused one be recorded published).
pub fn item_outcomes(batch_listings: &[&str], pages: &[FeedPage]) -> Vec<ItemOutcome> {
    let mut by_index: HashMap<usize, (&str, &ItemOutcome)> = HashMap::new();
    let mut by_sku: HashMap<&str, &ItemOutcome> = HashMap::new();
    for (index, sku, outcome) in pages.iter().flat_map(|page| &page.items) {
        if let Some(index) = index {
            by_index.insert(*index, (sku.as_str(), outcome));
        }
        if !sku.is_empty() {
            by_sku.insert(sku.as_str(), outcome);
        }
    }
    batch_listings
        .iter()
        .enumerate()
        .map(|(index, listing)| {
            let at_index = by_index.get(&index).filter(|(sku, _)| sku.is_empty() || sku == listing);
            match at_index.map(|(_, outcome)| outcome).or_else(|| by_sku.get(listing)) {
                Some(outcome) => (*outcome).clone(),
                None => ItemOutcome::Unconfirmed {
                    reason: "feed_report_unclear",
                    error: format!("the processed feed's status names no item {index} ({listing})"),
                },
            }
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Submitted {
    feed_id: String,
}

impl WalmartChannel {
    /// Sends `batch` as one bulk inventory feed and waits until Walmart has processed it.
    pub(super) async fn send_feed(&self, settings: FeedSettings, batch: &[Publish]) -> Sent {
        let started = Instant::now();
        let outcomes = self.submit_and_wait(settings, batch, started + settings.timeout).await;
        feed_sent(batch, outcomes, started, |outcome, publish| match outcome {
            ItemOutcome::Accepted => Verdict::Answered(publish.entry.item.accepted()),
            ItemOutcome::Refused { error, errors } => {
                Verdict::DeadLetter { reason: "rejected_data_error".to_owned(), error, body: Some(errors) }
            }
            ItemOutcome::Unconfirmed { reason, error } => Verdict::Retry { reason, error },
        })
    }

    async fn submit_and_wait(
        &self,
        settings: FeedSettings,
        batch: &[Publish],
        deadline: Instant,
    ) -> Result<Vec<ItemOutcome>, Refused> {
        let mut url = format!("{}/v3/feeds?feedType=inventory", self.config.base_url.trim_end_matches('/'));
        if let Some(ship_node) = &self.config.ship_node {
            url.push_str(&format!("&shipNode={}", percent_encode(ship_node)));
        }
        let boundary = format!("catalog-sync-{}", uuid::Uuid::new_v4().simple());
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"inventory.json\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}--\r\n",
            inventory_feed(batch)
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let submitted = self.create_feed(&url, (content_type.as_str(), body.as_str())).await?;
        let feed_id = serde_json::from_str::<Submitted>(&submitted.body)
            .map_err(|error| {
                let error =
                    format!("HTTP {} from the feed upload: {error}: {}", submitted.status, truncate(&submitted.body));
                (Verdict::Retry { reason: "unexpected_answer", error }, Some(submitted.status))
            })?
            .feed_id;
        tracing::info!(feed_id, n_items = batch.len(), "walmart feed submitted");
        let status_url = |offset: usize| {
            format!(
                "{}/v3/feeds/{}?includeDetails=true&offset={offset}&limit={STATUS_PAGE}",
                self.config.base_url.trim_end_matches('/'),
                percent_encode(&feed_id)
            )
        };
        let read = |offset: usize| {
            let url = status_url(offset);
            async move {
                let answer = self.call(reqwest::Method::GET, &url).await?;
                read_feed_page(&answer.body)
                    .map_err(|error| (Verdict::Retry { reason: "unexpected_answer", error }, Some(answer.status)))
            }
        };
        let first = loop {
            let page = patiently(deadline, settings.poll_interval, true, || read(0)).await?;
            match page.status.as_str() {
                "RECEIVED" | "INPROGRESS" => {}
                "PROCESSED" => break page,
                "ERROR" => {
                    let error = format!(
                        "feed {feed_id} failed whole (ERROR), none of its items processed: {}; they are sent again",
                        page.errors.unwrap_or_default()
                    );
                    return Err((Verdict::Retry { reason: "feed_error", error }, Some(200)));
                }
                other => {
                    let error = format!("feed {feed_id} has status {other:?}");
                    return Err((Verdict::Retry { reason: "unexpected_answer", error }, Some(200)));
                }
            }
        };
        let n_items = first.items_received.max(batch.len());
        let mut pages = vec![first];
        let mut offset = STATUS_PAGE;
        while offset < n_items {
            pages.push(patiently(deadline, settings.poll_interval, false, || read(offset)).await?);
            offset += STATUS_PAGE;
        }
        let listings: Vec<&str> = batch.iter().map(|publish| publish.listing.as_str()).collect();
        let outcomes = item_outcomes(&listings, &pages);
        let n_accepted = outcomes.iter().filter(|outcome| **outcome == ItemOutcome::Accepted).count();
        tracing::info!(feed_id, n_items = batch.len(), n_accepted, "walmart feed processed");
        Ok(outcomes)
    }

    /// A Marketplace call with the channel's access token and Walmart's headers: its answer
    /// if it succeeded, otherwise what Walmart's refusal means for every item. Its answer may
    /// list a page of 1,000 items' statuses: read up to the cap of such an answer.
    async fn call(&self, method: reqwest::Method, url: &str) -> Result<Answer, Refused> {
        let answer = with_token(&self.tokens, access_token_expired, |token| {
            exchange_list(self.request(&token, method.clone(), url))
        })
        .await
        .map_err(|verdict| (verdict, None))?;
        succeeded(answer, refusal)
    }

    /// `POST /v3/feeds` with the feed's file (`content_type` and `body`), as [`Self::call`],
    /// sent only while the round's claims are held: checked after any token fetch, just
    /// before the call that creates the feed (decision 0046).
    async fn create_feed(&self, url: &str, (content_type, body): (&str, &str)) -> Result<Answer, Refused> {
        let answer = with_token(&self.tokens, access_token_expired, |token| {
            let request = self.request(&token, reqwest::Method::POST, url);
            exchange_while_held(request.header("Content-Type", content_type).body(body.to_owned()))
        })
        .await
        .map_err(|verdict| (verdict, None))?;
        succeeded(answer, refusal)
    }

    /// A Marketplace request with `token` and Walmart's headers.
    fn request(&self, token: &Secret, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header("WM_SEC.ACCESS_TOKEN", token.expose())
            .header("WM_QOS.CORRELATION_ID", correlation_id())
            .header("WM_SVC.NAME", SERVICE_NAME)
            .header("Accept", "application/json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESSED: &str = r#"{"feedId":"F129C19240844B97A3C6AD8F1A2C4997@AU8BAQA","feedStatus":"PROCESSED","feedSubmissionDate":1568310803059,
        "itemsReceived":4,"itemsSucceeded":2,"itemsFailed":2,"itemsProcessing":0,"offset":0,"limit":1000,
        "itemDetails":{"itemIngestionStatus":[
          {"martId":0,"sku":"SKU-1","wpid":"7K69FC732QRA","index":0,"ingestionStatus":"SUCCESS","ingestionErrors":{"ingestionError":null}},
          {"martId":0,"sku":"SKU-2","index":1,"ingestionStatus":"DATA_ERROR","ingestionErrors":{"ingestionError":[{"type":"DATA_ERROR","code":"ERR_PDI_0034","field":"sku","description":"Item not found for the SKU."}]}},
          {"martId":0,"sku":"SKU-3","index":2,"ingestionStatus":"SYSTEM_ERROR","ingestionErrors":{"ingestionError":[{"type":"SYSTEM_ERROR","code":"ERR_INT_0001","description":"Internal error."}]}},
          {"martId":0,"sku":"SKU-4","ingestionStatus":"SUCCESS"}]}}"#;

    #[test]
    fn a_feed_status_names_each_item_s_fate() {
        let cases = [
            PROCESSED,
            r#"{"feedId":"F1","feedStatus":"INPROGRESS","itemsReceived":4,"itemsProcessing":4}"#,
            r#"{"feedId":"FE974CF4DF0249CC8024CF5E0542B547@AV0BBgA","feedStatus":"ERROR","ingestionErrors":{"ingestionError":[{"type":"DATA_ERROR","code":"ERR_EXT_DATA_05XXXXXXX","field":"","description":"Not a valid file extension."}]}}"#,
            "<html>busy</html>",
        ];
        let rendered: Vec<String> = cases.iter().map(|body| format!("{:#?}", read_feed_page(body))).collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        Ok(
            FeedPage {
                status: "PROCESSED",
                items_received: 4,
                errors: None,
                items: [
                    (
                        Some(
                            0,
                        ),
                        "SKU-1",
                        Accepted,
                    ),
                    (
                        Some(
                            1,
                        ),
                        "SKU-2",
                        Refused {
                            error: "DATA_ERROR ERR_PDI_0034: Item not found for the SKU.",
                            errors: "{\"ingestionError\":[{\"code\":\"ERR_PDI_0034\",\"description\":\"Item not found for the SKU.\",\"field\":\"sku\",\"type\":\"DATA_ERROR\"}]}",
                        },
                    ),
                    (
                        Some(
                            2,
                        ),
                        "SKU-3",
                        Unconfirmed {
                            reason: "feed_item_failed",
                            error: "SYSTEM_ERROR ERR_INT_0001: Internal error.",
                        },
                    ),
                    (
                        None,
                        "SKU-4",
                        Accepted,
                    ),
                ],
            },
        )
        Ok(
            FeedPage {
                status: "INPROGRESS",
                items_received: 4,
                errors: None,
                items: [],
            },
        )
        Ok(
            FeedPage {
                status: "ERROR",
                items_received: 0,
                errors: Some(
                    "DATA_ERROR ERR_EXT_DATA_05XXXXXXX: Not a valid file extension.",
                ),
                items: [],
            },
        )
        Err(
            "feed status: expected value at line 1 column 1: <html>busy</html>",
        )
        "#);
    }

    #[test]
    fn items_are_matched_by_index_then_sku_and_one_not_named_is_sent_again() {
        let page = read_feed_page(PROCESSED).expect("a page");
        let outcomes = item_outcomes(&["SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5"], &[page]);
        let rendered: Vec<String> = outcomes.iter().map(|outcome| format!("{outcome:?}")).collect();
        insta::assert_snapshot!(rendered.join("\n"), @r#"
        Accepted
        Refused { error: "DATA_ERROR ERR_PDI_0034: Item not found for the SKU.", errors: "{\"ingestionError\":[{\"code\":\"ERR_PDI_0034\",\"description\":\"Item not found for the SKU.\",\"field\":\"sku\",\"type\":\"DATA_ERROR\"}]}" }
        Unconfirmed { reason: "feed_item_failed", error: "SYSTEM_ERROR ERR_INT_0001: Internal error." }
        Accepted
        Unconfirmed { reason: "feed_report_unclear", error: "the processed feed's status names no item 4 (SKU-5)" }
        "#);
    }

    /// An entry whose SKU is another item's is never that item's outcome, whatever its index:
    /// a feed whose indices count from 1 gives each item its own outcome, by SKU.
    #[test]
    fn an_entry_is_never_the_outcome_of_an_item_whose_sku_it_does_not_name() {
        let outcome = |error: &str| ItemOutcome::Refused { error: error.to_owned(), errors: String::new() };
        let page = FeedPage {
            status: "PROCESSED".to_owned(),
            items_received: 2,
            errors: None,
            items: vec![
                (Some(1), "SKU-1".to_owned(), ItemOutcome::Accepted),
                (Some(2), "SKU-2".to_owned(), outcome("bad")),
            ],
        };
        let outcomes = item_outcomes(&["SKU-1", "SKU-2"], &[page]);
        assert_eq!(outcomes, [ItemOutcome::Accepted, outcome("bad")]);
    }
}

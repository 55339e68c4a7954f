//! Dead letters through the API: listed with filters, retried (requeues the item's current
//! version; 409 at the loop guard), resolved with a note; every action audited.

use catalog_core::StockChange;
use catalog_store::contract::{batch, incoming, offer};
use catalog_store::{OutboxClaim, PublishOutcome, PublishRecord, Role, SentQuantity};
use reqwest::Method;
use serde_json::json;

use crate::errors::documented_error_codes;
use crate::Server;

/// Applies one event for `ABC-1` and dead-letters its publish on the storefront; the record
/// it dead-lettered with.
pub(crate) async fn dead_letter_a_publish(server: &Server) -> PublishRecord {
    dead_letter_a_publish_with(server, "unprocessable", None).await
}

/// As `dead_letter_a_publish`, the storefront's words `error`, and what was sent (`sent`).
pub(crate) async fn dead_letter_a_publish_with(
    server: &Server,
    error: &str,
    sent: Option<SentQuantity>,
) -> PublishRecord {
    let key = offer("canary", "acme", "ABC-1");
    server
        .store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    let lease = std::time::Duration::from_secs(30);
    let claimed = server.store.claim_outbox("storefront", &OutboxClaim::immediate(10, lease)).await.expect("claim");
    let record = PublishRecord {
        claim: claimed[0].claim,
        item_id: claimed[0].item.id(),
        channel: "storefront".into(),
        version: claimed[0].item.version(),
        attempt: 1,
        outcome: PublishOutcome::DeadLettered,
        status: Some(422),
        latency_ms: Some(3),
        error: Some(error.into()),
        dead_letter_reason: Some("rejected_4xx".into()),
        body: Some("{}".into()),
        sent,
    };
    server.store.record_publish(&record).await.expect("record");
    record
}

async fn an_operator_retries_and_resolves_a_dead_letter(server: Server) {
    let operator = server.token("otto", Role::Operator).await;
    let viewer = server.token("vera", Role::Viewer).await;
    let record = dead_letter_a_publish(&server).await;
    let lease = std::time::Duration::from_secs(30);

    let letters = server.get_json(&viewer, "/v1/dead-letters?tenant=canary&channel=storefront&stage=publish").await;
    let letters = letters.as_array().expect("list");
    assert_eq!(letters.len(), 1);
    let id = letters[0]["dead_letter_id"].as_i64().expect("id");
    assert!(server.get_json(&viewer, "/v1/dead-letters?tenant=wide").await.as_array().expect("list").is_empty());
    // A page of none read as "nothing open": a limit gives at least one.
    assert_eq!(server.get_json(&viewer, "/v1/dead-letters?limit=0").await[0]["dead_letter_id"], id);
    // A stage that is none (a typo, or another case) is refused, not answered with no letter.
    for stage in ["publsh", "Publish"] {
        let typo = server.get(&viewer, &format!("/v1/dead-letters?stage={stage}")).await;
        assert_eq!(typo.status(), 400, "stage {stage}");
        assert_eq!(typo.json::<serde_json::Value>().await.expect("json")["code"], "invalid_query");
    }
    let trace = server.get_json(&viewer, "/v1/tenants/canary/items/abc-1/trace").await;
    assert_eq!(trace["open_dead_letters"][0]["dead_letter_id"], id);
    assert_eq!(trace["publishes"][0]["result"], "dead_lettered");

    let retry = server.send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/retry"), json!(null)).await;
    assert_eq!(retry.status(), 200);
    let retry: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(retry, json!({ "result": "requeued", "version": 1, "retries": 1 }));
    let claimed = server.store.claim_outbox("storefront", &OutboxClaim::immediate(10, lease)).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the item's current version waits again");
    server.store.record_publish(&PublishRecord { attempt: 1, ..record.clone() }).await.expect("record");
    let retry = server.send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/retry"), json!(null)).await;
    assert_eq!(retry.status(), 200);
    let guarded = server.send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/retry"), json!(null)).await;
    assert_eq!(guarded.status(), 409, "the loop guard (2 retries in these tests)");
    let error: serde_json::Value = guarded.json().await.expect("json");
    assert_eq!(error["code"], "loop_guard");

    let empty =
        server.send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/resolve"), json!({ "note": " " })).await;
    assert_eq!(empty.status(), 400);
    let resolved = server
        .send(
            Method::POST,
            &operator,
            &format!("/v1/dead-letters/{id}/resolve"),
            json!({ "note": "storefront fixed the SKU" }),
        )
        .await;
    assert_eq!(resolved.status(), 200);
    let resolved: serde_json::Value = resolved.json().await.expect("json");
    assert_eq!(resolved["resolution"], "operator");
    assert_eq!(resolved["note"], "storefront fixed the SKU");
    let again = server
        .send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/resolve"), json!({ "note": "again" }))
        .await;
    assert_eq!(again.status(), 409);
    assert!(
        server.get_json(&viewer, "/v1/dead-letters").await.as_array().expect("list").is_empty(),
        "open ones by default"
    );
    assert_eq!(server.get_json(&viewer, "/v1/dead-letters?state=resolved").await[0]["dead_letter_id"], id);

    let audit = server.get_json(&viewer, "/v1/audit").await;
    let actions: Vec<&str> =
        audit.as_array().expect("list").iter().map(|entry| entry["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["dead_letter_resolve", "dead_letter_retry", "dead_letter_retry"]);
    assert_eq!(audit[0]["before"]["resolved"], false);
    assert_eq!(audit[0]["after"]["resolved"], true);
    assert_eq!(audit[1]["after"]["operator_retries"], 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_and_resolves_a_dead_letter_on_sqlite() {
    an_operator_retries_and_resolves_a_dead_letter(Server::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_and_resolves_a_dead_letter_on_postgres() {
    an_operator_retries_and_resolves_a_dead_letter(Server::postgres().await).await;
}

/// A channel filter naming no channel (a typo, another case) is refused with the channels
/// there are, as a stage is: answered with no letter, it read as "that channel is healed". A
/// channel the worker no longer publishes stays listable while a letter names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_filter_naming_no_known_channel_is_refused() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    dead_letter_a_publish(&server).await;
    let letters = server.get_json(&viewer, "/v1/dead-letters?channel=storefront").await;
    assert_eq!(letters.as_array().expect("list").len(), 1);
    for channel in ["Storefront", "amazn"] {
        let typo = server.get(&viewer, &format!("/v1/dead-letters?channel={channel}")).await;
        assert_eq!(typo.status(), 400, "channel {channel}");
        let error: serde_json::Value = typo.json().await.expect("json");
        assert_eq!(error["code"], "invalid_query");
        assert!(error["message"].as_str().expect("message").contains("storefront"), "names the channels: {error}");
    }
    server.stop().await;

    let server = Server::sqlite_for_channels(&["shop-eu"]).await;
    let viewer = server.token("vera", Role::Viewer).await;
    dead_letter_a_publish(&server).await;
    let letters = server.get_json(&viewer, "/v1/dead-letters?channel=storefront").await;
    assert_eq!(letters.as_array().expect("list").len(), 1, "the storefront's letter, left behind");
    assert!(server.get_json(&viewer, "/v1/dead-letters?channel=shop-eu").await.as_array().expect("list").is_empty());
    let typo = server.get(&viewer, "/v1/dead-letters?channel=shop-us").await;
    assert_eq!(typo.status(), 400);
    let error: serde_json::Value = typo.json().await.expect("json");
    assert!(error["message"].as_str().expect("message").contains("shop-eu"), "names the channels: {error}");
    server.stop().await;
}

/// A path segment that is not a dead letter id, or not text at all, is answered 400 with a
/// documented code and a message that says what was wrong (the code was `invalid_path`, not
/// in the list, with serde's "Cannot parse `abc` to a `i64`").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_path_is_answered_with_a_documented_code() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let documented = documented_error_codes();
    for (path, code) in [
        ("/v1/dead-letters/abc/retry", "invalid_dead_letter_id"),
        ("/v1/dead-letters/1.5/resolve", "invalid_dead_letter_id"),
        ("/v1/dead-letters/99999999999999999999/retry", "invalid_dead_letter_id"),
        ("/v1/tenants/%FF/sync", "invalid_path"),
    ] {
        let method = if path.ends_with("/sync") { Method::PUT } else { Method::POST };
        let answer = server.send(method, &operator, path, json!({ "note": "n", "enabled": true })).await;
        assert_eq!(answer.status(), 400, "{path}");
        let error: serde_json::Value = answer.json().await.expect("json");
        assert_eq!(error["code"], code, "{path}: {error}");
        assert!(documented.iter().any(|documented| documented == code), "{code} in {documented:?}");
        let message = error["message"].as_str().expect("message");
        assert!(!message.contains("i64") && !message.contains("Cannot parse"), "{message}");
    }
    let missing = server.send(Method::POST, &operator, "/v1/dead-letters/12345/retry", json!(null)).await;
    assert_eq!(missing.status(), 404, "a well-formed id no letter has");
    server.stop().await;
}

/// The loop guard counts operator retries alone, as the code does, and says so: its 409 does
/// not claim failures when nothing was sent since (no worker ran), and the help text and
/// docs/support.md say auto-heal's rounds are not counted (both said they were).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_guard_counts_operator_retries_and_claims_no_failure_it_did_not_see() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    dead_letter_a_publish(&server).await;
    let letters = server.get_json(&operator, "/v1/dead-letters").await;
    let id = letters[0]["dead_letter_id"].as_i64().expect("id");
    for _ in 0..2 {
        let retry = server.send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/retry"), json!(null)).await;
        assert_eq!(retry.status(), 200);
    }
    let guarded = server.send(Method::POST, &operator, &format!("/v1/dead-letters/{id}/retry"), json!(null)).await;
    assert_eq!(guarded.status(), 409);
    let error: serde_json::Value = guarded.json().await.expect("json");
    let message = error["message"].as_str().expect("message");
    assert!(!message.contains("fails"), "nothing was sent after the retries: {message}");
    assert!(message.contains("2 times by an operator") && message.contains("without a success since"), "{message}");
    server.stop().await;

    let help = <admin_api::config::AdminArgs as clap::CommandFactory>::command().render_long_help().to_string();
    let max_retries = help.split("--max-retries").nth(1).expect("the option").split("\n\n").next().expect("help");
    assert!(max_retries.contains("not counted") && !max_retries.contains("count too"), "{max_retries}");
    let support = include_str!("../../../../docs/support.md");
    assert!(!support.contains("auto-heal's included"), "docs/support.md counts auto-heal's rounds");
}

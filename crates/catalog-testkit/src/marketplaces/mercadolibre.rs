//! Mercado Libre on a local port: items and their variations, the multiget read, and user
//! products' stock with its `x-version`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::Shared;

pub(super) async fn item(State(shared): State<Shared>, Path(item): Path<String>, Json(body): Json<Value>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let quantity = body["available_quantity"].as_i64().unwrap_or(-1);
    shared.set(&item, quantity);
    Json(json!({ "id": item, "available_quantity": quantity })).into_response()
}

/// `PUT /items/{item}/variations/{variation}`: the variation's listing is `{item}/{variation}`.
pub(super) async fn variation(
    State(shared): State<Shared>,
    Path((item, variation)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let quantity = body["available_quantity"].as_i64().unwrap_or(-1);
    shared.set(&format!("{item}/{variation}"), quantity);
    Json(json!({ "id": variation.parse::<u64>().unwrap_or(0), "available_quantity": quantity })).into_response()
}

/// `GET /user-products/{id}/stock`: the user product's locations, listings `up:{id}` (the
/// selling address) and `up:{id}@{store}/{node}` (a warehouse), with the stock's `x-version`.
/// Any user product exists, with no locations until one is set.
pub(super) async fn stock(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let locations: Vec<Value> = shared
        .shown_under(&format!("up:{id}"))
        .into_iter()
        .filter_map(|(rest, quantity)| {
            if rest.is_empty() {
                return Some(json!({ "type": "selling_address", "quantity": quantity }));
            }
            let (store_id, node) = rest.strip_prefix('@')?.split_once('/')?;
            Some(json!({ "type": "seller_warehouse", "store_id": store_id, "network_node_id": node, "quantity": quantity }))
        })
        .collect();
    let version = shared.stock_versions.lock().expect("marketplace state").get(&id).copied().unwrap_or(1);
    ([("x-version", version.to_string())], Json(json!({ "locations": locations, "user_id": 241983636, "id": id })))
        .into_response()
}

/// `PUT /user-products/{id}/stock/type/{type}` with the `x-version` read: 400 without it,
/// 409 when it is not the stock's version; else each location is set and the version moves on.
pub(super) async fn set_stock(
    State(shared): State<Shared>,
    Path((id, location_type)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let mercadolibre_error = |status: StatusCode, error: &str, message: &str| {
        (status, Json(json!({ "message": message, "error": error, "status": status.as_u16(), "cause": [] })))
            .into_response()
    };
    let Some(presented) = headers.get("x-version").and_then(|value| value.to_str().ok()) else {
        return mercadolibre_error(StatusCode::BAD_REQUEST, "bad_request", "x-version header is required");
    };
    let mut versions = shared.stock_versions.lock().expect("marketplace state");
    let version = versions.entry(id.clone()).or_insert(1);
    if presented != version.to_string() {
        return mercadolibre_error(StatusCode::CONFLICT, "conflict", "version mismatch");
    }
    *version += 1;
    match location_type.as_str() {
        "selling_address" => shared.set(&format!("up:{id}"), body["quantity"].as_i64().unwrap_or(-1)),
        _ => {
            for location in body["locations"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let text = |name: &str| location[name].as_str().unwrap_or_default().to_owned();
                let listing = format!("up:{id}@{}/{}", text("store_id"), text("network_node_id"));
                shared.set(&listing, location["quantity"].as_i64().unwrap_or(-1));
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The multiget `GET /items?ids=…&attributes=id,available_quantity`.
pub(super) async fn read(State(shared): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(answer) = shared.misbehave() {
        return answer;
    }
    let ids = query.get("ids").cloned().unwrap_or_default();
    let answers: Vec<Value> = ids
        .split(',')
        .filter(|id| !id.is_empty())
        .map(|id| {
            // An item with variations shows each, and their sum as its own quantity.
            let variations: Vec<Value> = shared
                .shown_under(&format!("{id}/"))
                .into_iter()
                .filter_map(|(variation, quantity)| {
                    let variation: u64 = variation.parse().ok()?;
                    Some(json!({ "id": variation, "available_quantity": quantity }))
                })
                .collect();
            let total: i64 = variations.iter().filter_map(|variation| variation["available_quantity"].as_i64()).sum();
            match (shared.shown(id), variations.is_empty()) {
                (Some(quantity), true) => json!({ "code": 200, "body": { "id": id, "available_quantity": quantity } }),
                (_, false) => {
                    json!({ "code": 200, "body": { "id": id, "available_quantity": total, "variations": variations } })
                }
                (None, true) => json!({ "code": 404, "body": { "message": format!("Item with id {id} not found"),
                    "error": "not_found", "status": 404, "cause": [] } }),
            }
        })
        .collect();
    Json(Value::Array(answers)).into_response()
}

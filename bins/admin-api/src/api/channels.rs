//! Channel health (`GET /v1/channels`): for every sales channel the store knows, its publish
//! attempts of the last hour by result (published, throttled, retried, dead-lettered,
//! skipped for an unmapped SKU), when it was last throttled, what waits in its outbox, its
//! open and quarantined dead letters, and one word for the whole.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use catalog_store::{DeadLetterCount, OutboxDepth, PublishAttemptCount, Role};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// How far back a channel's attempts are counted.
pub const WINDOW_MINUTES: i64 = 60;
/// A channel throttled this recently is `throttled`.
const THROTTLED_RECENTLY_MINUTES: i64 = 5;

/// One channel's recent health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChannelHealth {
    pub channel: String,
    /// `failing` (dead letters open, or failed attempts in the window), `throttled` (the
    /// platform asked to wait in the last 5 minutes), `ok`, or `idle` (nothing in the window
    /// and nothing waiting).
    pub health: &'static str,
    /// Attempts in the last `window_minutes` by result.
    pub attempts: BTreeMap<String, u64>,
    pub window_minutes: i64,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_throttled_at: Option<DateTime<Utc>>,
    /// Items waiting to be published on the channel.
    pub pending: u64,
    /// How long the longest-waiting of them has waited.
    pub oldest_waiting_seconds: Option<i64>,
    pub dead_letters_open: u64,
    pub dead_letters_quarantined: u64,
}

/// Every channel's health, from the store's counts, at `now`.
pub fn channel_health(
    attempts: &[PublishAttemptCount],
    depths: &[OutboxDepth],
    dead_letters: &[DeadLetterCount],
    now: DateTime<Utc>,
) -> Vec<ChannelHealth> {
    let mut channels: BTreeMap<String, ChannelHealth> = BTreeMap::new();
    fn entry<'a>(channels: &'a mut BTreeMap<String, ChannelHealth>, channel: &str) -> &'a mut ChannelHealth {
        channels.entry(channel.to_owned()).or_insert_with(|| ChannelHealth {
            channel: channel.to_owned(),
            health: "idle",
            attempts: BTreeMap::new(),
            window_minutes: WINDOW_MINUTES,
            last_attempt_at: None,
            last_throttled_at: None,
            pending: 0,
            oldest_waiting_seconds: None,
            dead_letters_open: 0,
            dead_letters_quarantined: 0,
        })
    }
    for count in attempts {
        let health = entry(&mut channels, &count.channel);
        health.attempts.insert(count.result.clone(), count.attempts);
        health.last_attempt_at = health.last_attempt_at.max(Some(count.last_at));
        if count.result == "throttled" {
            health.last_throttled_at = Some(count.last_at);
        }
    }
    for depth in depths {
        let health = entry(&mut channels, &depth.channel);
        health.pending = depth.pending;
        health.oldest_waiting_seconds = depth.oldest_enqueued_at.map(|at| (now - at).num_seconds().max(0));
    }
    for count in dead_letters {
        let health = entry(&mut channels, &count.channel);
        health.dead_letters_open = count.open;
        health.dead_letters_quarantined = count.quarantined;
    }
    channels
        .into_values()
        .map(|mut health| {
            health.health = judge(&health, now);
            health
        })
        .collect()
}

fn judge(health: &ChannelHealth, now: DateTime<Utc>) -> &'static str {
    let failed = ["retry", "dead_lettered"].iter().any(|result| health.attempts.get(*result).is_some_and(|n| *n > 0));
    if health.dead_letters_open > 0 || failed {
        "failing"
    } else if health.last_throttled_at.is_some_and(|at| now - at < Duration::minutes(THROTTLED_RECENTLY_MINUTES)) {
        "throttled"
    } else if health.attempts.is_empty() && health.pending == 0 {
        "idle"
    } else {
        "ok"
    }
}

#[utoipa::path(get, path = "/v1/channels", tag = "channels", responses((status = 200, description = "Every channel's health over the last hour", body = Vec<ChannelHealth>), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list_channels(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ChannelHealth>>, ApiError> {
    caller.require(Role::Viewer)?;
    let now = Utc::now();
    let attempts = state.store.publish_attempt_counts(now - Duration::minutes(WINDOW_MINUTES)).await?;
    let depths = state.store.outbox_depth().await?;
    let dead_letters = state.store.dead_letter_counts().await?;
    Ok(Json(channel_health(&attempts, &depths, &dead_letters, now)))
}

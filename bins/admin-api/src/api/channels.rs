//! Channel health (`GET /v1/channels`): for every sales channel the store knows, its publish
//! attempts of the last hour by result (published, throttled, retried, dead-lettered,
//! skipped for an unmapped SKU), when it was last throttled, what waits in its outbox, its
//! open and quarantined dead letters, the drifts reconciliation corrected on it, and one word
//! for the whole.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use catalog_store::{DeadLetterCount, DriftCount, OutboxDepth, PublishAttemptCount, Role};
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
    /// `failing` (dead letters open, or failed attempts in the window), `stalled` (items have
    /// waited longer than the window and none was attempted in it: no worker publishes the
    /// channel), `throttled` (the platform asked to wait in the last 5 minutes), `ok`, or
    /// `idle` (nothing in the window and nothing waiting).
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
    /// Drifts reconciliation corrected on the channel in the last `window_minutes`, by kind
    /// (`missing`, `quantity_differs`, `version_behind`, `version_ahead`): what the channel
    /// showed that it had not been sent.
    pub drifts: BTreeMap<String, u64>,
    pub last_drift_at: Option<DateTime<Utc>>,
}

/// What a channel's health is read from: the store's counts since the window's start.
struct HealthFacts<'a> {
    attempts: &'a [PublishAttemptCount],
    depths: &'a [OutboxDepth],
    dead_letters: &'a [DeadLetterCount],
    drifts: &'a [DriftCount],
}

/// Reads the facts of the last `WINDOW_MINUTES` from the store and judges every channel.
pub async fn read_health(
    store: &dyn catalog_store::CatalogStore,
    now: DateTime<Utc>,
) -> Result<Vec<ChannelHealth>, catalog_store::StoreError> {
    let since = now - Duration::minutes(WINDOW_MINUTES);
    let attempts = store.publish_attempt_counts(since).await?;
    let depths = store.outbox_depth().await?;
    let dead_letters = store.dead_letter_counts().await?;
    let drifts = store.drift_counts(since).await?;
    let facts = HealthFacts { attempts: &attempts, depths: &depths, dead_letters: &dead_letters, drifts: &drifts };
    Ok(channel_health(&facts, now))
}

/// Every channel's health, from the store's counts, at `now`.
fn channel_health(facts: &HealthFacts<'_>, now: DateTime<Utc>) -> Vec<ChannelHealth> {
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
            drifts: BTreeMap::new(),
            last_drift_at: None,
        })
    }
    for count in facts.attempts {
        let health = entry(&mut channels, &count.channel);
        health.attempts.insert(count.result.clone(), count.attempts);
        health.last_attempt_at = health.last_attempt_at.max(Some(count.last_at));
        if count.result == "throttled" {
            health.last_throttled_at = Some(count.last_at);
        }
    }
    for depth in facts.depths {
        let health = entry(&mut channels, &depth.channel);
        health.pending = depth.pending;
        health.oldest_waiting_seconds = depth.oldest_enqueued_at.map(|at| (now - at).num_seconds().max(0));
    }
    for count in facts.dead_letters {
        let health = entry(&mut channels, &count.channel);
        health.dead_letters_open = count.open;
        health.dead_letters_quarantined = count.quarantined;
    }
    for count in facts.drifts {
        let health = entry(&mut channels, &count.channel);
        health.drifts.insert(count.kind.clone(), count.drifts);
        health.last_drift_at = health.last_drift_at.max(Some(count.last_at));
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
    // Longer than any send takes (a marketplace feed is waited for up to 40 minutes), so a
    // channel this quiet while items wait has no publisher: every worker runs with
    // `--publish off`, or none has the channel in its channels file.
    let stalled = health.attempts.is_empty()
        && health.oldest_waiting_seconds.is_some_and(|seconds| seconds > WINDOW_MINUTES * 60);
    if health.dead_letters_open > 0 || failed {
        "failing"
    } else if stalled {
        "stalled"
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
    Ok(Json(read_health(state.store.as_ref(), Utc::now()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(pending: u64, waited_minutes: i64, now: DateTime<Utc>) -> OutboxDepth {
        OutboxDepth {
            channel: "amazon".into(),
            pending,
            oldest_enqueued_at: (pending > 0).then(|| now - Duration::minutes(waited_minutes)),
        }
    }

    fn attempt(result: &str, minutes_ago: i64, now: DateTime<Utc>) -> PublishAttemptCount {
        PublishAttemptCount {
            channel: "amazon".into(),
            result: result.into(),
            attempts: 1,
            last_at: now - Duration::minutes(minutes_ago),
        }
    }

    #[test]
    fn one_word_for_a_channel() {
        let now = Utc::now();
        let judged = |attempts: &[PublishAttemptCount], depths: &[OutboxDepth]| {
            let facts = HealthFacts { attempts, depths, dead_letters: &[], drifts: &[] };
            channel_health(&facts, now).first().map(|health| health.health)
        };
        assert_eq!(judged(&[], &[]), None, "a channel the store has never seen");
        assert_eq!(judged(&[], &[depth(0, 0, now)]), Some("idle"));
        assert_eq!(judged(&[], &[depth(3, 8, now)]), Some("ok"), "a feed waited for: minutes without an attempt");
        assert_eq!(judged(&[], &[depth(3, 61, now)]), Some("stalled"), "waiting longer than the window, no attempt");
        let published = [attempt("published", 2, now)];
        assert_eq!(judged(&published, &[depth(3, 61, now)]), Some("ok"), "a channel behind, but publishing");
        let throttled = [attempt("throttled", 2, now)];
        assert_eq!(judged(&throttled, &[depth(3, 61, now)]), Some("throttled"));
        let retried = [attempt("retry", 30, now)];
        assert_eq!(judged(&retried, &[depth(3, 61, now)]), Some("failing"));
    }
}

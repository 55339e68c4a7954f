//! OAuth2 access tokens for the channels that use them (Amazon's Login with Amazon, eBay,
//! Walmart, Mercado Libre): fetched from the platform's token endpoint with a refresh token
//! or client credentials, kept until shortly before they expire, a day at most (and until
//! they expire when the token endpoint cannot be reached or fails), and fetched again at once
//! when the platform answers that the token expired. No token or secret reaches a log.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::body::{read_body_capped, MAX_ANSWER_BYTES, MIB};
use crate::channel::Secret;
use crate::response::{parse_retry_after, TransportError, Verdict, MAX_BODY_BYTES};

/// How the token endpoint is asked for an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `grant_type=refresh_token&refresh_token=…` (Amazon, eBay, Mercado Libre). A platform
    /// that rotates refresh tokens (Mercado Libre) answers with a new one, kept for the next
    /// refresh.
    RefreshToken(Secret),
    /// `grant_type=client_credentials` (Walmart).
    ClientCredentials,
}

/// Where the client id and secret go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)` (eBay, Walmart).
    Basic,
    /// `client_id` and `client_secret` form fields (Amazon, Mercado Libre).
    Form,
}

/// A platform's token endpoint and the credentials it is asked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEndpoint {
    pub url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub grant: Grant,
    pub client_auth: ClientAuth,
    /// Further form fields, e.g. eBay's `scope`.
    pub extra_form: Vec<(String, String)>,
    /// Further headers, e.g. Walmart's `WM_SVC.NAME`.
    pub extra_headers: Vec<(String, String)>,
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The endpoint refused the credentials (4xx): an operator must renew them.
    #[error("the token endpoint refused the credentials: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// The endpoint could not be reached, failed (5xx, timeout) or throttled (429): asked
    /// again after `retry_after` (its `Retry-After`, else [`UNAVAILABLE_HELD_FOR`]).
    #[error("the token endpoint is unavailable: {error}")]
    Unavailable { error: String, retry_after: Duration },
    /// The endpoint answered something that is not a token.
    #[error("the token endpoint answered no token: {0}")]
    Malformed(String),
}

impl TokenError {
    /// The endpoint could not be reached or answer: asked again after [`UNAVAILABLE_HELD_FOR`].
    pub(crate) fn unavailable(error: String) -> Self {
        TokenError::Unavailable { error, retry_after: UNAVAILABLE_HELD_FOR }
    }

    /// The recorded reason of a publish that had no token.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Refused { .. } => "token_refused",
            TokenError::Unavailable { .. } => "token_unavailable",
            TokenError::Malformed(_) => "token_malformed",
        }
    }
}

impl From<TokenError> for Verdict {
    /// No request went out, and the items' attempts are not spent on the token endpoint:
    /// refused credentials stay refused until an operator renews them, and an answer that is
    /// no token (most likely a `token_url` that is not the token endpoint) is held the same
    /// way, and pages (`Verdict::Blocked`); an endpoint that throttled or failed holds the
    /// channel quietly until its `Retry-After` (`Verdict::Unavailable`), only staleness told.
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Refused { .. } | TokenError::Malformed(_) => {
                Verdict::Blocked { reason: error.reason(), error: error.to_string(), retry_after: REFUSAL_HELD_FOR }
            }
            TokenError::Unavailable { retry_after, .. } => {
                Verdict::Unavailable { reason: error.reason(), error: error.to_string(), retry_after }
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

/// What an answer without `expires_in` is assumed to last.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// The longest an access token is taken to last, whatever its `expires_in` says. The longest
/// any platform here issues lasts six hours (Mercado Libre); a much longer one is a broken
/// answer, and a token the platform stops taking is fetched again at its 401 anyway. Unbounded,
/// an `expires_in` near 2^63 seconds overflowed the clock and panicked the fetch.
const LONGEST_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// A token is fetched again this long before it expires (or at half its life, if shorter).
const REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// How long a refusal of the credentials answers every request without asking again: a
/// refused grant stays refused until an operator renews it, and each lane's every send (and
/// every reconcile read) asking the endpoint again would make up to the channel's rate of
/// token requests, which a platform counts against the application (all its sellers).
pub(crate) const REFUSAL_HELD_FOR: Duration = Duration::from_secs(30);
/// How long an endpoint that could not be reached or failed is left alone, at least.
pub(crate) const UNAVAILABLE_HELD_FOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Cached {
    access_token: Secret,
    /// When a new token is fetched, ahead of `expires_at`.
    renew_at: Instant,
    /// When the platform stops taking the token: until then it is used when the fetch of
    /// its successor fails.
    expires_at: Instant,
}

impl State {
    /// The cached token while it has not expired, the one to use when its renewal failed with
    /// `error`, if that failure is one to wait out: the endpoint unreachable, failing or
    /// throttled. A renewal refused (a revoked or spent refresh token: `invalid_grant`) or
    /// answered with no token (a wrong `token_url`) stays so until an operator acts, and is
    /// answered at once, as `token_refused` or `token_malformed` that hold the channel and
    /// alert (CatalogChannelCredentialsRefused), rather than hidden until the token expires.
    fn still_valid(&self, error: &TokenError) -> Option<(Secret, Instant)> {
        if !matches!(error, TokenError::Unavailable { .. }) {
            return None;
        }
        let cached = self.cached.as_ref().filter(|cached| cached.expires_at > Instant::now())?;
        Some((cached.access_token.clone(), cached.expires_at))
    }
}

#[derive(Debug)]
struct State {
    cached: Option<Cached>,
    /// The endpoint's last failure and until when it answers for it (`REFUSAL_HELD_FOR`).
    failed: Option<(TokenError, Instant)>,
    /// The refresh token to use next: rotated by platforms that rotate it.
    refresh_token: Option<Secret>,
    /// What the refresh token file held when this cache last read or wrote it: a token found
    /// there that differs was written since by another process sharing the file. A write
    /// that failed leaves it as it was, so the token this cache spent, still in the file, is
    /// not taken back for a newer one.
    kept: Option<Secret>,
    /// How many access tokens were fetched, for tests and metrics.
    n_fetched: u64,
    /// Whether the configured refresh token was presented once after the one in use (the
    /// file's) was refused: an operator who renewed the grant renews the variable and
    /// restarts, and the file would otherwise keep presenting the revoked token.
    configured_tried: bool,
}

/// One channel's access token, shared by its requests: at most one fetch at a time.
#[derive(Debug)]
pub struct TokenCache {
    fetcher: Arc<Fetcher>,
    state: Arc<Mutex<State>>,
}

/// How a token is fetched, shared with the task that fetches it.
#[derive(Debug)]
struct Fetcher {
    endpoint: TokenEndpoint,
    client: reqwest::Client,
    /// Where a rotated refresh token is written before it is relied on.
    refresh_token_file: Option<PathBuf>,
}

impl TokenCache {
    pub fn new(endpoint: TokenEndpoint, client: reqwest::Client) -> Self {
        let refresh_token = configured_refresh_token(&endpoint);
        Self::starting(Fetcher { endpoint, client, refresh_token_file: None }, refresh_token, None)
    }

    fn starting(fetcher: Fetcher, refresh_token: Option<Secret>, kept: Option<Secret>) -> Self {
        Self {
            fetcher: Arc::new(fetcher),
            state: Arc::new(Mutex::new(State {
                cached: None,
                failed: None,
                refresh_token,
                kept,
                n_fetched: 0,
                configured_tried: false,
            })),
        }
    }

    /// Keeps the refresh token in the file at `path`, for platforms that rotate it (Mercado
    /// Libre spends a refresh token on its first use): a token already there replaces the
    /// configured one, and each rotated token is written there (owner-only, replaced whole)
    /// before the access token that came with it is used. Processes may share the file (two
    /// workers draining one channel, the old and the new one of a deploy): each refresh reads
    /// it first, and takes the token another process rotated since (see `Fetcher::refresh`).
    pub fn keeping_refresh_token_in(self, path: PathBuf) -> std::io::Result<Self> {
        let kept = read_secret_file(&path)?;
        let Fetcher { endpoint, client, .. } = &*self.fetcher;
        let refresh_token = kept.clone().or_else(|| configured_refresh_token(endpoint));
        let fetcher = Fetcher { endpoint: endpoint.clone(), client: client.clone(), refresh_token_file: Some(path) };
        Ok(Self::starting(fetcher, refresh_token, kept))
    }

    /// A valid access token: the cached one, or a new one when there is none or it is about
    /// to expire. A renewal that finds the endpoint unavailable (unreachable, 5xx, 429) while
    /// the cached token has not expired yet answers the cached token (the next call tries
    /// again, once the failure's hold has passed): before, a token endpoint throttled or down
    /// a minute before the expiry held the channel while its token was still good. A renewal
    /// refused or answered with no token answers its error, as with no token cached.
    pub async fn access_token(&self) -> Result<Secret, TokenError> {
        let mut state = Arc::clone(&self.state).lock_owned().await;
        if let Some(cached) = state.cached.as_ref().filter(|cached| cached.renew_at > Instant::now()) {
            return Ok(cached.access_token.clone());
        }
        // The fetch, and keeping what it rotates, run to their end in a task of their own,
        // even when the request that wanted the token is cancelled (its timeout, a shutdown):
        // a platform that rotates refresh tokens spent the old one once it answered, and the
        // new one, dropped with the caller, would leave nothing to refresh with.
        let fetcher = Arc::clone(&self.fetcher);
        tokio::spawn(async move { fetcher.refresh(&mut state).await })
            .await
            .unwrap_or_else(|error| Err(TokenError::unavailable(format!("the token fetch failed: {error}"))))
    }

    /// The platform said `used` has expired or is invalid: the next call fetches a new one.
    /// A token already replaced by a concurrent request is left alone, so a burst of such
    /// answers fetches once.
    pub async fn expired(&self, used: &Secret) {
        let mut state = self.state.lock().await;
        if state.cached.as_ref().is_some_and(|cached| &cached.access_token == used) {
            state.cached = None;
        }
    }

    /// Access tokens fetched so far.
    pub async fn n_fetched(&self) -> u64 {
        self.state.lock().await.n_fetched
    }
}

impl Fetcher {
    /// Fetches a new access token into `state`, keeping a rotated refresh token. With a
    /// refresh token file, the token another process kept there since this one last read it
    /// is the one presented: that process spent the one held here. Two refreshing at once
    /// may both read the file before either keeps its new token; the one refused reads the
    /// file again once, and refreshes again if the other has kept a new token meanwhile (a
    /// spent token is refused with `invalid_grant`; whatever the refusal, a newer token is
    /// worth its one try).
    async fn refresh(&self, state: &mut State) -> Result<Secret, TokenError> {
        // A failure answers for a while, unless another process has kept a new token since.
        let newer = self.take_newer_kept(state);
        if let Some((error, until)) = state.failed.as_ref().filter(|(_, until)| !newer && *until > Instant::now()) {
            tracing::debug!(
                until_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
                "the token endpoint failed a moment ago: not asked again yet"
            );
            if let Some((access_token, _)) = state.still_valid(error) {
                return Ok(access_token);
            }
            // A wait asked for is what is left of it.
            return Err(match error.clone() {
                TokenError::Unavailable { error, .. } => {
                    TokenError::Unavailable { error, retry_after: until.saturating_duration_since(Instant::now()) }
                }
                error => error,
            });
        }
        let fetched = match self.fetch(state.refresh_token.as_ref()).await {
            Err(TokenError::Refused { .. }) if self.take_newer_kept(state) => {
                self.fetch(state.refresh_token.as_ref()).await
            }
            fetched => fetched,
        };
        // The token in use refused, and the configured one differs (renewed since the file
        // was written): presented once per process, and kept in place of the other if taken.
        let fetched = match fetched {
            Err(TokenError::Refused { .. }) if !state.configured_tried => {
                state.configured_tried = true;
                let configured = configured_refresh_token(&self.endpoint)
                    .filter(|configured| Some(configured) != state.refresh_token.as_ref());
                match configured {
                    Some(configured) => {
                        tracing::info!("the refresh token in use was refused: presenting the configured one, which differs from it");
                        let retried = self.fetch(Some(&configured)).await;
                        if retried.is_ok() {
                            state.refresh_token = Some(configured);
                        }
                        retried
                    }
                    None => fetched,
                }
            }
            fetched => fetched,
        };
        state.failed = fetched.as_ref().err().map(|error| {
            let held_for = match error {
                TokenError::Refused { .. } | TokenError::Malformed(_) => REFUSAL_HELD_FOR,
                TokenError::Unavailable { retry_after, .. } => *retry_after,
            };
            (error.clone(), Instant::now() + held_for)
        });
        let (access_token, lifetime, rotated) = match fetched {
            Ok(fetched) => fetched,
            Err(error) => {
                let Some((access_token, expires_at)) = state.still_valid(&error) else {
                    return Err(error);
                };
                tracing::warn!(
                    reason = error.reason(),
                    %error,
                    expires_in_ms = expires_at.saturating_duration_since(Instant::now()).as_millis() as u64,
                    "renewing the access token failed: using the current one until it expires"
                );
                return Ok(access_token);
            }
        };
        // A rotated refresh token is kept before anything else: the platform spent the one
        // presented, and nothing else would refresh the grant.
        if let Some(rotated) = rotated {
            if let Some(path) = &self.refresh_token_file {
                match write_secret_file(path, &rotated) {
                    Ok(()) => state.kept = Some(rotated.clone()),
                    // The token works now; after a restart the spent one in the file would not.
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "keeping the rotated refresh token failed: renew the grant before the next restart");
                    }
                }
            }
            state.refresh_token = Some(rotated);
        }
        let ahead = REFRESH_AHEAD.min(lifetime / 2);
        let now = Instant::now();
        state.cached = Some(Cached {
            access_token: access_token.clone(),
            renew_at: now + lifetime - ahead,
            expires_at: now + lifetime,
        });
        state.n_fetched += 1;
        Ok(access_token)
    }

    /// Takes the refresh token in the file when another process rotated the grant since this
    /// one last read or wrote the file (`State::kept`). Whether it did; a file that cannot be
    /// read leaves the token held.
    fn take_newer_kept(&self, state: &mut State) -> bool {
        let Some(path) = &self.refresh_token_file else {
            return false;
        };
        let kept = match read_secret_file(path) {
            Ok(kept) => kept,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "reading the refresh token file failed: refreshing with the token held");
                return false;
            }
        };
        if kept == state.kept {
            return false;
        }
        state.kept.clone_from(&kept);
        match kept {
            Some(kept) if state.refresh_token.as_ref() != Some(&kept) => {
                tracing::info!(path = %path.display(), "another process rotated the refresh token: refreshing with the one it kept");
                state.refresh_token = Some(kept);
                true
            }
            _ => false,
        }
    }

    async fn fetch(&self, refresh_token: Option<&Secret>) -> Result<(Secret, Duration, Option<Secret>), TokenError> {
        let endpoint = &self.endpoint;
        let mut form: Vec<(&str, &str)> = Vec::new();
        match refresh_token {
            Some(token) => form.extend([("grant_type", "refresh_token"), ("refresh_token", token.expose())]),
            None => form.push(("grant_type", "client_credentials")),
        }
        if endpoint.client_auth == ClientAuth::Form {
            form.extend([
                ("client_id", endpoint.client_id.as_str()),
                ("client_secret", endpoint.client_secret.expose()),
            ]);
        }
        form.extend(endpoint.extra_form.iter().map(|(name, value)| (name.as_str(), value.as_str())));
        let mut request = self.client.post(&endpoint.url).header("Accept", "application/json").form(&form);
        if endpoint.client_auth == ClientAuth::Basic {
            request = request.basic_auth(&endpoint.client_id, Some(endpoint.client_secret.expose()));
        }
        for (name, value) in &endpoint.extra_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|error| TokenError::unavailable(TransportError::from_reqwest(&error).to_string()))?;
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
        // A token answer is read up to its cap, any other only as far as a refusal keeps of it.
        let cap = if (200..=299).contains(&status) { MAX_ANSWER_BYTES } else { MAX_BODY_BYTES };
        let body = read_body_capped(response, cap).await.map_err(|error| TokenError::unavailable(error.to_string()))?;
        if body.over_cap && (200..=299).contains(&status) {
            let error = format!("HTTP {status} longer than the {} MiB a token answer may be", MAX_ANSWER_BYTES / MIB);
            return Err(TokenError::Malformed(error));
        }
        let body = body.into_text();
        match status {
            200..=299 => {}
            // A throttled or failing endpoint is asked again once its `Retry-After` passed.
            408 | 429 | 500..=599 => {
                let retry_after =
                    parse_retry_after(retry_after.as_deref(), chrono::Utc::now()).max(UNAVAILABLE_HELD_FOR);
                return Err(TokenError::Unavailable { error: format!("HTTP {status}"), retry_after });
            }
            _ => return Err(TokenError::Refused { status, body: body.chars().take(512).collect() }),
        }
        let answer: TokenAnswer =
            serde_json::from_str(&body).map_err(|error| TokenError::Malformed(error.to_string()))?;
        if answer.access_token.is_empty() {
            return Err(TokenError::Malformed("empty access_token".to_owned()));
        }
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs).min(LONGEST_LIFETIME);
        Ok((Secret::new(answer.access_token), lifetime, answer.refresh_token.map(Secret::new)))
    }
}

/// The refresh token the endpoint's grant was configured with, if it uses one.
fn configured_refresh_token(endpoint: &TokenEndpoint) -> Option<Secret> {
    match &endpoint.grant {
        Grant::RefreshToken(token) => Some(token.clone()),
        Grant::ClientCredentials => None,
    }
}

/// The secret in the file at `path`, if it holds one (no file, or an empty one, holds none).
fn read_secret_file(path: &Path) -> std::io::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(Secret::new(text.trim()))),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Replaces the file at `path` with `secret`, readable by its owner only: written beside it,
/// synced, renamed over it, and the rename synced with its directory, so a crash leaves the
/// old token or the new one, never half, and once this returns (the new token is relied on)
/// never the old one.
fn write_secret_file(path: &Path, secret: &Secret) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial)?;
    file.write_all(secret.expose().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    sync_directory_of(path)
}

/// Syncs the directory holding `path`, which makes a rename into it durable.
#[cfg(unix)]
fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(directory)?.sync_all()
}

/// Elsewhere a directory cannot be opened to sync it; the rename is left to the system.
#[cfg(not(unix))]
fn sync_directory_of(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

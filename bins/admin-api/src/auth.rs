//! Bearer tokens and roles: a token is 32 random bytes shown once; only its SHA-256 is
//! stored, found by that hash and compared in constant time. `authenticate` runs before
//! every `/v1` route and leaves the [`Caller`] for the handler, which asks for a role.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use catalog_store::{TokenHash, TokenMatch};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use catalog_store::Role;

use crate::error::ApiError;
use crate::AppState;

/// The prefix of every token, so one is recognizable in a secret scanner.
const TOKEN_PREFIX: &str = "cat_";

/// A new random token, as printed once, and its hash, as stored.
pub fn new_token() -> anyhow::Result<(String, TokenHash)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness for a token: {error}"))?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash(&token);
    Ok((token, hash))
}

/// The stored form of a token.
pub fn hash(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// A role by name, for clap.
pub fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| format!("{name:?} is not a role: viewer, operator or admin"))
}

/// Who is calling: the token's name (for the audit log) and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// `Ok` when the caller's role includes `role`, 403 otherwise.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The token of an `Authorization: Bearer …` header, or of the support page's cookie.
fn presented_token(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|value| value.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
    None
}

/// Finds the live token a request carries, comparing hashes in constant time.
pub async fn caller_of(state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
    if token.is_empty() || token.len() > 256 {
        return Ok(None);
    }
    let presented = hash(token);
    let found: Option<TokenMatch> = state.store.token_by_hash(&presented).await?;
    Ok(found.and_then(|found| {
        bool::from(found.hash.0.ct_eq(&presented.0)).then_some(Caller { name: found.name, role: found.role })
    }))
}

/// Middleware: 401 unless the request carries a live token; otherwise the handler gets the
/// [`Caller`] as an extension.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = presented_token(&request).ok_or(ApiError::Unauthorized)?;
    let caller = caller_of(&state, &token).await?.ok_or(ApiError::Unauthorized)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

//! Signing in to the support page: a token kept in an HttpOnly, SameSite=Strict cookie,
//! `Secure` when configured or when a proxy says the browser came over HTTPS.

use axum::extract::{Form, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout;
use crate::auth::{caller_of, Caller};
use crate::error::ApiError;
use crate::AppState;

const COOKIE_NAME: &str = "admin_token";

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(';')).find_map(
        |pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME).then(|| value.to_owned())
        },
    )
}

pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    match cookie_token(headers) {
        Some(token) => caller_of(state, &token).await,
        None => Ok(None),
    }
}

pub(crate) fn sign_in_form(message: Option<&str>) -> Markup {
    html! {
        h2 { "Sign in" }
        @if let Some(message) = message { p.err role="alert" { (message) } }
        form method="post" action="/session" {
            label for="token" { "API token" }
            input #token name="token" type="password" autocomplete="off" required;
            button type="submit" { "Sign in" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    pub(super) token: String,
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ApiError> {
    let token = form.token.trim();
    if caller_of(&state, token).await?.is_none() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Ok((StatusCode::UNAUTHORIZED, layout("Sign in", None, sign_in_form(Some("That token is not valid."))))
            .into_response());
    }
    let cookie = format!("{COOKIE_NAME}={token}; {}", cookie_attributes(state.settings.secure_cookie, &headers));
    Ok((StatusCode::SEE_OTHER, [(SET_COOKIE, cookie), (LOCATION, "/".to_owned())]).into_response())
}

pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = format!("{COOKIE_NAME}=; {}; Max-Age=0", cookie_attributes(state.settings.secure_cookie, &headers));
    (StatusCode::SEE_OTHER, [(SET_COOKIE, cookie), (LOCATION, "/".to_owned())]).into_response()
}

/// The sign-in cookie's attributes: `Secure` when configured, or when a proxy says the
/// request came over HTTPS, so the browser never sends the token over plain HTTP.
fn cookie_attributes(always_secure: bool, headers: &HeaderMap) -> &'static str {
    if always_secure || came_over_https(headers) {
        "HttpOnly; SameSite=Strict; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

/// Whether `X-Forwarded-Proto` or `Forwarded` (RFC 7239) names HTTPS as the scheme the client
/// used: the first proxy's word, the one nearest the browser. A client that forges it only
/// makes its own cookie stricter.
pub(super) fn came_over_https(headers: &HeaderMap) -> bool {
    let (forwarded_proto, forwarded) = forwarded(headers, "x-forwarded-proto", "proto");
    [forwarded_proto, forwarded].into_iter().flatten().any(|proto| proto.eq_ignore_ascii_case("https"))
}

/// What the proxy nearest the browser says of `key` (`proto`, `host`): the first value of
/// `x_forwarded` (`X-Forwarded-Proto`, …), and `key=` of the first `Forwarded` (RFC 7239)
/// element, each trimmed (and unquoted).
pub(super) fn forwarded<'h>(
    headers: &'h HeaderMap,
    x_forwarded: &str,
    key: &str,
) -> (Option<&'h str>, Option<&'h str>) {
    let first = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).and_then(|v| v.split(',').next());
    let element = first("forwarded").and_then(|element| {
        element.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.trim().eq_ignore_ascii_case(key).then(|| value.trim().trim_matches('"'))
        })
    });
    (first(x_forwarded).map(str::trim), element)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::cookie_attributes;

    fn secure(always_secure: bool, headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().expect("header value"));
        }
        cookie_attributes(always_secure, &map).ends_with("; Secure")
    }

    #[test]
    fn the_cookie_is_secure_when_configured_or_when_the_browser_came_over_https() {
        assert!(!secure(false, &[]));
        assert!(secure(true, &[]));
        assert!(secure(true, &[("x-forwarded-proto", "http")]), "configured wins over a proxy's http");
        assert!(secure(false, &[("x-forwarded-proto", "HTTPS")]));
        assert!(secure(false, &[("x-forwarded-proto", "https, http")]), "the proxy nearest the browser");
        assert!(!secure(false, &[("x-forwarded-proto", "http, https")]));
        assert!(secure(false, &[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]));
        assert!(secure(false, &[("forwarded", r#"For="[2001:db8:cafe::17]:4711"; Proto="https""#)]));
        assert!(!secure(false, &[("forwarded", "for=192.0.2.60;proto=http, for=198.51.100.17;proto=https")]));
        assert!(!secure(false, &[("forwarded", "for=192.0.2.60")]));
    }
}

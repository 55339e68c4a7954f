//! The support page's check that a form it is sent comes from its own pages. The cookie's
//! SameSite=Strict keeps it off a request another site starts, but not off one from another
//! origin of the same site (another port or subdomain), nor in a browser that ignores it, and
//! a sign-in from elsewhere carries no cookie to keep off: a write a browser sends from
//! elsewhere is refused here, 403 with a plain message, before its handler reads it.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::session::came_over_https;
use crate::AppState;

/// Middleware: a write (any method but GET, HEAD, OPTIONS) that a browser says came from
/// elsewhere is refused; one with neither `Sec-Fetch-Site` nor `Origin` (curl, a script)
/// carries no sign of a browser to judge by and goes on.
pub(super) async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !from_here(request.headers(), state.settings.secure_cookie) {
        let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
        tracing::warn!(
            path = request.uri().path(),
            origin = header("origin"),
            sec_fetch_site = header("sec-fetch-site"),
            "page write from another origin refused"
        );
        let message = "Refused: this form was sent from another site or origin, not from the support page. \
                       Open the support page itself and try again.\n";
        return (StatusCode::FORBIDDEN, message).into_response();
    }
    next.run(request).await
}

/// Whether a write's headers say it came from the page's own origin, or say nothing of where
/// it came from. `Sec-Fetch-Site`, set by every current browser and by no page, is decisive
/// when present: `same-origin`, or `none` (the user's own doing). Without it (an older
/// browser), `Origin` must name the address the request was sent to (the `Host` header), by
/// `https` when the request is known to have come over TLS (`always_https`, or a proxy's
/// `X-Forwarded-Proto` / `Forwarded`). `Host` is the address a proxy in front passes on: one
/// that rewrites it refuses those older browsers' writes, never a current one's.
fn from_here(headers: &HeaderMap, always_https: bool) -> bool {
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or_default().trim());
    if let Some(site) = header("sec-fetch-site") {
        return site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none");
    }
    let Some(origin) = header("origin") else { return true };
    // An opaque origin ("null": a sandboxed frame, a data: URL) is no address of the page's.
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let Some(host) = header("host") else { return false };
    let https_known = always_https || came_over_https(headers);
    let scheme_fits = scheme.eq_ignore_ascii_case("https") || (scheme.eq_ignore_ascii_case("http") && !https_known);
    // `Origin` and `Host` each leave out the default port of the scheme used: equal
    // authorities are one address.
    scheme_fits && authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::from_here;

    fn from(always_https: bool, headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().expect("header value"));
        }
        from_here(&map, always_https)
    }

    #[test]
    fn a_write_is_taken_from_the_page_s_own_origin_or_from_no_browser() {
        let host = ("host", "admin.example:8080");
        assert!(from(false, &[host]), "curl: no sign of a browser");
        assert!(from(false, &[host, ("origin", "http://admin.example:8080")]));
        assert!(from(false, &[host, ("origin", "HTTP://Admin.Example:8080")]), "case does not matter");
        assert!(from(false, &[("host", "admin.example"), ("origin", "https://admin.example")]), "a TLS proxy");
        assert!(from(false, &[host, ("sec-fetch-site", "same-origin"), ("origin", "http://admin.example:8080")]));
        assert!(from(false, &[("host", "admin-api:8080"), ("sec-fetch-site", "same-origin")]), "a proxy's Host");
        assert!(from(false, &[host, ("sec-fetch-site", "none")]), "typed by the user");
    }

    #[test]
    fn a_write_a_browser_sent_from_elsewhere_is_refused() {
        let host = ("host", "admin.example:8080");
        assert!(!from(false, &[host, ("origin", "https://other.example")]));
        assert!(!from(false, &[host, ("origin", "http://admin.example:8081")]), "another port");
        assert!(!from(false, &[host, ("origin", "http://admin.example:8080.other.example")]));
        assert!(!from(false, &[host, ("origin", "null")]), "an opaque origin");
        assert!(!from(false, &[("origin", "http://admin.example:8080")]), "no Host to compare with");
        assert!(!from(false, &[host, ("sec-fetch-site", "cross-site")]));
        assert!(!from(false, &[host, ("sec-fetch-site", "same-site"), ("origin", "http://admin.example:8080")]));
        let plain = ("origin", "http://admin.example");
        assert!(!from(true, &[("host", "admin.example"), plain]), "plain HTTP to a page served over TLS");
        assert!(!from(false, &[("host", "admin.example"), ("x-forwarded-proto", "https"), plain]));
    }
}

//! The support page's check that a form it is sent comes from its own pages. The cookie's
//! SameSite=Strict keeps it off a request another site starts, but not off one from another
//! origin of the same site (another port or subdomain), nor in a browser that ignores it, and
//! a sign-in from elsewhere carries no cookie to keep off: a write a browser sends from
//! elsewhere is refused here, 403 with a plain message, before its handler reads it.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::session::{came_over_https, forwarded};
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
            host = header("host"),
            forwarded_host = header("x-forwarded-host"),
            forwarded = header("forwarded"),
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
/// it came from. `Sec-Fetch-Site`, which no page can set, is decisive when present:
/// `same-origin`, or `none` (the user's own doing). Browsers send it only to a secure origin
/// (HTTPS, or localhost), so a page served over plain HTTP, or an older browser, is judged by
/// `Origin`: it must name the address the request was sent to, by `https` when the request
/// is known to have come over TLS (`always_https`, or a proxy's `X-Forwarded-Proto` /
/// `Forwarded`). That address is the `Host` header, or the host a proxy in front says the
/// browser asked for ([`forwarded_host`]): a proxy that rewrites `Host` (nginx's default,
/// `proxy_set_header Host $proxy_host`, sends `admin-api:8080`) and forwards neither refuses
/// every write of a plain-HTTP page, sign-in included.
fn from_here(headers: &HeaderMap, always_https: bool) -> bool {
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or_default().trim());
    if let Some(site) = header("sec-fetch-site") {
        return site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none");
    }
    let Some(origin) = header("origin") else { return true };
    // An opaque origin ("null": a sandboxed frame, a data: URL) is no address of the page's.
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let https_known = always_https || came_over_https(headers);
    let scheme_fits = scheme.eq_ignore_ascii_case("https") || (scheme.eq_ignore_ascii_case("http") && !https_known);
    // `Origin` and `Host` each leave out the default port of the scheme used: equal
    // authorities are one address. A page on another origin cannot add the forwarded host to
    // a form it submits, nor to a script's request without a CORS preflight this service
    // never allows, so trusting it lets in no write from elsewhere.
    let addresses = [header("host"), forwarded_host(headers)];
    scheme_fits
        && addresses.into_iter().flatten().any(|address| !address.is_empty() && authority.eq_ignore_ascii_case(address))
}

/// The host the browser asked for, as the proxy nearest it says: the first `X-Forwarded-Host`
/// value, else `host=` of the first `Forwarded` (RFC 7239) element, read as `came_over_https`
/// reads the forwarded scheme (`session::forwarded`).
fn forwarded_host(headers: &HeaderMap) -> Option<&str> {
    let (forwarded_host, forwarded) = forwarded(headers, "x-forwarded-host", "host");
    forwarded_host.filter(|host| !host.is_empty()).or(forwarded)
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

    /// Before, `Origin` was compared with `Host` alone: behind a proxy that rewrites `Host`
    /// (nginx's default sends `admin-api:8080`), every write of a page served over plain HTTP,
    /// whose browser sends no `Sec-Fetch-Site`, was refused, sign-in included.
    #[test]
    fn a_write_is_taken_from_the_host_a_proxy_says_the_browser_asked_for() {
        let proxied = ("host", "admin-api:8080");
        let origin = ("origin", "http://support.example.com");
        let forwarded = ("x-forwarded-host", "support.example.com");
        assert!(from(false, &[proxied, forwarded, origin]));
        assert!(from(false, &[proxied, ("x-forwarded-host", "support.example.com, admin-api:8080"), origin]));
        assert!(from(false, &[proxied, ("forwarded", "for=192.0.2.60;host=support.example.com;proto=http"), origin]));
        assert!(from(false, &[proxied, ("forwarded", r#"Host="support.example.com", host=admin-api:8080"#), origin]));
        let over_tls = ("x-forwarded-proto", "https");
        assert!(from(false, &[proxied, forwarded, over_tls, ("origin", "https://support.example.com")]));

        let elsewhere = ("origin", "http://evil.example");
        assert!(!from(false, &[proxied, forwarded, elsewhere]));
        assert!(!from(false, &[proxied, ("forwarded", "host=support.example.com"), elsewhere]));
        assert!(
            !from(false, &[proxied, ("x-forwarded-host", "admin-api:8080, support.example.com"), origin]),
            "the first proxy's word"
        );
        assert!(!from(false, &[proxied, ("x-forwarded-host", ""), ("origin", "http://")]), "an empty host");
        assert!(!from(false, &[proxied, forwarded, over_tls, origin]), "plain HTTP to a page reached over TLS");
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

//! The support page: sign-in, a lookup showing the winner, operator-only write controls
//! behind a confirmation, and a supplier switched on from the page applying held events.

use catalog_core::StockChange;
use catalog_store::contract::{batch, event_id, incoming, offer};
use catalog_store::{Role, SentQuantity};

use crate::Server;

pub(crate) async fn page(server: &Server, token: &str, path: &str) -> String {
    let response = server
        .client
        .get(server.url(path))
        .header("cookie", format!("admin_token={token}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.expect("html")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_traces_an_item_and_only_operators_get_write_controls() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let operator = server.token("otto", Role::Operator).await;
    let client = crate::not_following();

    let anonymous = client.get(server.url("/")).send().await.expect("request").text().await.expect("html");
    assert!(anonymous.contains(r#"<label for="token">"#), "a labelled sign-in form: {anonymous}");
    assert!(!anonymous.contains("Tenants and sync flags"));
    let refused = client.post(server.url("/session")).form(&[("token", "cat_wrong")]).send().await.expect("request");
    assert_eq!(refused.status(), 401);
    let accepted =
        client.post(server.url("/session")).form(&[("token", viewer.as_str())]).send().await.expect("request");
    assert_eq!(accepted.status(), 303);
    let cookie = accepted.headers()["set-cookie"].to_str().expect("ascii");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "plain HTTP to the server itself: {cookie}");
    let behind_tls = client
        .post(server.url("/session"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", viewer.as_str())])
        .send()
        .await
        .expect("request");
    let cookie = behind_tls.headers()["set-cookie"].to_str().expect("ascii");
    assert!(cookie.ends_with("; Secure"), "a proxy says the browser came over HTTPS: {cookie}");

    let (acme, globex) = (offer("canary", "acme", "ABC-1"), offer("canary", "globex", "ABC-1"));
    server.store.set_supplier_sync(&globex.tenant, &globex.supplier, false).await.expect("flag");
    let now_second = (chrono::Utc::now() - catalog_store::contract::base()).num_seconds();
    let events = vec![
        incoming(1, &acme, StockChange::Updated { quantity: 7 }, 0, now_second),
        incoming(2, &acme, StockChange::Updated { quantity: 5 }, -10, now_second),
        incoming(3, &globex, StockChange::Updated { quantity: 4 }, 0, now_second),
    ];
    server.store.apply_batch(&batch(events)).await.expect("apply");

    let html = page(&server, &viewer, "/?tenant=canary&sku=abc-1").await;
    assert!(html.contains("Quantity <strong>7</strong>"), "{html}");
    assert!(html.contains(r#"<tr class="win"><td>acme</td><td>7</td>"#), "the winner is shown: {html}");
    // A tenant pasted with a space is found, as a SKU is; a bad field is named, with why.
    let pasted = page(&server, &viewer, "/?tenant=%20canary%20&sku=abc-1").await;
    assert!(pasted.contains("Quantity <strong>7</strong>"), "{pasted}");
    let refused = page(&server, &viewer, "/?tenant=Canary&sku=abc%2F1").await;
    assert!(
        refused.contains("The tenant contains 'C', outside the allowed characters [a-z0-9_-].")
            && refused.contains("The SKU contains '/', outside the allowed characters [A-Z0-9._-]."),
        "{refused}"
    );
    // A link's words are not shown as the page's own: only in the search box, as typed.
    let phished =
        page(&server, &viewer, "/?tenant=Your%20session%20expired.%20Paste%20your%20token%20at%20evil&sku=a").await;
    assert!(phished.contains("The tenant contains 'Y'"), "{phished}");
    assert!(!phished.contains("The tenant &quot;"), "{phished}");
    assert!(html.contains("stale"), "the loser and its outcome are shown");
    assert!(!html.contains("/page/sync") && !html.contains("/page/dead-letters"), "a viewer sees no write control");

    let html = page(&server, &operator, "/?tenant=canary&sku=abc-1").await;
    assert!(
        html.contains(r#"action="/page/sync" data-confirm="Switch sync on for supplier globex of canary?""#),
        "{html}"
    );
    let as_viewer = client
        .post(server.url("/page/sync"))
        .header("cookie", format!("admin_token={viewer}"))
        .form(&[("tenant", "canary"), ("supplier", "globex"), ("enabled", "true")])
        .send()
        .await
        .expect("request");
    assert_eq!(as_viewer.status(), 403);
    let switched = client
        .post(server.url("/page/sync"))
        .header("cookie", format!("admin_token={operator}"))
        .form(&[("tenant", "canary"), ("supplier", "globex"), ("enabled", "true")])
        .send()
        .await
        .expect("request");
    assert_eq!(switched.status(), 303);
    let location = switched.headers()["location"].to_str().expect("ascii").to_owned();
    let html = page(&server, &operator, &location).await;
    assert!(html.contains("1 held events decided again (1 applied)"), "{html}");
    let html = page(&server, &viewer, "/?tenant=canary&sku=ABC-1").await;
    assert!(html.contains("Quantity <strong>11</strong>"), "the held event counts now: {html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_longer_than_a_page_says_which_events_it_shows_and_pages_on() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    // Sync off: every event is held, so the item has no row to be found by its id.
    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    server.store.set_tenant_sync(&tenant, false).await.expect("sync off");
    let acme = offer("canary", "acme", "ABC-1");
    let now_second = (chrono::Utc::now() - catalog_store::contract::base()).num_seconds();
    let events = (1..=1_005)
        .map(|n| incoming(n, &acme, StockChange::Updated { quantity: n as i64 }, n as i64 - 2_000, now_second))
        .collect();
    server.store.apply_batch(&batch(events)).await.expect("apply");

    let html = page(&server, &viewer, "/?tenant=canary&sku=abc-1").await;
    assert!(html.contains("Events 1–1000 of 1005, oldest first."), "{html}");
    assert!(html.contains("Later events") && !html.contains("Earlier events"));
    let later = link_before(&html, "Later events");
    // Two late events (older than all the others, so first in the order) journaled while
    // the support person reads the first page: the next page counts and shows the rows it
    // would have (without the first page's `events_through`: 1001–1007 of 1007, the first
    // page's last two again).
    let late = (2_001..=2_002)
        .map(|n| incoming(n, &acme, StockChange::Updated { quantity: n as i64 }, -5_000, now_second))
        .collect();
    server.store.apply_batch(&batch(late)).await.expect("apply");
    let html = page(&server, &viewer, &later).await;
    assert!(html.contains("Events 1001–1005 of 1005, oldest first."), "{later}: {html}");
    assert!(html.contains("Earlier events") && !html.contains("Later events"));
    let html = page(&server, &viewer, &link_before(&html, "Earlier events")).await;
    assert!(html.contains("Events 1–1000 of 1005, oldest first."), "{html}");
}

/// The target of the link whose text is `text`, as the browser would ask for it.
fn link_before(html: &str, text: &str) -> String {
    let before = &html[..html.find(&format!(">{text}</a>")).expect("the link")];
    let start = before.rfind("href=\"").expect("its href") + "href=\"".len();
    before[start..].split('"').next().expect("quoted").replace("&amp;", "&")
}

/// An event found by its id links to its item's trace by tenant and SKU, which an item whose
/// events were all held has (it has no row to be found by its id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_found_links_to_its_item_s_trace_even_when_it_was_held() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let tenant = catalog_core::TenantId::parse("canary").expect("tenant");
    server.store.set_tenant_sync(&tenant, false).await.expect("sync off");
    let acme = offer("canary", "acme", "ABC-1");
    server
        .store
        .apply_batch(&batch(vec![incoming(1, &acme, StockChange::Updated { quantity: 7 }, 0, 1)]))
        .await
        .expect("apply");

    let html = page(&server, &viewer, &format!("/?event_id={}", event_id(1))).await;
    assert!(html.contains("held"), "{html}");
    let trace = page(&server, &viewer, &link_before(&html, "trace item canary / ABC-1")).await;
    assert!(trace.contains("Item canary / ABC-1"), "the link leads to the trace: {trace}");
    assert!(trace.contains("tenant_sync_off"), "the held event is on its timeline: {trace}");
}

/// Each id search sends its own field alone: after an event search, a trace id typed into its
/// field is the search made (the event id shown from the last search went along and won).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_id_search_is_a_form_of_its_own() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let html = page(&server, &viewer, &format!("/?event_id={}", event_id(1))).await;
    let forms: Vec<&str> =
        html.split("<form").skip(1).map(|form| &form[..form.find("</form>").expect("closed")]).collect();
    for field in ["item_id", "event_id", "trace_id"] {
        let with = forms.iter().filter(|form| form.contains(&format!(r#"name="{field}""#))).collect::<Vec<_>>();
        assert_eq!(with.len(), 1, "one form asks for {field}: {html}");
        assert_eq!(with[0].matches("name=\"").count(), 1, "the {field} form sends nothing else: {}", with[0]);
    }
}

/// An operator's token, and the id of a publish dead-lettered on `server`.
async fn open_letter(server: &Server) -> (String, String) {
    let operator = server.token("otto", Role::Operator).await;
    crate::dead_letters::dead_letter_a_publish(server).await;
    let letters = server.get_json(&operator, "/v1/dead-letters?tenant=canary").await;
    let id = letters[0]["dead_letter_id"].as_i64().expect("id").to_string();
    (operator, id)
}

/// Resolving a dead letter resolved meanwhile says so on the page, as a retry does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_a_letter_resolved_meanwhile_says_so_on_the_page() {
    let server = Server::sqlite().await;
    let (operator, id) = open_letter(&server).await;
    let client = crate::not_following();
    let resolve = || {
        client
            .post(server.url("/page/dead-letters"))
            .header("cookie", format!("admin_token={operator}"))
            .form(&[("dead_letter_id", id.as_str()), ("action", "resolve"), ("note", "fixed by hand")])
            .send()
    };
    assert_eq!(resolve().await.expect("request").status(), 303);
    let again = resolve().await.expect("request");
    assert_eq!(again.status(), 303, "a page, not JSON");
    let location = again.headers()["location"].to_str().expect("ascii").to_owned();
    let html = page(&server, &operator, &location).await;
    assert!(html.contains(&format!("dead letter {id} is resolved")), "{html}");
}

/// A notice in a link made elsewhere is not shown on the signed-in page: only one the
/// server sealed after an action is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_the_server_did_not_seal_is_not_shown() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let crafted = "Your session expired: paste your token at https://evil.example";
    let encoded: String = crafted.bytes().map(|b| format!("%{b:02X}")).collect();
    for query in [format!("/?message={encoded}"), format!("/?message={encoded}&seal={}", "ab".repeat(32))] {
        let html = page(&server, &viewer, &query).await;
        assert!(!html.contains("evil.example"), "{query}: {html}");
    }
}

/// A note of blanks is refused on the page, as a notice, not answered as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_note_is_refused_on_the_page() {
    let server = Server::sqlite().await;
    let (operator, id) = open_letter(&server).await;
    let client = crate::not_following();
    let resolve = |note: String| {
        client
            .post(server.url("/page/dead-letters"))
            .header("cookie", format!("admin_token={operator}"))
            .form(&[("dead_letter_id", id.clone()), ("action", "resolve".to_owned()), ("note", note)])
            .send()
    };
    for note in ["   ".to_owned(), "x".repeat(2_001)] {
        let refused = resolve(note).await.expect("request");
        assert_eq!(refused.status(), 303, "a page, not JSON");
        let location = refused.headers()["location"].to_str().expect("ascii").to_owned();
        let html = page(&server, &operator, &location).await;
        assert!(html.contains(&format!("Dead letter {id} not resolved: a note of 1 to 2000 bytes")), "{html}");
    }
    let letters = server.get_json(&operator, "/v1/dead-letters?tenant=canary").await;
    assert_eq!(letters[0]["dead_letter_id"].as_i64().map(|id| id.to_string()), Some(id), "still open");
}

/// The channel's words on an attempt that sent a quantity are on the item's trace: the page
/// showed the error only for an attempt that sent nothing, so a refusal of a quantity (a
/// throttle, a 4xx) showed its listing, quantity and rule, and not why it was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_shows_the_channel_s_refusal_of_an_attempt_that_sent_a_quantity() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let sent = SentQuantity { listing: "L-77".into(), quantity: 4, rule: "catalog 4".into() };
    crate::dead_letters::dead_letter_a_publish_with(&server, "unprocessable: listing L-77 is closed", Some(sent)).await;

    let html = page(&server, &viewer, "/?tenant=canary&sku=abc-1").await;
    assert!(html.contains("<code>L-77</code>"), "what was sent is shown: {html}");
    assert!(html.contains("unprocessable: listing L-77 is closed"), "and the channel's words: {html}");
}

/// A page form's own text never reaches a sealed notice: a viewer posting a "tenant" of
/// their own words got them back in a redirect sealed by the server, a link that showed them
/// as the server's on any colleague's signed-in page. A notice is sealed for whoever took the
/// action, so a sealed link shows nothing on another's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_carries_none_of_a_form_s_text_and_shows_only_to_whoever_acted() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let operator = server.token("otto", Role::Operator).await;
    let client = crate::not_following();
    let crafted = "Your session expired. Paste your token at https://evil.example";
    let post = |path: &'static str, form: Vec<(&'static str, &'static str)>| {
        client.post(server.url(path)).header("cookie", format!("admin_token={viewer}")).form(&form).send()
    };
    let tenant = vec![("tenant", crafted), ("supplier", "acme"), ("enabled", "false")];
    let supplier = vec![("tenant", "canary"), ("supplier", crafted), ("enabled", "false")];
    let date = vec![("tenant", "canary"), ("supplier", "acme"), ("kind", "backfill"), ("since", crafted)];
    let cases = [
        ("/page/feeds", tenant.clone(), "Pulling not switched: the tenant is not a valid tenant id."),
        ("/page/feeds", supplier.clone(), "Pulling not switched: the supplier is not a valid supplier id."),
        ("/page/sync", tenant, "Sync not switched: the tenant is not a valid tenant id."),
        ("/page/sync", supplier, "Sync not switched: the supplier is not a valid supplier id."),
        ("/page/feeds/runs", date, "No run asked for: since is not a date (YYYY-MM-DD)."),
    ];
    for (path, form, told) in cases {
        let refused = post(path, form).await.expect("request");
        assert_eq!(refused.status(), 303, "{path}");
        let location = refused.headers()["location"].to_str().expect("ascii").to_owned();
        assert!(!location.contains("evil.example"), "{path}: {location}");
        let html = page(&server, &viewer, &location).await;
        assert!(html.contains(told), "{path}: {html}");
        assert!(!html.contains("evil.example") && !html.contains("Paste your token"), "{path}: {html}");
        let elsewhere = page(&server, &operator, &location).await;
        assert!(!elsewhere.contains(told), "{path}: sealed for vera, not shown to otto: {elsewhere}");
    }
}

/// A timeline offset past the item's events (a link edited by hand) says there is none there
/// and links to the first: counting from `u64::MAX` overflowed, and the page panicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_offset_past_the_last_event_says_so() {
    let server = Server::sqlite().await;
    let viewer = server.token("vera", Role::Viewer).await;
    let acme = offer("canary", "acme", "ABC-1");
    server
        .store
        .apply_batch(&batch(vec![incoming(1, &acme, StockChange::Updated { quantity: 7 }, 0, 1)]))
        .await
        .expect("apply");
    for offset in [u64::MAX, 5] {
        let html = page(&server, &viewer, &format!("/?tenant=canary&sku=abc-1&events_offset={offset}")).await;
        assert!(html.contains(&format!("No events from {offset}: the item has 1.")), "{html}");
        let first = page(&server, &viewer, &link_before(&html, "First events")).await;
        assert!(first.contains("Quantity <strong>7</strong>") && !first.contains("No events from"), "{first}");
    }
}

/// A page write a browser sent from another origin is refused before it is read, sign-ins
/// too: SameSite=Strict alone kept the cookie off a cross-site request only, and a sign-in
/// needs none. A write with neither `Origin` nor `Sec-Fetch-Site` (curl) still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_write_from_another_origin_is_refused() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let globex = offer("canary", "globex", "ABC-1");
    server.store.set_supplier_sync(&globex.tenant, &globex.supplier, false).await.expect("flag");
    let client = crate::not_following();
    let switch_on = |headers: &[(&str, &str)]| {
        let mut request = client
            .post(server.url("/page/sync"))
            .header("cookie", format!("admin_token={operator}"))
            .form(&[("tenant", "canary"), ("supplier", "globex"), ("enabled", "true")]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let supplier_on = || async {
        let flags = server.store.tenant_flags(&globex.tenant).await.expect("read").expect("flags");
        flags.suppliers[&globex.supplier]
    };
    let elsewhere: [&[(&str, &str)]; 4] = [
        &[("origin", "https://other.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
    ];
    for headers in elsewhere {
        let refused = switch_on(headers).await.expect("request");
        assert_eq!(refused.status(), 403, "{headers:?}");
        assert!(refused.text().await.expect("text").starts_with("Refused: this form was sent from another site"));
        assert!(!supplier_on().await, "{headers:?}: nothing changed");
    }
    let sign_in = client
        .post(server.url("/session"))
        .header("origin", "https://other.example")
        .form(&[("token", operator.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(sign_in.status(), 403);
    assert!(sign_in.headers().get("set-cookie").is_none(), "no cookie set from elsewhere");

    let own = server.base.as_str();
    let taken = switch_on(&[("origin", own), ("sec-fetch-site", "same-origin")]).await.expect("request");
    assert_eq!(taken.status(), 303, "the page's own origin");
    assert!(supplier_on().await, "switched on");
    let taken = switch_on(&[("origin", own)]).await.expect("request");
    assert_eq!(taken.status(), 303, "an older browser's, by Origin alone");
}

/// Before, behind a proxy that rewrites `Host` (nginx's default sends `admin-api:8080`), a
/// page served over plain HTTP refused every write, sign-in included: its browser sends no
/// `Sec-Fetch-Site` there, and `Origin` was compared with `Host` alone, never with the host
/// the proxy forwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_through_a_proxy_that_rewrites_host_is_taken_by_the_forwarded_host() {
    let server = Server::sqlite().await;
    let operator = server.token("otto", Role::Operator).await;
    let client = crate::not_following();
    let sign_in = |origin: &'static str| {
        client
            .post(server.url("/session"))
            .header("host", "admin-api:8080")
            .header("x-forwarded-host", "support.example.com")
            .header("origin", origin)
            .form(&[("token", operator.as_str())])
            .send()
    };
    let taken = sign_in("http://support.example.com").await.expect("request");
    assert_eq!(taken.status(), 303, "the forwarded host is the page's own");
    assert!(taken.headers().get("set-cookie").is_some(), "signed in");
    let refused = sign_in("http://evil.example").await.expect("request");
    assert_eq!(refused.status(), 403, "an origin that is neither the Host nor the forwarded host");
    assert!(refused.headers().get("set-cookie").is_none(), "no cookie set from elsewhere");
}

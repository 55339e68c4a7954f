//! A small W3C WebDriver client over reqwest and a chromedriver the test starts itself, for
//! the browser test. The WebDriver crates (fantoccini, thirtyfour) build on the `webdriver`
//! crate, which is MPL-2.0 and outside deny.toml's permissive list; the dozen commands the
//! test needs are a few lines of JSON each.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// The key W3C WebDriver names an element reference with.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium and chromedriver of Debian's `chromium` and `chromium-driver` packages,
/// unless `CATALOG_CHROMIUM` / `CATALOG_CHROMEDRIVER` say otherwise.
fn tool(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// A chromedriver process on a free loopback port, in a process group of its own with the
/// browsers it starts: the group is killed and chromedriver reaped on drop, so a failing test
/// (a panic) leaves no browser behind.
pub(crate) struct Driver {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is ours: chromedriver leads it (spawned below) and its browsers are in it.
        let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.child.id())).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver; a missing Chromium or chromedriver fails the test, never skips it.
    pub(crate) async fn start() -> Driver {
        let chromedriver = tool("CATALOG_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("CATALOG_CHROMIUM", "/usr/bin/chromium");
        assert!(
            Path::new(&chromedriver).exists() && Path::new(&chromium).exists(),
            "the browser test needs {chromium} and {chromedriver} (Debian packages chromium and chromium-driver; \
             .ci/run installs them)"
        );
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {chromedriver}: {error}"));
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(response) = client.get(format!("{}/status", driver.base)).send().await {
                let status: Value = response.json().await.expect("status json");
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready on port {port}");
    }

    /// A headless Chromium session with a laptop-sized window (1366 wide).
    pub(crate) async fn session(&self) -> Session {
        let chromium = tool("CATALOG_CHROMIUM", "/usr/bin/chromium");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "unhandledPromptBehavior": "ignore",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--window-size=1366,900", "--force-device-scale-factor=1"],
                },
            }},
        });
        let client = reqwest::Client::new();
        let response = client.post(format!("{}/session", self.base)).json(&capabilities).send().await.expect("session");
        let body: Value = response.json().await.expect("session json");
        let id = body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {body}")).to_owned();
        Session { client, url: format!("{}/session/{id}", self.base) }
    }
}

/// One browser session.
pub(crate) struct Session {
    client: reqwest::Client,
    url: String,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub(crate) struct Element(String);

impl Session {
    async fn try_command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let request = self.client.request(method.clone(), format!("{}{path}", self.url));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await.map_err(|error| format!("webdriver {method} {path}: {error}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|error| format!("webdriver {method} {path}: {error}"))?;
        match body["value"]["error"].as_str() {
            Some(error) => Err(format!("webdriver {method} {path}: {status} {error}: {}", body["value"]["message"])),
            None if !status.is_success() => Err(format!("webdriver {method} {path}: {status} {body}")),
            None => Ok(body["value"].clone()),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body).await.unwrap_or_else(|error| panic!("{error}"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for it to load (WebDriver's navigation does).
    pub(crate) async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        let found = self.post("/element", json!({ "using": "css selector", "value": css })).await;
        match found[ELEMENT_KEY].as_str() {
            Some(element) => Element(element.to_owned()),
            None => panic!("no element {css}: {found}"),
        }
    }

    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.post("/elements", json!({ "using": "css selector", "value": css })).await;
        found
            .as_array()
            .expect("a list")
            .iter()
            .map(|element| Element(element[ELEMENT_KEY].as_str().expect("an element").to_owned()))
            .collect()
    }

    /// An element's rendered text, runs of white space (table cells, lines) as one space.
    pub(crate) async fn text(&self, element: &Element) -> String {
        let text = self.get(&format!("/element/{}/text", element.0)).await;
        text.as_str().expect("text").split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub(crate) async fn type_into(&self, element: &Element, text: &str) {
        self.post(&format!("/element/{}/clear", element.0), json!({})).await;
        self.post(&format!("/element/{}/value", element.0), json!({ "text": text })).await;
    }

    pub(crate) async fn click(&self, element: &Element) {
        self.post(&format!("/element/{}/click", element.0), json!({})).await;
    }

    /// Clicks a control that submits a form, and waits until the next page has loaded: the
    /// old document is marked first, so a page still loading is never mistaken for it.
    pub(crate) async fn submit(&self, element: &Element) {
        self.execute("window.__leaving = true").await;
        self.click(element).await;
        self.wait_for_next_page().await;
    }

    /// Waits until a new document (one without the mark) has loaded.
    pub(crate) async fn wait_for_next_page(&self) {
        let script = json!({ "script": "return !window.__leaving && document.readyState === 'complete'", "args": [] });
        for _ in 0..200 {
            // While the navigation runs a script may fail (no document yet): just ask again.
            if let Ok(Value::Bool(true)) =
                self.try_command(reqwest::Method::POST, "/execute/sync", Some(script.clone())).await
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the next page did not load within 10 s");
    }

    /// Clicks a control whose form asks for a confirmation first, accepts it, and waits for
    /// the next page; the confirmation's text is returned.
    pub(crate) async fn submit_confirmed(&self, element: &Element) -> String {
        self.execute("window.__leaving = true").await;
        self.click(element).await;
        let text = self.get("/alert/text").await.as_str().expect("a confirmation is open").to_owned();
        self.post("/alert/accept", json!({})).await;
        self.wait_for_next_page().await;
        text
    }

    /// The whole page's text, as a reader sees it.
    pub(crate) async fn page_text(&self) -> String {
        let body = self.find("body").await;
        self.text(&body).await
    }

    pub(crate) async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// A PNG of the whole page at laptop width, into `directory/name.png` when a directory
    /// is given (env `CATALOG_SCREENSHOTS_DIR`).
    pub(crate) async fn screenshot(&self, directory: Option<&Path>, name: &str) {
        let Some(directory) = directory else { return };
        // The window is the page's height plus whatever the browser keeps for itself.
        let sizes = self
            .execute("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
            .await;
        let height = sizes[0].as_u64().unwrap_or(900) + sizes[1].as_u64().unwrap_or(0);
        self.post("/window/rect", json!({ "width": 1366, "height": height.clamp(600, 4_000) })).await;
        let encoded = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("a base64 screenshot");
        std::fs::create_dir_all(directory).expect("screenshot directory");
        std::fs::write(directory.join(format!("{name}.png")), png).expect("write screenshot");
        self.post("/window/rect", json!({ "width": 1366, "height": 900 })).await;
    }

    pub(crate) async fn close(self) {
        self.command(reqwest::Method::DELETE, "", None).await;
    }
}

//! Integration tests of the admin API: the real server on 127.0.0.1:0 over a real store
//! (a SQLite file, and PostgreSQL through a throwaway database), called with reqwest.

mod access;
mod browser;
mod channels;
mod cli;
mod dead_letters;
mod drift;
mod errors;
mod feeds;
mod flags;
mod gate;
mod openapi;
mod page;
mod rejected;
mod trace;
mod webdriver;

use std::sync::Arc;

use admin_api::{auth, AppState, Settings};
use catalog_store::{CatalogStore, ChannelRoute, NewToken, Role, StoreConfig};
use tokio_util::sync::CancellationToken;

/// A running server and what a test needs to call it.
#[allow(missing_debug_implementations)]
pub struct Server {
    pub base: String,
    pub store: Arc<dyn CatalogStore>,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Server {
    /// A server over a fresh SQLite file.
    pub async fn sqlite() -> Server {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store =
            catalog_sqlite::SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default())
                .await
                .expect("open store");
        Server::start(Arc::new(store), Box::new(directory)).await
    }

    /// A server over a fresh PostgreSQL database.
    pub async fn postgres() -> Server {
        Server::postgres_with(catalog_postgres::PostgresOptions::default()).await.0
    }

    /// A server over PostgreSQL with these options, and its database's URL.
    pub async fn postgres_with(options: catalog_postgres::PostgresOptions) -> (Server, String) {
        let database = catalog_testkit::TestDatabase::create().await;
        let url = database.url.clone();
        let store = catalog_postgres::PostgresStore::connect(&database.url, StoreConfig::default(), options)
            .await
            .expect("connect and migrate");
        (Server::start(Arc::new(store), Box::new(database)).await, url)
    }

    /// A server over a fresh SQLite file whose store queues for the storefront, told that the
    /// worker's channels are `channels`: as after a channels file without the storefront
    /// replaced it, its dead letters left behind.
    pub async fn sqlite_for_channels(channels: &[&str]) -> Server {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store =
            catalog_sqlite::SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default())
                .await
                .expect("open store");
        let routes: Vec<ChannelRoute> = channels.iter().map(|channel| ChannelRoute::all(*channel)).collect();
        let state = AppState::new(Arc::new(store), Server::settings()).with_channels(&routes);
        Server::serve(state, Box::new(directory)).await
    }

    /// What every test server runs with: 2 retries before the loop guard.
    fn settings() -> Settings {
        Settings { max_retries: 2, ..Settings::default() }
    }

    async fn start(store: Arc<dyn CatalogStore>, guard: Box<dyn std::any::Any + Send>) -> Server {
        Server::serve(AppState::new(store, Server::settings()), guard).await
    }

    async fn serve(state: AppState, guard: Box<dyn std::any::Any + Send>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let store = state.store.clone();
        let task = tokio::spawn(admin_api::run(listener, state, shutdown.clone()));
        Server { base, store, client: reqwest::Client::new(), shutdown, task: Some(task), _guard: guard }
    }

    /// A live token of `role`, stored as the CLI stores it.
    pub async fn token(&self, name: &str, role: Role) -> String {
        let (token, hash) = auth::new_token().expect("randomness");
        assert!(self.store.add_token(&NewToken { name: name.into(), role, hash }).await.expect("add token"));
        token
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        let response = self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request");
        openapi::assert_described(&reqwest::Method::GET, path, response.status());
        response
    }

    pub async fn get_json(&self, token: &str, path: &str) -> serde_json::Value {
        let response = self.get(token, path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let response = self
            .client
            .request(method.clone(), self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        openapi::assert_described(&method, path, response.status());
        response
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

/// A client that does not follow redirects: a page action's answer is read as it is (303,
/// and where to).
pub(crate) fn not_following() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

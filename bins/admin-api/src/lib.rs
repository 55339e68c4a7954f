//! The admin service: the support and operator API over the application layer. Traces that
//! explain what an item shows, the sync flags, dead letters, per-tenant status, tokens and
//! the audit log, and the support page. `run` serves a listener until shutdown, so tests
//! start the real server on port 0.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod gate;
pub mod metrics;
pub mod page;
pub mod page_signals;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use catalog_store::{CatalogStore, ChannelRoute, NewToken};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AdminArgs, Command, GateCommand, TokensCommand};
use crate::error::ApiError;
use crate::metrics::HttpMetrics;

/// Settings the handlers read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// A tenant whose last applied event lags its last received one by more is `behind`.
    pub behind_after: Duration,
    /// A tenant that received nothing for this long is `stale`.
    pub stale_after: Duration,
    /// Operator retries of a dead letter before 409 (`loop_guard`); auto-heal's rounds are not counted.
    pub max_retries: u32,
    /// The sign-in cookie is always `Secure`, not only for a request a proxy says came over
    /// HTTPS.
    pub secure_cookie: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            behind_after: Duration::from_secs(300),
            stale_after: Duration::from_secs(3_600),
            max_retries: 5,
            secure_cookie: false,
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn CatalogStore>,
    pub metrics: HttpMetrics,
    pub settings: Arc<Settings>,
    /// The launch signals' and the gate's settings (`gate::LaunchSettings`).
    pub launch: Arc<gate::LaunchSettings>,
    /// The names of the worker's channels, the store's routes (decision 0036), sorted.
    pub channels: Arc<Vec<String>>,
    /// Operators' writes that apply held events, each run on a task of its own to its end
    /// (`to_completion`); a stopping server waits for them.
    pub writes: TaskTracker,
}

impl AppState {
    pub fn new(store: Arc<dyn CatalogStore>, settings: Settings) -> Self {
        Self {
            store,
            metrics: HttpMetrics::new(),
            settings: Arc::new(settings),
            launch: Arc::new(gate::LaunchSettings::default()),
            channels: Arc::new(channel_names(&catalog_store::StoreConfig::default().channels)),
            writes: TaskTracker::new(),
        }
    }

    /// The same state judging and gating with `launch`.
    pub fn with_launch(mut self, launch: gate::LaunchSettings) -> Self {
        self.launch = Arc::new(launch);
        self
    }

    /// The same state told the worker's channels are the ones `routes` name.
    pub fn with_channels(mut self, routes: &[ChannelRoute]) -> Self {
        self.channels = Arc::new(channel_names(routes));
        self
    }
}

/// The channel names `routes` give, sorted, each once.
fn channel_names(routes: &[ChannelRoute]) -> Vec<String> {
    let names: std::collections::BTreeSet<&str> = routes.iter().map(|route| route.name.as_str()).collect();
    names.into_iter().map(str::to_owned).collect()
}

/// Every route: the open operator endpoints, and `/v1` behind a token.
pub fn router(state: AppState) -> Router {
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi));
    Router::new()
        .merge(open)
        .merge(api::routes(state.clone()))
        .merge(page::routes(state.clone()))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(error) => {
            tracing::warn!(%error, "store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: store\n")
        }
    }
}

/// The OpenAPI 3.1 description, open like the probes: it holds no data.
async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(<api::ApiDoc as utoipa::OpenApi>::openapi())
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Serves `state` on `listener` until `shutdown`, then finishes the requests in flight and
/// the operators' writes whose callers went away (`to_completion`).
pub async fn run(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    let writes = state.writes.clone();
    let served = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    writes.close();
    writes.wait().await;
    served
}

/// Runs an operator's write on a task of its own, to its end, whether or not its caller
/// waits: a switch or gate step commits, then applies the events it lets through batch by
/// batch. Run in the request, a client or proxy giving up (nginx's 60 s) dropped it between
/// batches: the flag read on, the rest of its held events stayed held, and nothing said so.
pub(crate) async fn to_completion<T, E>(
    state: &AppState,
    work: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ApiError> + Send + 'static,
{
    match state.writes.spawn(work).await {
        Ok(done) => done,
        Err(error) => Err(ApiError::Internal(anyhow::anyhow!("an operator's write ended abnormally: {error}")).into()),
    }
}

/// What the binary was asked to do, every argument parsed and checked.
enum Work {
    Serve(TcpListener),
    Tokens(TokensCommand),
    GateCheck { tenant: catalog_core::TenantId, step: catalog_core::GateStep },
}

/// The binary: opens the store the options name, then serves or runs a subcommand. The exit
/// code is 0, or 1 when `gate check` finds the step refused; an error is the caller's 2.
pub async fn main(args: AdminArgs, shutdown: CancellationToken) -> Result<std::process::ExitCode> {
    // What the service queues (held events released, dead letters retried) goes to the
    // worker's channels; a dead-letter filter is checked against their names.
    let routes = args.channels.routes().map_err(catalog_cli::OpenError::from)?;
    // Every argument is checked (and the address bound) before the store is opened, which
    // migrates it and makes a missing SQLite file: a typo makes and changes no database.
    let work = match args.command {
        None | Some(Command::Serve) => Work::Serve(
            TcpListener::bind(&args.serve.listen)
                .await
                .with_context(|| format!("binding --listen {} (CATALOG_ADMIN_LISTEN)", args.serve.listen))?,
        ),
        Some(Command::Tokens(command)) => Work::Tokens(command),
        Some(Command::Gate(GateCommand::Check { tenant, step, supplier })) => {
            let step = gate::parse_step(step.as_str(), supplier).map_err(anyhow::Error::msg)?;
            Work::GateCheck { tenant, step }
        }
    };
    let store = catalog_cli::open_store(&args.store, routes.clone()).await?;
    match work {
        Work::Serve(listener) => {
            let settings = Settings {
                max_body_bytes: args.serve.max_body_bytes,
                behind_after: Duration::from_secs(args.serve.behind_after_secs),
                stale_after: Duration::from_secs(args.serve.stale_after_secs),
                max_retries: args.serve.max_retries,
                secure_cookie: args.serve.secure_cookie,
            };
            tracing::info!(address = %listener.local_addr()?, "admin api serving");
            let launch = gate::LaunchSettings { signals: args.signals.settings(), gate: args.gate.settings() };
            let state = AppState::new(store, settings).with_launch(launch).with_channels(&routes);
            run(listener, state, shutdown).await.context("serving")?;
            tracing::info!("admin api stopped");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Work::Tokens(command) => {
            tokens(&*store, &args.store.shown_url(), command).await.map(|()| std::process::ExitCode::SUCCESS)
        }
        Work::GateCheck { tenant, step } => gate_check(&*store, &args.gate.settings(), &tenant, &step).await,
    }
}

/// `gate check`: prints whether the step is allowed now (and every reason if not); exit code
/// 0 when allowed, 1 when refused.
async fn gate_check(
    store: &dyn CatalogStore,
    settings: &catalog_core::GateSettings,
    tenant: &catalog_core::TenantId,
    step: &catalog_core::GateStep,
) -> Result<std::process::ExitCode> {
    use std::io::Write;
    let context =
        gate::GateContext::read(store, settings, tenant, chrono::Utc::now()).await.context("reading the gate")?;
    let mut stdout = std::io::stdout().lock();
    if let Some(supplier) = gate::unseen_supplier(step, context.flags.as_ref()) {
        writeln!(stdout, "refused: {} {tenant} at {}", step.as_str(), context.state.rollout)?;
        writeln!(
            stdout,
            "  - supplier {supplier} has no event of the tenant seen yet (a likely typo); the API takes the step \
             only with \"create\": true"
        )?;
        stdout.flush().context("writing to standard output")?;
        return Ok(std::process::ExitCode::from(1));
    }
    let code = match context.decide(step, settings) {
        Ok(next) => {
            writeln!(stdout, "allowed: {} {tenant}: {} -> {next}", step.as_str(), context.state.rollout)?;
            std::process::ExitCode::SUCCESS
        }
        Err(refusals) => {
            writeln!(stdout, "refused: {} {tenant} at {}", step.as_str(), context.state.rollout)?;
            for refusal in refusals {
                writeln!(stdout, "  - {refusal}")?;
            }
            std::process::ExitCode::from(1)
        }
    };
    stdout.flush().context("writing to standard output")?;
    Ok(code)
}

/// `tokens add|list|revoke` on the store `shown` names: `add` (its name checked as it was
/// parsed) prints the token alone on standard output. A refusal names the store, which may
/// not be the one meant (the default is `./catalog.db`).
async fn tokens(store: &dyn CatalogStore, shown: &str, command: TokensCommand) -> Result<()> {
    use catalog_core::Classify as _;
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match command {
        TokensCommand::Add { name, role } => {
            let (token, hash) = auth::new_token()?;
            let added =
                store.add_token(&NewToken { name: name.clone(), role, hash }).await.context("storing the token")?;
            anyhow::ensure!(added, "a live token named {name:?} exists in {shown}; revoke it first");
            let audited =
                audit_cli(store, "token_add", &name, serde_json::Value::Null, serde_json::json!({ "role": role }))
                    .await;
            if let Err(error) = audited {
                // Live, unaudited, and never printed: taken back, as `POST /v1/tokens` does
                // (decision 0011), so that adding the name again is not refused as taken by a
                // token no one holds.
                if let Err(revoke) = store.revoke_token(&name).await {
                    tracing::error!(name, error = %revoke, class = revoke.failure_class().as_str(), "a token whose audit entry could not be written could not be revoked either: revoke it with tokens revoke");
                }
                return Err(error);
            }
            tracing::info!(name, %role, "token added");
            writeln!(stdout, "{token}").context("writing to standard output")?;
        }
        TokensCommand::List => {
            for token in store.tokens().await.context("listing tokens")? {
                let revoked = token.revoked_at.map_or_else(|| "-".to_owned(), |at| at.to_rfc3339());
                writeln!(stdout, "{}\t{}\t{}\t{}", token.name, token.role, token.created_at.to_rfc3339(), revoked)
                    .context("writing to standard output")?;
            }
        }
        TokensCommand::Revoke { name } => {
            let revoked = store.revoke_token(&name).await.context("revoking the token")?;
            anyhow::ensure!(revoked, "no live token named {name:?} in {shown} (--database-url, CATALOG_DATABASE_URL)");
            let (before, after) = (serde_json::json!({ "revoked": false }), serde_json::json!({ "revoked": true }));
            audit_cli(store, "token_revoke", &name, before, after).await?;
            tracing::info!(name, "token revoked");
        }
    }
    stdout.flush().context("writing to standard output")
}

/// Audits a token change made on the command line: the actor is `cli`.
async fn audit_cli(
    store: &dyn CatalogStore,
    action: &str,
    name: &str,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<()> {
    let record = catalog_store::AuditRecord {
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target: format!("token/{name}"),
        before: Some(before),
        after: Some(after),
    };
    store.record_audit(&record).await.context("writing the audit log")?;
    Ok(())
}

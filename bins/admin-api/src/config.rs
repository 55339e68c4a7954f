//! Command-line options: every option is a flag and a `CATALOG_*` environment variable.

use catalog_cli::options::naming_env;
use catalog_cli::{ChannelArgs, GateArgs, LogFormat, SignalArgs, StoreArgs};
use catalog_core::{SupplierId, TenantId};
use clap::builder::EnumValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::Role;

/// The support and operator service: item traces, sync flags, dead letters and the support
/// page. With no subcommand it serves.
#[derive(Debug, Clone, Parser)]
#[command(name = "admin-api", version, about)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub channels: ChannelArgs,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(flatten)]
    pub signals: SignalArgs,

    #[command(flatten)]
    pub gate: GateArgs,

    /// Log format on standard error.
    #[arg(long, env = "CATALOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,
}

/// What the server listens on and how it answers. Global, as every option here is, so
/// `admin-api serve --listen …` works as `admin-api --listen …` does.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the API and the support page listen on.
    #[arg(long, env = "CATALOG_ADMIN_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: String,

    /// Largest request body accepted, in bytes; a larger one is answered 413.
    #[arg(long, env = "CATALOG_ADMIN_MAX_BODY_BYTES", default_value_t = 16 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// A tenant whose last applied event is older than this many seconds, while newer events
    /// were received, is `behind`.
    #[arg(long, env = "CATALOG_ADMIN_BEHIND_AFTER_SECS", default_value_t = 300, global = true)]
    pub behind_after_secs: u64,

    /// A tenant that received nothing for this many seconds is `stale`.
    #[arg(long, env = "CATALOG_ADMIN_STALE_AFTER_SECS", default_value_t = 3_600, global = true)]
    pub stale_after_secs: u64,

    /// A dead letter retried by an operator this many times answers 409 to a further retry
    /// (the loop guard). Auto-heal's rounds are not counted: a retry takes a letter out of
    /// quarantine and gives auto-heal its rounds again.
    #[arg(long, env = "CATALOG_ADMIN_MAX_RETRIES", default_value_t = 5, global = true)]
    pub max_retries: u32,

    /// Mark the support page's sign-in cookie `Secure` on every sign-in, for a TLS proxy that
    /// does not send `X-Forwarded-Proto` or `Forwarded`; without it the cookie is `Secure`
    /// when one of those says the request came over HTTPS.
    #[arg(long, env = "CATALOG_ADMIN_SECURE_COOKIE", global = true)]
    pub secure_cookie: bool,
}

/// Subcommands: token management and the gate check. Each opens the same store as the server,
/// once its arguments are parsed and checked: a typo makes no database and migrates none;
/// every option of the service is taken before or after the subcommand.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the API and the support page (the default).
    Serve,
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The launch gate, for release pipelines.
    #[command(subcommand)]
    Gate(GateCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum GateCommand {
    /// Whether a step of a tenant's rollout is allowed now: exit code 0 when it is, 1 when
    /// the gate refuses it (every reason printed), 2 on an error.
    Check {
        /// The tenant.
        #[arg(long, env = "CATALOG_GATE_TENANT", value_parser = naming_env(TenantId::parse))]
        tenant: TenantId,
        /// The step asked about.
        #[arg(long, env = "CATALOG_GATE_STEP", value_parser = naming_env(EnumValueParser::<StepName>::new()))]
        step: StepName,
        /// The supplier of a `canary` or `widen` step (required for them).
        #[arg(
            long,
            env = "CATALOG_GATE_SUPPLIER",
            value_parser = naming_env(SupplierId::parse),
            required_if_eq_any = [("step", "canary"), ("step", "widen")]
        )]
        supplier: Option<SupplierId>,
    },
}

/// A step of the launch gate, as `gate check --step` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StepName {
    /// Start with one supplier (from closed).
    Canary,
    /// Add a supplier (from canary or widening).
    Widen,
    /// Apply every supplier.
    Open,
    /// Back to closed from anywhere.
    Rollback,
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Widen => "widen",
            Self::Open => "open",
            Self::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it, once, on standard output; only its hash is stored.
    Add {
        /// A unique name for the token's holder, shown in the audit log.
        #[arg(long, env = "CATALOG_TOKEN_NAME", value_parser = naming_env(parse_token_name))]
        name: String,
        /// What the token may do: `viewer` reads, `operator` also changes flags and dead
        /// letters, `admin` also manages tokens.
        #[arg(long, env = "CATALOG_TOKEN_ROLE", value_parser = crate::auth::parse_role)]
        role: Role,
    },
    /// List tokens: name, role, created, revoked.
    List,
    /// Revoke the token with this name.
    Revoke {
        /// The token's name. Its variable is its own, not `tokens add`'s: a revoke run where
        /// a bootstrap job set `CATALOG_TOKEN_NAME` must not revoke that token unasked.
        #[arg(env = "CATALOG_TOKEN_TO_REVOKE")]
        name: String,
    },
}

/// A token's name: 1 to 64 letters, digits or `-_.@`, as `POST /v1/tokens` takes it.
fn parse_token_name(name: &str) -> Result<String, &'static str> {
    match crate::api::valid_token_name(name) {
        true => Ok(name.to_owned()),
        false => Err("expected 1 to 64 letters, digits or -_.@"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::AdminArgs;

    #[test]
    fn the_admin_options_are_well_formed() {
        AdminArgs::command().debug_assert();
    }

    /// Every option, in every subcommand (`tokens add`, `gate check`, …), is a flag and a
    /// `CATALOG_*` variable with help text.
    #[test]
    fn every_admin_option_has_an_environment_variable_and_help() {
        assert_eq!(catalog_cli::options::lacking_env_or_help(&AdminArgs::command()), Vec::<String>::new());
    }

    /// `tokens revoke` with no name given, where `tokens add`'s variable is set, revokes
    /// nothing: it asks for the name.
    #[test]
    fn a_revoke_never_takes_its_name_from_another_command_s_variable() {
        use clap::Parser;

        let command = AdminArgs::command();
        let variable = |path: &[&str], id: &str| {
            let mut command = &command;
            for name in path {
                command = command.find_subcommand(name).expect("subcommand");
            }
            let argument = command.get_arguments().find(|argument| argument.get_id() == id).expect("argument");
            argument.get_env().map(|env| env.to_string_lossy().into_owned())
        };
        assert_ne!(variable(&["tokens", "revoke"], "name"), variable(&["tokens", "add"], "name"));
        assert!(AdminArgs::try_parse_from(["admin-api", "tokens", "revoke"]).is_err(), "the name is asked for");
    }

    /// A subcommand's arguments are parsed with the options, before any store is opened: a
    /// typo is refused (exit 2), the flag and its variable named.
    #[test]
    fn a_subcommand_s_arguments_are_checked_as_they_are_parsed() {
        use clap::Parser;

        use super::{Command, GateCommand, StepName};

        let parsed = |arguments: &[&str]| {
            AdminArgs::try_parse_from([&["admin-api"][..], arguments].concat()).map_err(|error| error.to_string())
        };
        let check = parsed(&["gate", "check", "--tenant", "canary", "--step", "widen", "--supplier", "acme"]);
        let Some(Command::Gate(GateCommand::Check { tenant, step, supplier })) = check.expect("valid").command else {
            panic!("gate check")
        };
        assert_eq!(
            (tenant.as_str(), step, supplier.map(String::from)),
            ("canary", StepName::Widen, Some("acme".into()))
        );
        parsed(&["gate", "check", "--tenant", "canary", "--step", "rollback"]).expect("no supplier needed");
        for (arguments, named) in [
            (&["--tenant", "canary", "--step", "opne"][..], &["--step", "CATALOG_GATE_STEP", "rollback"][..]),
            (&["--tenant", "Not A Tenant", "--step", "open"], &["--tenant", "CATALOG_GATE_TENANT"]),
            (
                &["--tenant", "canary", "--step", "canary", "--supplier", "ACME!"],
                &["--supplier", "CATALOG_GATE_SUPPLIER"],
            ),
            (&["--tenant", "canary", "--step", "widen"], &["--supplier"]),
        ] {
            let refused = parsed(&[&["gate", "check"][..], arguments].concat()).expect_err("refused");
            assert!(named.iter().all(|named| refused.contains(named)), "{arguments:?}: {refused}");
        }
        let refused = parsed(&["tokens", "add", "--name", "a b", "--role", "viewer"]).expect_err("no spaces");
        assert!(refused.contains("--name") && refused.contains("CATALOG_TOKEN_NAME"), "{refused}");
        parsed(&["tokens", "add", "--name", "ops@example.com", "--role", "viewer"]).expect("a name");
    }
}

//! The options rule every binary's test checks: each option, in every subcommand, is a flag
//! and a `CATALOG_*` environment variable with help text; and [`naming_env`], which makes a
//! refused value name the option's variable as well as its flag.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, StyledStr, TypedValueParser};
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, Command};

/// `parser`, whose refusal of a value also names the option's environment variable: clap
/// names the flag alone, and an operator who set the variable would look for the flag on a
/// command line that has none. `value_parser = naming_env(clap::value_parser!(u64).range(1..))`.
pub fn naming_env<P: TypedValueParser>(parser: P) -> NamingEnv<P> {
    NamingEnv(parser)
}

/// See [`naming_env`].
#[derive(Debug, Clone)]
pub struct NamingEnv<P>(P);

impl<P: TypedValueParser> TypedValueParser for NamingEnv<P> {
    type Value = P::Value;

    fn parse_ref(&self, command: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<P::Value, clap::Error> {
        self.parse_ref_(command, arg, value, ValueSource::CommandLine)
    }

    fn parse_ref_(
        &self,
        command: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
        source: ValueSource,
    ) -> Result<P::Value, clap::Error> {
        self.0.parse_ref_(command, arg, value, source).map_err(|mut error| {
            let flag = arg.and_then(Arg::get_long);
            let variable = arg.and_then(Arg::get_env).map(OsStr::to_string_lossy);
            if let (Some(flag), Some(variable)) = (flag, variable) {
                let tip = match source {
                    ValueSource::EnvVariable => format!("the value is {variable}'s, the variable of --{flag}"),
                    _ => format!("--{flag} is also set by the variable {variable}"),
                };
                error.insert(ContextKind::Suggested, ContextValue::StyledStrs(vec![StyledStr::from(tip)]));
            }
            error
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

/// The options of `command` and of its subcommands, recursively, that lack an environment
/// variable or help text, each named `path option: what is missing`; `help` and `version`
/// are clap's own and have neither. Empty when every option follows the rule.
pub fn lacking_env_or_help(command: &Command) -> Vec<String> {
    let mut lacking = Vec::new();
    walk(command, command.get_name(), &mut lacking);
    lacking
}

fn walk(command: &Command, path: &str, lacking: &mut Vec<String>) {
    for argument in command.get_arguments() {
        let id = argument.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        match argument.get_env().map(|env| env.to_string_lossy()) {
            None => lacking.push(format!("{path} {id}: no environment variable")),
            Some(env) if !env.starts_with("CATALOG_") => {
                lacking.push(format!("{path} {id}: variable {env} is not CATALOG_*"))
            }
            Some(_) => {}
        }
        if argument.get_help().is_none_or(|help| help.to_string().trim().is_empty()) {
            lacking.push(format!("{path} {id}: no help text"));
        }
    }
    for subcommand in command.get_subcommands() {
        walk(subcommand, &format!("{path} {}", subcommand.get_name()), lacking);
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    use super::{lacking_env_or_help, naming_env};

    /// A refused value names the flag and its variable, wherever it came from.
    #[test]
    fn a_refused_value_names_the_flag_and_the_variable() {
        let command = || {
            Command::new("tool").arg(
                Arg::new("rate")
                    .long("rate")
                    .env("CATALOG_TEST_NAMING_ENV_RATE")
                    .value_parser(naming_env(clap::value_parser!(u32).range(1..))),
            )
        };
        let given = command().try_get_matches_from(["tool", "--rate", "0"]).expect_err("0 is refused").to_string();
        assert!(given.contains("'0' for '--rate <rate>'"), "{given}");
        assert!(given.contains("tip: --rate is also set by the variable CATALOG_TEST_NAMING_ENV_RATE"), "{given}");
        let taken = command().try_get_matches_from(["tool", "--rate", "5"]).expect("5 is a rate");
        assert_eq!(taken.get_one::<u32>("rate"), Some(&5));
    }

    #[test]
    fn an_option_of_a_subcommand_without_a_variable_or_help_is_named() {
        let command = Command::new("tool")
            .arg(Arg::new("listen").long("listen").env("CATALOG_LISTEN").help("Where to listen."))
            .subcommand(
                Command::new("check")
                    .arg(Arg::new("tenant").long("tenant").help("The tenant."))
                    .arg(Arg::new("step").long("step").env("CATALOG_STEP"))
                    .arg(Arg::new("port").long("port").env("PORT").help("The port.")),
            );
        assert_eq!(
            lacking_env_or_help(&command),
            [
                "tool check tenant: no environment variable",
                "tool check step: no help text",
                "tool check port: variable PORT is not CATALOG_*"
            ]
        );
        assert!(lacking_env_or_help(
            &Command::new("tool").arg(Arg::new("listen").long("listen").env("CATALOG_LISTEN").help("Where to listen."))
        )
        .is_empty());
    }
}

//! The options rule every binary's test checks: each option, in every subcommand, is a flag
//! and a `CATALOG_*` environment variable with help text.

use clap::Command;

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

    use super::lacking_env_or_help;

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

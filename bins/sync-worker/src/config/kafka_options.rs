//! `--kafka-option`'s values: a flag's value is one option, taken whole; the variable
//! `CATALOG_KAFKA_OPTIONS` holds several, separated by commas.

use std::ffi::OsStr;

use catalog_kafka::ClientOption;
use clap::builder::TypedValueParser;
use clap::parser::ValueSource;

impl super::KafkaArgs {
    /// Every `--kafka-option` in the order given.
    pub fn client_options(&self) -> impl Iterator<Item = &ClientOption> {
        self.kafka_options.iter().flat_map(|options| &options.0)
    }
}

/// The options one value of `--kafka-option` gives: one from a flag, each between commas from
/// the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions(pub Vec<ClientOption>);

/// Parses `--kafka-option` by where its value came from. clap's `value_delimiter` splits the
/// flag's values as well as the variable's, so `--kafka-option ssl.cipher.suites=A,B` was two
/// options, `B` refused at start, though a librdkafka value may hold commas; the flag is
/// repeated for several options, and only the variable, one string, needs a separator.
#[derive(Debug, Clone, Copy)]
pub struct KafkaOptionsParser;

impl TypedValueParser for KafkaOptionsParser {
    type Value = KafkaOptions;

    fn parse_ref(
        &self,
        command: &clap::Command,
        argument: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<KafkaOptions, clap::Error> {
        self.parse_ref_(command, argument, value, ValueSource::CommandLine)
    }

    fn parse_ref_(
        &self,
        command: &clap::Command,
        argument: Option<&clap::Arg>,
        value: &OsStr,
        source: ValueSource,
    ) -> Result<KafkaOptions, clap::Error> {
        let one = |value: &OsStr| TypedValueParser::parse_ref(&parse_kafka_option, command, argument, value);
        // A value that is not UTF-8 has no commas to split at: the option's parser refuses it
        // whole, as clap would.
        match value.to_str() {
            Some(options) if source == ValueSource::EnvVariable => {
                options.split(',').map(|option| one(OsStr::new(option))).collect::<Result<_, _>>().map(KafkaOptions)
            }
            _ => one(value).map(|option| KafkaOptions(vec![option])),
        }
    }
}

fn parse_kafka_option(value: &str) -> Result<ClientOption, String> {
    ClientOption::parse(value).map_err(|error| error.to_string())
}

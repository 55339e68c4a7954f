//! The error taxonomy shared by the whole system: every failure falls in one class,
//! and the class decides whether to retry, dead-letter or stop.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who or what has to act for a failure to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Transient (a timeout, a dropped connection, a 5xx, a lock conflict): retry with backoff.
    Retryable,
    /// The input is wrong and only its sender can fix it: record the reason and move on.
    NeedsSupplier,
    /// Configuration, credentials or capacity: dead-letter, alert, keep the rest flowing.
    NeedsOperator,
    /// The process cannot go on correctly (a broken invariant, a lost schema): stop.
    Fatal,
}

impl FailureClass {
    /// The four classes, from the most to the least recoverable.
    pub const ALL: [FailureClass; 4] =
        [FailureClass::Retryable, FailureClass::NeedsSupplier, FailureClass::NeedsOperator, FailureClass::Fatal];

    /// The stable name used in logs, the journal and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureClass::Retryable => "retryable",
            FailureClass::NeedsSupplier => "needs_supplier",
            FailureClass::NeedsOperator => "needs_operator",
            FailureClass::Fatal => "fatal",
        }
    }

    /// Whether the same operation may succeed if simply tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FailureClass::Retryable)
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type of the system, so callers decide by class, not by message.
pub trait Classify {
    /// Which class this failure is in; it decides retry, dead letter or stop.
    fn failure_class(&self) -> FailureClass;
}

//! The launch gate: a tenant's rollout moves from a canary supplier to more suppliers to
//! everyone only while its signals have stayed green for a business day and support has
//! signed off traces; a rollback is always allowed and holds events, losing none.
//!
//! ```text
//! closed ──canary(s)──▶ canary{s} ──widen(t)──▶ widening{s,t,…} ──open──▶ open
//!    ▲                      │                          │                    │
//!    └──────────────────────┴───────── rollback ───────┴────────────────────┘
//! ```
//!
//! Nothing here reads a clock: `now` is passed in.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::ids::SupplierId;
use crate::signals::SignalName;

/// Where a tenant's rollout stands. It decides the sync flags: closed holds every event of
/// the tenant; canary and widening apply the listed suppliers' events and hold the others';
/// open applies everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Rollout {
    /// Nothing of the tenant is applied: every event is journaled `held`.
    Closed,
    /// One supplier's events are applied.
    Canary {
        /// The canary supplier.
        supplier: SupplierId,
    },
    /// The listed suppliers' events are applied, one added at a time.
    Widening {
        /// Every supplier applied so far, the canary included.
        suppliers: BTreeSet<SupplierId>,
    },
    /// Every supplier's events are applied.
    Open,
}

impl Rollout {
    /// The stable name of the stage.
    pub fn stage(&self) -> &'static str {
        match self {
            Rollout::Closed => "closed",
            Rollout::Canary { .. } => "canary",
            Rollout::Widening { .. } => "widening",
            Rollout::Open => "open",
        }
    }

    /// Whether events of `supplier` are applied at this stage.
    pub fn applies(&self, supplier: &SupplierId) -> bool {
        match self {
            Rollout::Closed => false,
            Rollout::Canary { supplier: canary } => canary == supplier,
            Rollout::Widening { suppliers } => suppliers.contains(supplier),
            Rollout::Open => true,
        }
    }
}

/// What an operator asks of the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum GateStep {
    /// Start with one supplier (from closed).
    Canary {
        /// The supplier to start with.
        supplier: SupplierId,
    },
    /// Add a supplier (from canary or widening).
    Widen {
        /// The supplier to add.
        supplier: SupplierId,
    },
    /// Apply every supplier (from canary or widening).
    Open,
    /// Back to closed from anywhere: the tenant's events are held from now on.
    Rollback,
}

impl GateStep {
    /// The stable name of the step.
    pub fn as_str(&self) -> &'static str {
        match self {
            GateStep::Canary { .. } => "canary",
            GateStep::Widen { .. } => "widen",
            GateStep::Open => "open",
            GateStep::Rollback => "rollback",
        }
    }
}

/// How long signals must stay green, how many signed-off traces are needed, and how far
/// apart samples may be before a gap breaks the green run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// One business day: 24 hours by default.
    pub green_for: Duration,
    /// Traces support must sign off before a rollout widens or opens: 3 by default.
    pub sign_offs: usize,
    /// Two samples further apart than this (or the newest one this old) leave a gap in the
    /// record, and a gap is not green: nobody was looking.
    pub max_sample_gap: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self { green_for: Duration::hours(24), sign_offs: 3, max_sample_gap: Duration::minutes(5) }
    }
}

/// One sample of a tenant's signals: when, and which were red.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSample {
    /// When the signals were judged.
    pub at: DateTime<Utc>,
    /// The signals that were red then; empty when all four were green.
    pub red: Vec<SignalName>,
}

/// What the gate decides from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateFacts {
    /// The tenant's samples, oldest first.
    pub samples: Vec<GateSample>,
    /// Traces support signed off since the rollout last changed.
    pub signed_off_traces: usize,
    /// When the rollout last changed (reached its stage); `None` when it never did. A stage
    /// is judged on what it did: its signals count only from this time on, so a stage
    /// younger than [`GateSettings::green_for`] never widens or opens, however green the
    /// samples before it (a closed tenant's are trivially green).
    pub stage_since: Option<DateTime<Utc>>,
}

/// Why the gate refused a step. Every reason that applies is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The step does not start from the rollout's stage (open from closed, say).
    #[error("cannot {step} from {stage}")]
    NotFromHere {
        /// The step asked for ([`GateStep::as_str`]).
        step: &'static str,
        /// The stage the rollout is at ([`Rollout::stage`]).
        stage: &'static str,
    },
    /// Widening by a supplier whose events are applied already.
    #[error("supplier {supplier} is already applied")]
    AlreadyApplied {
        /// The supplier asked for.
        supplier: SupplierId,
    },
    /// The newest sample has red signals.
    #[error("signals are red now: {}", names(.red))]
    RedSignals {
        /// The red ones.
        red: Vec<SignalName>,
    },
    /// The signals have not been green, without a gap, for [`GateSettings::green_for`].
    #[error("signals green since {}, {needed_hours} hours are needed", since.map_or("never".to_owned(), |at| at.to_rfc3339()))]
    NotGreenLongEnough {
        /// Since when they have been green; `None` when they are not green now.
        since: Option<DateTime<Utc>>,
        /// The hours needed ([`GateSettings::green_for`]).
        needed_hours: i64,
    },
    /// The rollout reached its stage less than [`GateSettings::green_for`] ago: the signals
    /// have not yet been measured on a business day of it.
    #[error("the rollout reached this stage at {}, it must run {needed_hours} hours first", since.to_rfc3339())]
    StageTooNew {
        /// When the rollout reached its stage ([`GateFacts::stage_since`]).
        since: DateTime<Utc>,
        /// The hours needed ([`GateSettings::green_for`]).
        needed_hours: i64,
    },
    /// Fewer traces signed off than [`GateSettings::sign_offs`].
    #[error("{have} signed-off traces, {need} are needed")]
    TooFewSignOffs {
        /// Traces signed off since the rollout last changed.
        have: usize,
        /// Traces needed.
        need: usize,
    },
    /// The tenant's sync is switched off (an operator's kill switch): its stage has measured
    /// nothing since, so it cannot be widened or opened on that stage's day. Switching it on
    /// again starts the stage's day afresh.
    #[error("the tenant's sync is switched off: switch it on first, which starts the stage's day again")]
    SwitchedOff,
}

fn names(red: &[SignalName]) -> String {
    red.iter().map(SignalName::as_str).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollout::Closed | Rollout::Open => f.write_str(self.stage()),
            Rollout::Canary { supplier } => write!(f, "canary({supplier})"),
            Rollout::Widening { suppliers } => {
                let list: Vec<&str> = suppliers.iter().map(SupplierId::as_str).collect();
                write!(f, "widening({})", list.join(", "))
            }
        }
    }
}

/// Since when the samples have been green without a gap, as of `now`; `None` when the
/// newest sample is red, missing, or older than the allowed gap.
pub fn green_since(samples: &[GateSample], now: DateTime<Utc>, max_gap: Duration) -> Option<DateTime<Utc>> {
    let newest = samples.last()?;
    if now - newest.at > max_gap || !newest.red.is_empty() {
        return None;
    }
    let mut since = newest.at;
    for sample in samples.iter().rev().skip(1) {
        if !sample.red.is_empty() || since - sample.at > max_gap {
            break;
        }
        since = sample.at;
    }
    Some(since)
}

/// The rollout with `supplier` added to `suppliers`, unless it is there already.
fn widen(mut suppliers: BTreeSet<SupplierId>, supplier: &SupplierId) -> Result<Rollout, Vec<Refusal>> {
    if suppliers.insert(supplier.clone()) {
        Ok(Rollout::Widening { suppliers })
    } else {
        Err(vec![Refusal::AlreadyApplied { supplier: supplier.clone() }])
    }
}

/// Decides `step` for a rollout at `rollout`: the next rollout, or every reason it is refused.
/// Leaving closed needs no signals (nothing of the tenant was applied to measure); widening
/// and opening need the signals green for `green_for`, the stage itself at least that old,
/// and enough signed-off traces; a rollback is always allowed.
///
/// ```
/// use catalog_core::{decide_step, GateFacts, GateSettings, GateStep, Refusal, Rollout, SupplierId};
///
/// let acme = SupplierId::parse("acme").unwrap();
/// let now = "2026-06-01T12:00:00Z".parse().unwrap();
/// let settings = GateSettings::default();
/// let canary = decide_step(&Rollout::Closed, &GateStep::Canary { supplier: acme.clone() }, &GateFacts::default(), &settings, now);
/// assert_eq!(canary, Ok(Rollout::Canary { supplier: acme.clone() }));
///
/// // Opening with no samples and no sign-offs is refused, with every reason.
/// let refused = decide_step(&canary.unwrap(), &GateStep::Open, &GateFacts::default(), &settings, now).unwrap_err();
/// assert!(refused.contains(&Refusal::TooFewSignOffs { have: 0, need: 3 }));
/// assert_eq!(decide_step(&Rollout::Open, &GateStep::Rollback, &GateFacts::default(), &settings, now), Ok(Rollout::Closed));
/// ```
pub fn decide_step(
    rollout: &Rollout,
    step: &GateStep,
    facts: &GateFacts,
    settings: &GateSettings,
    now: DateTime<Utc>,
) -> Result<Rollout, Vec<Refusal>> {
    let not_from_here = || vec![Refusal::NotFromHere { step: step.as_str(), stage: rollout.stage() }];
    let next = match (rollout, step) {
        // From closed too: a tenant never put through the gate, or switched on by hand, is
        // closed by its rollout while its events apply, and a rollback must hold them.
        (_, GateStep::Rollback) => return Ok(Rollout::Closed),
        (Rollout::Closed, GateStep::Canary { supplier }) => return Ok(Rollout::Canary { supplier: supplier.clone() }),
        (Rollout::Canary { supplier: first }, GateStep::Widen { supplier }) => {
            widen(BTreeSet::from([first.clone()]), supplier)?
        }
        (Rollout::Widening { suppliers }, GateStep::Widen { supplier }) => widen(suppliers.clone(), supplier)?,
        (Rollout::Canary { .. } | Rollout::Widening { .. }, GateStep::Open) => Rollout::Open,
        _ => return Err(not_from_here()),
    };
    let mut refusals = Vec::new();
    if let Some(newest) = facts.samples.last().filter(|sample| !sample.red.is_empty()) {
        refusals.push(Refusal::RedSignals { red: newest.red.clone() });
    }
    let since = green_since(&facts.samples, now, settings.max_sample_gap);
    if since.is_none_or(|since| now - since < settings.green_for) {
        refusals.push(Refusal::NotGreenLongEnough { since, needed_hours: settings.green_for.num_hours() });
    }
    if let Some(since) = facts.stage_since.filter(|since| now - *since < settings.green_for) {
        refusals.push(Refusal::StageTooNew { since, needed_hours: settings.green_for.num_hours() });
    }
    if facts.signed_off_traces < settings.sign_offs {
        refusals.push(Refusal::TooFewSignOffs { have: facts.signed_off_traces, need: settings.sign_offs });
    }
    if refusals.is_empty() {
        Ok(next)
    } else {
        Err(refusals)
    }
}

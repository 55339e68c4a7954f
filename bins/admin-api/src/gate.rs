//! The launch gate over the store: what it decides from (the tenant's rollout, its signal
//! samples, the picked sample of applied items and support's sign-offs), which steps are
//! allowed now and why not, and taking an allowed step. Shared by the API, the support page
//! and the `gate check` command.

use catalog_core::{
    decide_step, GateFacts, GateSettings, GateStep, Refusal, Rollout, SignalSettings, SupplierId, TenantId,
};
use catalog_store::{AppliedItem, CatalogStore, RolloutChange, RolloutState, SignOffRecord, StoreError, TenantFlags};
use chrono::{DateTime, Utc};

/// How many samples the signals API returns at most, the newest: a day of two workers'
/// samples at the default 60 s interval (every worker samples every tenant). The
/// answer says when older ones were left out (`more`); the page reads more
/// (`page_signals`).
pub const MAX_SAMPLES: usize = 3_000;

/// The spans of time the gate reads one sample each of, as a share of the allowed gap: every
/// worker samples every tenant, so the store merges the samples of a span (red if any was)
/// and the gate reads a day of them whatever the number of workers (1,152 at the defaults).
const SPANS_PER_GAP: i32 = 4;

/// The signals' and the gate's settings, as the worker judges with them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchSettings {
    pub signals: SignalSettings,
    pub gate: GateSettings,
}

/// Everything the gate decides a tenant's next step from, read at `now`.
#[derive(Debug, Clone)]
pub struct GateContext {
    pub tenant: TenantId,
    pub now: DateTime<Utc>,
    pub state: RolloutState,
    /// The samples since `now - green_for - max_sample_gap`, oldest first, merged per span
    /// of a quarter of the allowed gap, at each span's first and last time
    /// (`SignalStore::gate_samples`).
    pub samples: Vec<catalog_core::GateSample>,
    /// The items whose traces support signs off: the first applied since the rollout last
    /// changed (stable while the stage holds).
    pub picked: Vec<AppliedItem>,
    /// Sign-offs since the rollout last changed.
    pub sign_offs: Vec<SignOffRecord>,
    /// The tenant's sync flags; `None` for a tenant no event of which was seen yet, which
    /// has nothing to roll back.
    pub flags: Option<TenantFlags>,
}

impl GateContext {
    /// Reads the context of `tenant` at `now`.
    pub async fn read(
        store: &dyn CatalogStore,
        settings: &GateSettings,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let state = store.rollout(tenant).await?;
        let since_change = state.changed_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let since = now - settings.green_for - settings.max_sample_gap;
        let samples = store.gate_samples(Some(tenant), since, settings.max_sample_gap / SPANS_PER_GAP).await?;
        let picked = store.applied_items_since(tenant, since_change, settings.sign_offs).await?;
        let sign_offs = store.sign_offs(tenant, since_change).await?;
        let flags = store.tenant_flags(tenant).await?;
        Ok(Self { tenant: tenant.clone(), now, state, samples, picked, sign_offs, flags })
    }

    /// Distinct picked items signed off since the rollout last changed.
    pub fn signed_off_traces(&self) -> usize {
        let mut signed: Vec<_> = self
            .sign_offs
            .iter()
            .filter(|sign_off| self.picked.iter().any(|item| item.item_id == sign_off.item_id))
            .map(|sign_off| sign_off.item_id)
            .collect();
        signed.sort_by_key(|id| id.0);
        signed.dedup();
        signed.len()
    }

    /// Traces to sign off: `settings.sign_offs`, or, when the stage applied fewer items than
    /// that (a canary supplier that changed two SKUs all day, or a hot one whose first
    /// 200,000 journal rows since the step hold fewer: the sample's walk stops there), each
    /// item of its sample, at least one. Held at the setting, a short sample refused every
    /// widen and open for the life of the stage, with nothing left for support to sign.
    pub fn sign_offs_needed(&self, settings: &GateSettings) -> usize {
        settings.sign_offs.min(self.picked.len().max(1))
    }

    /// Whether the sample holds fewer items than `settings.sign_offs` (`sign_offs_needed`).
    pub fn sample_short(&self, settings: &GateSettings) -> bool {
        self.picked.len() < settings.sign_offs
    }

    pub fn facts(&self) -> GateFacts {
        GateFacts {
            samples: self.samples.clone(),
            signed_off_traces: self.signed_off_traces(),
            stage_since: self.state.changed_at,
        }
    }

    /// The rollout `step` leads to now, or every reason it is refused. A tenant never seen has
    /// nothing to roll back (most likely its id is mistyped): refused as not from its stage.
    pub fn decide(&self, step: &GateStep, settings: &GateSettings) -> Result<Rollout, Vec<Refusal>> {
        if *step == GateStep::Rollback && self.flags.is_none() {
            return Err(vec![Refusal::NotFromHere { step: step.as_str(), stage: self.state.rollout.stage() }]);
        }
        // A kill switch thrown on the tenant stops every event: the stage's day measured
        // nothing since, yet its samples (of no traffic) stay green. Switching it on starts the
        // day again (`restarts_stage`); until then, it goes no further.
        let switched_off = matches!(step, GateStep::Widen { .. } | GateStep::Open)
            && self.flags.as_ref().is_some_and(|flags| !flags.sync_enabled);
        let settings = &GateSettings { sign_offs: self.sign_offs_needed(settings), ..*settings };
        match decide_step(&self.state.rollout, step, &self.facts(), settings, self.now) {
            Ok(_) if switched_off => Err(vec![Refusal::SwitchedOff]),
            Err(mut refusals) if switched_off => {
                refusals.push(Refusal::SwitchedOff);
                Err(refusals)
            }
            decided => decided,
        }
    }

    /// Whether the gate never moved the tenant: closed by no step, its sync set by hand (or
    /// by `--default-sync`) alone.
    pub fn never_gated(&self) -> bool {
        self.state.changed_at.is_none()
    }
}

/// Why a step was not taken.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused(Vec<Refusal>),
    /// The rollout, or the tenant's sync switch, changed between reading it and writing the
    /// step.
    #[error("the rollout or the tenant's sync switch changed meanwhile")]
    Moved,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A step taken: the rollout before and after, and the tenant's flags just before it, read
/// under the lock it was written under (`None` for a tenant with no flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTaken {
    pub before: Rollout,
    pub after: Rollout,
    pub flags_before: Option<TenantFlags>,
}

/// Decides `step` for `tenant` now and, when allowed, writes it (the rollout and its flags in
/// one transaction). Held events are not replayed here: the caller does that.
pub async fn take_step(
    store: &dyn CatalogStore,
    settings: &GateSettings,
    tenant: &TenantId,
    step: &GateStep,
    actor: &str,
) -> Result<StepTaken, StepError> {
    let now = Utc::now();
    let context = GateContext::read(store, settings, tenant, now).await?;
    let after = context.decide(step, settings).map_err(StepError::Refused)?;
    if *step == GateStep::Rollback && context.never_gated() {
        // A tenant the gate never moved is held by its sync switch alone, as `PUT …/sync`
        // does: switching it on again by hand stays possible, where a rollout written now
        // would put it behind the gate (a canary and a day of green signals to reopen).
        // Switched off while the gate still has not moved it: a canary committed meanwhile
        // is not left with its tenant off behind an entry that reads "closed → closed".
        if !store.switch_within(tenant, None, &context.state, false, actor).await? {
            return Err(StepError::Moved);
        }
        return Ok(StepTaken { before: context.state.rollout, after, flags_before: context.flags });
    }
    let change = RolloutChange {
        tenant: tenant.clone(),
        from: context.state.rollout.clone(),
        from_since: context.state.changed_at,
        from_sync: context.flags.as_ref().map(|flags| flags.sync_enabled),
        to: after.clone(),
        step: step.as_str().to_owned(),
        actor: actor.to_owned(),
        at: now,
    };
    let Some(flags_before) = store.change_rollout(&change).await? else { return Err(StepError::Moved) };
    Ok(StepTaken { before: context.state.rollout, after, flags_before: Some(flags_before) })
}

/// The supplier a canary or widen step names when the tenant was seen and none of its events
/// came from that supplier: most likely a typo, which taken would hold every supplier the step
/// does not name and start the stage's day again. The API refuses it (404) unless asked to
/// `create` it; `gate check` says so.
pub fn unseen_supplier<'s>(step: &'s GateStep, flags: Option<&TenantFlags>) -> Option<&'s SupplierId> {
    match (step, flags) {
        (GateStep::Canary { supplier } | GateStep::Widen { supplier }, Some(flags))
            if !flags.suppliers.contains_key(supplier) =>
        {
            Some(supplier)
        }
        _ => None,
    }
}

/// The step a name and an optional supplier stand for.
pub fn parse_step(name: &str, supplier: Option<SupplierId>) -> Result<GateStep, String> {
    match (name, supplier) {
        ("canary", Some(supplier)) => Ok(GateStep::Canary { supplier }),
        ("widen", Some(supplier)) => Ok(GateStep::Widen { supplier }),
        ("canary" | "widen", None) => Err(format!("step {name} needs a supplier")),
        ("open", _) => Ok(GateStep::Open),
        ("rollback", _) => Ok(GateStep::Rollback),
        _ => Err(format!("unknown step {name:?}: canary, widen, open or rollback")),
    }
}

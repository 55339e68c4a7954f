//! The launch gate of a tenant: where its rollout stands, whether each step is allowed now
//! and why not, the sample of applied items support traces and signs off, and the steps
//! (canary, widen, open, rollback). A refused step answers 409 `gate_refused` with every
//! failing condition; every write is audited.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use catalog_core::{GateStep, ItemId, Refusal, Rollout, SupplierId, TenantId};
use catalog_store::{Role, RolloutChangeRecord, SignOff, SignOffRecord, TenantFlags};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::flags::Unseen;
use super::{audit, supplier, tenant};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::gate::{take_step, unseen_supplier, GateContext, StepError};
use crate::AppState;

/// One step and whether it is allowed now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepView {
    /// `canary`, `widen`, `open` or `rollback`.
    pub step: &'static str,
    /// The supplier a canary or widen step was judged for.
    pub supplier: Option<String>,
    pub allowed: bool,
    /// Every reason it is refused (`not_from_here`, `already_applied`, `red_signals`,
    /// `not_green_long_enough`, `stage_too_new`, `too_few_sign_offs`, `switched_off`).
    #[schema(value_type = Vec<Object>)]
    pub refusals: Vec<Refusal>,
}

/// An item picked for support to trace and sign off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SampleView {
    pub item_id: String,
    pub sku: String,
    pub first_applied_at: DateTime<Utc>,
    /// Signed off since the rollout last changed.
    pub signed_off: bool,
    /// Where its trace is read.
    pub trace: String,
}

/// A tenant's gate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GateView {
    pub tenant_id: String,
    /// `{"stage": "closed" | "canary" | "widening" | "open", "supplier" | "suppliers": …}`.
    #[schema(value_type = Object)]
    pub rollout: Rollout,
    pub changed_at: Option<DateTime<Utc>>,
    /// The tenant's sync switch: whether its events apply now (`null` for a tenant not seen
    /// yet, whose first event takes the worker's `--default-sync`). A tenant never put
    /// through the gate is `closed` by its rollout and applies its events all the same
    /// while its sync is on; a rollback holds them, a canary narrows them to one supplier.
    pub sync_enabled: Option<bool>,
    /// Whether all four signals were green at the newest sample, taken within the allowed gap
    /// between samples (a sampler that stopped is not green now), and since when without a gap.
    pub green_now: bool,
    pub green_since: Option<DateTime<Utc>>,
    pub green_hours_needed: i64,
    /// Traces to sign off: `--gate-sign-offs`, or every item of a short sample.
    pub sign_offs_needed: usize,
    /// Whether the stage applied fewer items than `--gate-sign-offs` (or the sample's walk
    /// stopped at its first 200,000 journal rows before finding more): each of its items is
    /// then signed off, and more join it as the stage applies them.
    pub sample_short: bool,
    pub signed_off_traces: usize,
    pub steps: Vec<StepView>,
    pub samples: Vec<SampleView>,
    pub sign_offs: Vec<SignOffRecord>,
    /// The newest changes first.
    pub history: Vec<RolloutChangeRecord>,
}

/// The steps judged for the view: canary and widen for the first of the tenant's suppliers
/// the rollout does not apply yet.
fn judged_steps(context: &GateContext, state: &AppState, candidate: Option<SupplierId>) -> Vec<StepView> {
    let mut steps: Vec<GateStep> = Vec::new();
    if let Some(supplier) = candidate {
        steps.push(GateStep::Canary { supplier: supplier.clone() });
        steps.push(GateStep::Widen { supplier });
    }
    steps.extend([GateStep::Open, GateStep::Rollback]);
    steps
        .into_iter()
        .map(|step| {
            let decided = context.decide(&step, &state.launch.gate);
            let supplier = match &step {
                GateStep::Canary { supplier } | GateStep::Widen { supplier } => Some(supplier.to_string()),
                GateStep::Open | GateStep::Rollback => None,
            };
            StepView {
                step: step.as_str(),
                supplier,
                allowed: decided.is_ok(),
                refusals: decided.err().unwrap_or_default(),
            }
        })
        .collect()
}

/// The gate of `tenant` now, for the API and the support page.
pub async fn gate_view(state: &AppState, tenant: &TenantId) -> Result<GateView, ApiError> {
    let settings = &state.launch.gate;
    let context = GateContext::read(&*state.store, settings, tenant, Utc::now()).await?;
    let candidate = context
        .flags
        .iter()
        .flat_map(|flags| flags.suppliers.keys())
        .find(|supplier| !context.state.rollout.applies(supplier))
        .cloned();
    let facts = context.facts();
    let green_since = catalog_core::green_since(&facts.samples, context.now, settings.max_sample_gap);
    let samples = context
        .picked
        .iter()
        .map(|item| SampleView {
            item_id: item.item_id.to_string(),
            sku: item.sku.to_string(),
            first_applied_at: item.first_applied_at,
            signed_off: context.sign_offs.iter().any(|sign_off| sign_off.item_id == item.item_id),
            trace: format!("/v1/items/{}/trace", item.item_id),
        })
        .collect();
    Ok(GateView {
        tenant_id: tenant.to_string(),
        rollout: context.state.rollout.clone(),
        changed_at: context.state.changed_at,
        sync_enabled: context.flags.as_ref().map(|flags| flags.sync_enabled),
        // As the gate judges it: a green sample older than the allowed gap said "green now"
        // of a sampler that had stopped a day before.
        green_now: green_since.is_some(),
        green_since,
        green_hours_needed: settings.green_for.num_hours(),
        sign_offs_needed: context.sign_offs_needed(settings),
        sample_short: context.sample_short(settings),
        signed_off_traces: facts.signed_off_traces,
        steps: judged_steps(&context, state, candidate),
        samples,
        sign_offs: context.sign_offs.clone(),
        history: state.store.rollout_history(tenant, 50).await?,
    })
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/gate", tag = "gate", params(("tenant_id" = String, Path, description = "Tenant id")), responses((status = 200, description = "The tenant's gate: stage, steps allowed now and why not, the sample, sign-offs, history", body = GateView), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn read_gate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<GateView>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(tenant_id) = path?;
    Ok(Json(gate_view(&state, &tenant(&tenant_id)?).await?))
}

/// A sign-off of one sampled item's trace.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignOffRequest {
    pub item_id: String,
    /// What support checked.
    #[serde(default)]
    pub note: String,
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/gate/sign-offs", tag = "gate", params(("tenant_id" = String, Path, description = "Tenant id")), request_body = SignOffRequest, responses((status = 200, description = "Signed off; the gate as it is now", body = GateView), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 409, description = "The item is not in the gate's sample (`not_sampled`)", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn sign_off(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SignOffRequest>, JsonRejection>,
) -> Result<Json<GateView>, ApiError> {
    caller.require(Role::Operator)?;
    let Path(tenant_id) = path?;
    let tenant = tenant(&tenant_id)?;
    let Json(request) = body?;
    let item_id = request
        .item_id
        .parse()
        .map(ItemId)
        .map_err(|_| ApiError::bad_request("invalid_item_id", "item_id must be a uuid"))?;
    if request.note.len() > 1_000 {
        return Err(ApiError::bad_request("invalid_note", "note must be at most 1,000 bytes"));
    }
    sign_off_item(&state, &caller, &tenant, item_id, &request.note).await?;
    Ok(Json(gate_view(&state, &tenant).await?))
}

/// Signs off a sampled item's trace at its current version, audited. Shared with the page.
pub async fn sign_off_item(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    item_id: ItemId,
    note: &str,
) -> Result<(), ApiError> {
    caller.require(Role::Operator)?;
    let context = GateContext::read(&*state.store, &state.launch.gate, tenant, Utc::now()).await?;
    let Some(picked) = context.picked.iter().find(|item| item.item_id == item_id) else {
        return Err(ApiError::Conflict {
            code: "not_sampled",
            message: "the item is not in the gate's sample; sign off one of the sampled items".to_owned(),
        });
    };
    let item = state.store.item(item_id).await?.ok_or_else(|| ApiError::not_found(format!("no item {item_id}")))?;
    let record = SignOff {
        tenant: tenant.clone(),
        item_id,
        sku: picked.sku.clone(),
        version: item.version(),
        signed_by: caller.name.clone(),
        signed_at: Utc::now(),
        note: note.to_owned(),
    };
    let sign_off_id = state.store.record_sign_off(&record).await?;
    let after = serde_json::json!({ "sign_off_id": sign_off_id, "item_id": item_id.to_string(), "version": item.version(), "note": note });
    audit(state, caller, "gate_sign_off", format!("tenant/{tenant}/item/{item_id}"), serde_json::Value::Null, after)
        .await
}

/// A canary or widen step's supplier.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SupplierStep {
    pub supplier: String,
    /// Take the step for a supplier no event of the tenant came from yet: without it, such
    /// an id is refused 404 as a likely typo (a step for it would leave the one meant held).
    #[serde(default)]
    pub create: bool,
}

/// What a step did: the rollout before and after, and the held events applied when it opened
/// more of the tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepResult {
    #[schema(value_type = Object)]
    pub before: Rollout,
    #[schema(value_type = Object)]
    pub after: Rollout,
    pub events_replayed: usize,
    pub events_by_outcome: BTreeMap<&'static str, u64>,
}

/// The 409 of a refused step: every failing condition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefusedBody {
    /// `gate_refused`.
    pub code: &'static str,
    pub message: String,
    #[schema(value_type = Vec<Object>)]
    pub refusals: Vec<Refusal>,
}

/// A step's failure: refused by the gate, or an API error.
#[derive(Debug)]
pub enum GateError {
    Refused(Vec<Refusal>),
    Api(ApiError),
}

impl From<ApiError> for GateError {
    fn from(error: ApiError) -> Self {
        GateError::Api(error)
    }
}

impl IntoResponse for GateError {
    fn into_response(self) -> Response {
        match self {
            GateError::Refused(refusals) => {
                let message = refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                (StatusCode::CONFLICT, Json(RefusedBody { code: "gate_refused", message, refusals })).into_response()
            }
            GateError::Api(error) => error.into_response(),
        }
    }
}

/// Takes `step` for `tenant` if the gate allows it now, audited; a step that applies more of
/// the tenant applies its held events (as switching a flag on does). Shared with the page.
/// Run to its end whether or not the caller waits (`to_completion`).
pub async fn step(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    step: GateStep,
    unseen: Unseen,
) -> Result<StepResult, GateError> {
    let (owned, caller, tenant) = (state.clone(), caller.clone(), tenant.clone());
    crate::to_completion(state, async move { step_here(&owned, &caller, &tenant, step, unseen).await }).await
}

async fn step_here(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    step: GateStep,
    unseen: Unseen,
) -> Result<StepResult, GateError> {
    caller.require(Role::Operator)?;
    let flags = state.store.tenant_flags(tenant).await.map_err(ApiError::from)?;
    let seen = flags.is_some();
    // A canary or widen naming a supplier none of the tenant's events came from is most
    // likely a typo: taken, it answered 200, left the supplier meant held, started the
    // stage's day and sign-offs again, and made the typo a known supplier. A tenant with
    // no event seen has no supplier to tell a typo by; a canary may come first.
    if let (Some(supplier), Unseen::Refuse) = (unseen_supplier(&step, flags.as_ref()), unseen) {
        let message = format!(
            "supplier {supplier} of tenant {tenant} has no event seen yet, so the step would hold every supplier \
             it does not name: check its spelling (GET /v1/tenants lists each tenant's suppliers seen), or send \
             \"create\": true to take the step before its first event"
        );
        return Err(ApiError::not_found(message).into());
    }
    // A rollback of a tenant with no event seen holds nothing: most likely a typo, which must
    // not answer success while the tenant meant goes on syncing. A canary may come before the
    // first event (it holds every other supplier's from the start).
    if step == GateStep::Rollback && !seen {
        let message = format!(
            "tenant {tenant} has no event seen yet, so there is nothing to roll back: check its spelling (GET \
             /v1/tenants lists every one seen), or hold its first events with PUT /v1/tenants/{tenant}/sync \
             {{\"enabled\": false, \"create\": true}}"
        );
        return Err(ApiError::not_found(message).into());
    }
    let taken = match take_step(&*state.store, &state.launch.gate, tenant, &step, &caller.name).await {
        Ok(taken) => taken,
        Err(StepError::Refused(refusals)) => return Err(GateError::Refused(refusals)),
        Err(StepError::Moved) => {
            return Err(GateError::Api(ApiError::Conflict {
                code: "conflict",
                message: "the rollout or the tenant's sync switch changed meanwhile (a step, a rollback or the \
                          kill switch); nothing was changed: read the gate and try again"
                    .to_owned(),
            }))
        }
        Err(StepError::Store(error)) => return Err(GateError::Api(error.into())),
    };
    // Read before the audit, which it goes into, and told after it: the step is committed, and
    // a failed read must not leave it unaudited.
    let flags_after = state.store.tenant_flags(tenant).await;
    // The tenant's sync switch beside the stage: a rollback of a tenant the gate never moved
    // changes the switch alone, and its entry read "closed → closed".
    let entry = |rollout: &Rollout, flags: Option<&TenantFlags>| {
        let mut entry = serde_json::to_value(rollout).unwrap_or_default();
        if let Some(object) = entry.as_object_mut() {
            object.insert("sync_enabled".to_owned(), flags.map(|flags| flags.sync_enabled).into());
        }
        entry
    };
    let read_after = flags_after.as_ref().ok().and_then(Option::as_ref);
    // The flags the step was written over, read under its lock: a switch thrown between the
    // gate's read and the step is in them, so the entry and the held events replayed below
    // are told by what the step changed, not by a read taken before it.
    let flags_before = taken.flags_before.as_ref();
    let (before, after) = (entry(&taken.before, flags_before), entry(&taken.after, read_after));
    // The step is committed: a failed audit write is answered, after the held events the
    // step lets through are applied (a step taken again is refused, so no retry would).
    let audited = audit(state, caller, &format!("gate_{}", step.as_str()), format!("tenant/{tenant}"), before, after)
        .await
        .inspect_err(|error| {
            tracing::error!(%tenant, step = step.as_str(), error = %error, "a gate step was taken but its audit entry could not be written; its held events are applied all the same");
        });
    let flags_after = flags_after.map_err(ApiError::from)?;
    // Every supplier the step turned on gets its held events applied, the one it names and
    // any other it set on (one an operator had switched off, listed again by a widen).
    let (mut events_replayed, mut events_by_outcome) = (0, BTreeMap::new());
    for supplier in turned_on(flags_before, flags_after.as_ref()) {
        let request = catalog_app::replay::HeldRequest {
            tenant: tenant.clone(),
            supplier: Some(supplier),
            since: super::held_since(),
        };
        let summary = catalog_app::replay::replay_held(&*state.store, &request)
            .await
            .map_err(|error| ApiError::Internal(anyhow::Error::new(error)))?;
        events_replayed += summary.n_replayed;
        for (outcome, n) in summary.outcomes {
            *events_by_outcome.entry(outcome).or_insert(0) += n;
        }
    }
    audited?;
    Ok(StepResult { before: taken.before, after: taken.after, events_replayed, events_by_outcome })
}

/// The suppliers whose events sync now applies and did not before: on, under a tenant that
/// is on, after; not both before (or not known then).
fn turned_on(before: Option<&TenantFlags>, after: Option<&TenantFlags>) -> Vec<SupplierId> {
    let Some(after) = after.filter(|after| after.sync_enabled) else { return Vec::new() };
    let was_on = |supplier: &SupplierId| {
        before.is_some_and(|before| before.sync_enabled && before.suppliers.get(supplier).copied().unwrap_or(false))
    };
    after
        .suppliers
        .iter()
        .filter(|(supplier, on)| **on && !was_on(supplier))
        .map(|(supplier, _)| supplier.clone())
        .collect()
}

async fn run_step(
    state: AppState,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    make: impl FnOnce() -> Result<(GateStep, Unseen), ApiError>,
) -> Result<Json<StepResult>, GateError> {
    let Path(tenant_id) = path.map_err(ApiError::from)?;
    let tenant = tenant(&tenant_id)?;
    let (gate_step, unseen) = make()?;
    Ok(Json(step(&state, &caller, &tenant, gate_step, unseen).await?))
}

/// A canary or widen step's supplier, and what to do if none of its events was seen.
fn supplier_body(body: Result<Json<SupplierStep>, JsonRejection>) -> Result<(SupplierId, Unseen), ApiError> {
    let Json(request) = body?;
    Ok((supplier(&request.supplier)?, if request.create { Unseen::Create } else { Unseen::Refuse }))
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/gate/canary", tag = "gate", params(("tenant_id" = String, Path, description = "Tenant id")), request_body = SupplierStep, responses((status = 200, description = "The tenant applies this supplier's events only; its held events applied", body = StepResult), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 404, description = "A supplier with no event of the tenant seen yet, and no `create`", body = ErrorBody), (status = 409, description = "Refused by the gate (`gate_refused`, every reason) or the rollout or the tenant's sync switch moved meanwhile (`conflict`)", body = RefusedBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn canary(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SupplierStep>, JsonRejection>,
) -> Result<Json<StepResult>, GateError> {
    run_step(state, caller, path, || {
        let (supplier, unseen) = supplier_body(body)?;
        Ok((GateStep::Canary { supplier }, unseen))
    })
    .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/gate/widen", tag = "gate", params(("tenant_id" = String, Path, description = "Tenant id")), request_body = SupplierStep, responses((status = 200, description = "The supplier's events apply too; its held events applied", body = StepResult), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 404, description = "A supplier with no event of the tenant seen yet, and no `create`", body = ErrorBody), (status = 409, description = "Refused by the gate (`gate_refused`, every reason) or the rollout or the tenant's sync switch moved meanwhile (`conflict`)", body = RefusedBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn widen(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SupplierStep>, JsonRejection>,
) -> Result<Json<StepResult>, GateError> {
    run_step(state, caller, path, || {
        let (supplier, unseen) = supplier_body(body)?;
        Ok((GateStep::Widen { supplier }, unseen))
    })
    .await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/gate/open", tag = "gate", params(("tenant_id" = String, Path, description = "Tenant id")), responses((status = 200, description = "Every supplier's events apply; held events applied", body = StepResult), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 409, description = "Refused by the gate (`gate_refused`, every reason) or the rollout or the tenant's sync switch moved meanwhile (`conflict`)", body = RefusedBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn open(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StepResult>, GateError> {
    run_step(state, caller, path, || Ok((GateStep::Open, Unseen::Refuse))).await
}

#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/gate/rollback", tag = "gate", params(("tenant_id" = String, Path, description = "Tenant id")), responses((status = 200, description = "Closed: the tenant's events are held from now on, none lost", body = StepResult), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "No live token", body = ErrorBody), (status = 403, description = "Role may not", body = ErrorBody), (status = 404, description = "No event of the tenant seen yet", body = ErrorBody), (status = 409, description = "The rollout moved (`conflict`)", body = RefusedBody), (status = 500, description = "Internal error", body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StepResult>, GateError> {
    run_step(state, caller, path, || Ok((GateStep::Rollback, Unseen::Refuse))).await
}

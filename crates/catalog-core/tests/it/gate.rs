//! The launch gate: every step it allows and every refusal, as scenarios.

use catalog_core::{
    decide_step, green_since, GateFacts, GateSample, GateSettings, GateStep, Refusal, Rollout, SignalName, SupplierId,
};
use chrono::{DateTime, Duration, Utc};

fn supplier(name: &str) -> SupplierId {
    SupplierId::parse(name).expect("valid supplier")
}

fn start() -> DateTime<Utc> {
    "2026-06-01T09:00:00Z".parse().expect("valid time")
}

/// A sample every minute for `hours`, all green, ending at `start() + hours`.
fn green_for(hours: i64) -> Vec<GateSample> {
    (0..=hours * 60).map(|minute| GateSample { at: start() + Duration::minutes(minute), red: Vec::new() }).collect()
}

fn canary() -> Rollout {
    Rollout::Canary { supplier: supplier("acme") }
}

fn widen(name: &str) -> GateStep {
    GateStep::Widen { supplier: supplier(name) }
}

fn decide(rollout: &Rollout, step: &GateStep, facts: &GateFacts, now: DateTime<Utc>) -> Result<String, Vec<String>> {
    decide_step(rollout, step, facts, &GateSettings::default(), now)
        .map(|next| next.to_string())
        .map_err(|refusals| refusals.iter().map(Refusal::to_string).collect())
}

#[test]
fn a_closed_tenant_starts_a_canary_without_signals() {
    let now = start();
    assert_eq!(
        decide(&Rollout::Closed, &GateStep::Canary { supplier: supplier("acme") }, &GateFacts::default(), now),
        Ok("canary(acme)".to_owned())
    );
}

#[test]
fn a_day_green_with_three_sign_offs_widens_then_opens() {
    let facts = GateFacts { samples: green_for(24), signed_off_traces: 3, stage_since: None };
    let now = start() + Duration::hours(24);
    assert_eq!(decide(&canary(), &widen("globex"), &facts, now), Ok("widening(acme, globex)".to_owned()));
    let widening = Rollout::Widening { suppliers: [supplier("acme"), supplier("globex")].into() };
    assert_eq!(decide(&widening, &widen("initech"), &facts, now), Ok("widening(acme, globex, initech)".to_owned()));
    assert_eq!(decide(&widening, &GateStep::Open, &facts, now), Ok("open".to_owned()));
}

#[test]
fn any_red_signal_refuses() {
    let mut samples = green_for(24);
    samples.last_mut().expect("samples").red = vec![SignalName::QueueLag];
    let facts = GateFacts { samples, signed_off_traces: 3, stage_since: None };
    let refused = decide(&canary(), &widen("globex"), &facts, start() + Duration::hours(24));
    assert_eq!(
        refused,
        Err(vec![
            "signals are red now: queue_lag".to_owned(),
            "signals green since never, 24 hours are needed".to_owned()
        ])
    );
}

#[test]
fn a_red_sample_within_the_day_restarts_the_clock() {
    let mut samples = green_for(24);
    samples[600].red = vec![SignalName::StaleItems];
    let since = green_since(&samples, start() + Duration::hours(24), Duration::minutes(5));
    assert_eq!(since, Some(samples[601].at));
    let facts = GateFacts { samples, signed_off_traces: 3, stage_since: None };
    let refused = decide(&canary(), &GateStep::Open, &facts, start() + Duration::hours(24));
    assert_eq!(refused, Err(vec!["signals green since 2026-06-01T19:01:00+00:00, 24 hours are needed".to_owned()]));
}

#[test]
fn fewer_than_three_sign_offs_refuses() {
    let facts = GateFacts { samples: green_for(24), signed_off_traces: 2, stage_since: None };
    let refused = decide(&canary(), &widen("globex"), &facts, start() + Duration::hours(24));
    assert_eq!(refused, Err(vec!["2 signed-off traces, 3 are needed".to_owned()]));
}

#[test]
fn a_gap_in_the_samples_is_not_green() {
    let mut samples = green_for(24);
    // Nobody sampled for ten minutes around noon.
    samples.retain(|sample| {
        sample.at < start() + Duration::hours(3) || sample.at > start() + Duration::hours(3) + Duration::minutes(10)
    });
    let facts = GateFacts { samples, signed_off_traces: 3, stage_since: None };
    assert!(decide(&canary(), &GateStep::Open, &facts, start() + Duration::hours(24)).is_err());
    // And samples that stopped coming are not green now.
    let stopped = GateFacts { samples: green_for(24), signed_off_traces: 3, stage_since: None };
    assert!(decide(&canary(), &GateStep::Open, &stopped, start() + Duration::hours(25)).is_err());
}

#[test]
fn rollback_is_always_allowed_and_only_steps_forward_otherwise() {
    let nothing = GateFacts::default();
    // From closed too: its events may apply all the same (never gated, or switched on by hand).
    let widening = Rollout::Widening { suppliers: [supplier("acme")].into() };
    for rollout in [Rollout::Closed, canary(), widening, Rollout::Open] {
        assert_eq!(decide(&rollout, &GateStep::Rollback, &nothing, start()), Ok("closed".to_owned()));
    }
    assert_eq!(decide(&Rollout::Open, &widen("x"), &nothing, start()), Err(vec!["cannot widen from open".to_owned()]));
    assert_eq!(
        decide(&canary(), &GateStep::Canary { supplier: supplier("x") }, &nothing, start()),
        Err(vec!["cannot canary from canary".to_owned()])
    );
    let facts = GateFacts { samples: green_for(24), signed_off_traces: 3, stage_since: None };
    assert_eq!(
        decide(&canary(), &widen("acme"), &facts, start() + Duration::hours(24)),
        Err(vec!["supplier acme is already applied".to_owned()])
    );
}

#[test]
fn the_rollout_decides_which_suppliers_apply() {
    let widening = Rollout::Widening { suppliers: [supplier("acme"), supplier("globex")].into() };
    assert!(!Rollout::Closed.applies(&supplier("acme")));
    assert!(canary().applies(&supplier("acme")) && !canary().applies(&supplier("globex")));
    assert!(widening.applies(&supplier("globex")) && !widening.applies(&supplier("initech")));
    assert!(Rollout::Open.applies(&supplier("initech")));
}

#[test]
fn a_stage_younger_than_a_day_neither_widens_nor_opens_however_green_before_it() {
    // A day of green samples while the tenant was closed (nothing of it applied), then a
    // canary started ten minutes ago, with three traces signed off.
    let now = start() + Duration::hours(24);
    let changed = now - Duration::minutes(10);
    let facts = GateFacts { samples: green_for(24), signed_off_traces: 3, stage_since: Some(changed) };
    let refusal = "the rollout reached this stage at 2026-06-02T08:50:00+00:00, it must run 24 hours first".to_owned();
    assert_eq!(decide(&canary(), &widen("globex"), &facts, now), Err(vec![refusal.clone()]));
    assert_eq!(decide(&canary(), &GateStep::Open, &facts, now), Err(vec![refusal]));
    // More than a day after the change, green all along: allowed.
    let later = GateFacts { samples: green_for(48), ..facts };
    assert_eq!(
        decide(&canary(), &widen("globex"), &later, start() + Duration::hours(48)),
        Ok("widening(acme, globex)".to_owned())
    );
    // Rollback is never held back by it.
    assert_eq!(decide(&canary(), &GateStep::Rollback, &later, now), Ok("closed".to_owned()));
}

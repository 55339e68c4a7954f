//! The store contract suite: written once, run unchanged against every implementation.
//!
//! A store's integration test binary invokes [`store_contract_tests!`] with an async
//! factory `fn(StoreConfig) -> (Arc<dyn CatalogStore>, Guard)`; every case gets a fresh store.
//! The expected state always comes from `catalog-core`'s `ReferenceCatalog`, never from
//! hand-written numbers, so a store that re-decides anything differently fails here.
//!
//! The cases live in one file per store role. [`store_contract_cases!`] lists them once; that
//! list generates both [`Case`] (whose `run` calls each case, so a case function missing from
//! the list is dead code and fails the build) and the tests a store's binary gets.

mod admin;
mod batches;
mod channels;
mod claims;
mod collation;
mod dead_letters;
mod feeds;
mod fence;
mod fixtures;
mod flags;
mod gate_sample;
mod outbox;
mod reads;
mod reconcile;
mod retention;
mod signals;
mod tracer;

pub use fence::copies_of_a_batch_apply_once;
pub use fixtures::{
    an_unreadable_outbox_row_is_left_out, base, batch, concurrent_callers_are_exact, concurrent_creators_are_exact,
    event_id, incoming, offer, published, queue_two_items, raw_incoming, rollout_change, Fresh, MAKE_A_1_UNREADABLE,
    SOURCE,
};

use crate::StoreConfig;

/// The one list of contract cases, by role: a store's tests (`@tests`) and [`Case`]
/// (`@define`) are both generated from it.
#[macro_export]
#[doc(hidden)]
macro_rules! store_contract_cases {
    (@tests $factory:path; $($role:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::contract::Case::$case.run($factory).await;
            }
        )*
    };
    (@define; $($role:ident :: $case:ident),* $(,)?) => {
        /// One contract case; `Case::ALL` holds every one.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Case {
            $($case),*
        }

        impl Case {
            /// Every case of the suite, in the order of the list.
            pub const ALL: &'static [Case] = &[$(Case::$case),*];

            /// Runs the case on a fresh store from `factory`.
            pub async fn run<G, F>(self, factory: impl FnOnce(StoreConfig) -> F)
            where
                F: std::future::Future<Output = Fresh<G>>,
            {
                match self {
                    $(Case::$case => $role::$case(factory).await),*
                }
            }
        }
    };
    (@$mode:ident $($prefix:tt)*) => {
        $crate::store_contract_cases!(@$mode $($prefix)*;
            batches::applies_a_batch_like_the_reference,
            batches::random_batches_match_the_reference,
            batches::reapplying_a_committed_batch_changes_nothing,
            batches::redelivery_with_a_different_payload_is_flagged,
            batches::rejected_messages_keep_their_bytes_and_do_not_claim_the_id,
            batches::a_rejected_message_keeps_a_prefix_of_its_bytes_and_its_length,
            batches::checkpoints_never_move_backwards,
            batches::a_checkpoint_moves_back_only_when_rewound_from_where_it_stands,
            batches::concurrent_batches_on_overlapping_keys_are_exact,
            batches::concurrent_first_writes_of_new_offers_are_exact,
            batches::a_preview_decides_like_apply_and_leaves_nothing,
            batches::an_offer_of_adjustments_only_is_folded_and_stored_like_the_reference,
            fence::overlapping_deliveries_of_a_partition_apply_each_message_once,
            fence::copies_of_a_batch_applied_at_once_apply_it_once,
            fence::a_batch_of_another_log_neither_is_fenced_nor_moves_the_checkpoint,
            flags::held_events_are_decided_afresh_once_sync_is_on,
            flags::a_held_event_held_again_is_applied_once_its_supplier_is_on,
            flags::a_switch_on_decided_before_a_rollback_switches_nothing,
            flags::a_switch_on_after_a_switch_off_starts_the_stage_s_day_again,
            flags::a_step_decided_before_its_stage_restarted_changes_nothing,
            flags::a_step_decided_before_the_kill_switch_changes_nothing,
            flags::first_sight_uses_the_configured_default_flag,
            flags::a_held_event_redelivered_with_another_payload_is_decided_as_journaled,
            flags::a_held_event_decided_after_a_copy_naming_another_offer_is_journaled_as_decided,
            reads::item_trace_explains_the_winner,
            reconcile::reconcile_pages_follow_item_id_order_with_accepted_versions,
            reconcile::a_version_is_pending_while_queued_or_dead_lettered_open,
            reconcile::a_drift_correction_is_a_new_version_queued_and_journaled,
            reads::journal_window_filters_by_time_and_supplier,
            reads::journal_window_pages_resume_after_their_cursor,
            reads::sync_status_counts_outcomes,
            outbox::outbox_holds_one_row_per_item_and_channel_at_its_newest_version,
            outbox::outbox_claims_the_newest_version_and_coalesces_older_ones,
            outbox::a_version_queued_while_one_is_out_goes_once_that_one_is_recorded,
            outbox::a_retried_publish_is_due_again_and_counts_its_attempts,
            outbox::a_record_after_its_lease_leaves_another_claim_s_row_alone,
            outbox::a_throttled_publish_is_due_again_and_spends_no_attempt,
            claims::a_released_claim_is_due_at_once_and_only_the_items_named,
            claims::a_released_claim_keeps_its_place_in_line,
            claims::an_extended_claim_stays_leased_and_a_lapsed_one_is_not_taken_back,
            claims::a_late_give_back_or_renewal_leaves_another_claim_s_row_alone,
            outbox::a_newer_version_starts_with_no_failures_and_keeps_the_backoff,
            outbox::a_dead_lettered_publish_leaves_the_outbox_with_its_reason,
            outbox::a_round_of_records_has_each_outcome_s_effect,
            outbox::concurrent_claims_never_hand_out_the_same_item,
            outbox::a_burst_settles_into_one_claim_and_a_hot_item_is_not_starved,
            outbox::republish_queues_the_current_version_again,
            channels::attempts_keep_what_they_sent_and_a_skip_is_done_with_its_version,
            channels::a_channel_routed_to_some_tenants_counts_only_their_items_stale,
            channels::a_sku_items_of_several_served_tenants_hold_is_found,
            channels::a_channel_s_version_past_the_signed_range_is_held_at_the_largest,
            dead_letters::an_accepted_later_version_resolves_the_open_dead_letter,
            dead_letters::an_older_version_accepted_late_resolves_nothing,
            dead_letters::auto_heal_requeues_the_current_version_and_its_publish_resolves_the_letter,
            dead_letters::auto_heal_quarantines_a_letter_that_keeps_failing,
            dead_letters::a_dead_letter_counts_every_failed_attempt_from_the_first,
            reads::events_without_a_sequence_re_derive_from_the_journal,
            admin::tokens_are_found_by_hash_until_revoked,
            admin::the_audit_log_pages_newest_first,
            admin::journal_rows_are_found_by_event_id_and_trace_id,
            admin::an_operator_retries_and_resolves_dead_letters,
            admin::a_trace_page_is_a_slice_of_the_whole_trace,
            admin::a_trace_page_shows_the_newest_publish_attempts_and_counts_them_all,
            admin::a_trace_page_of_only_held_and_rejected_events_has_no_item,
            admin::rejected_messages_are_listed_newest_first,
            signals::signal_facts_count_stale_items_failed_attempts_and_untraced_items,
            collation::ids_and_skus_are_ordered_by_their_bytes,
            tracer::the_tracer_gets_changed_items_first_and_sweeps_by_id,
            signals::a_journal_tail_is_the_newest_rows_with_older_winners_found_by_id,
            signals::signal_samples_are_kept_per_tenant_and_overall,
            signals::gate_samples_merge_every_worker_s_samples_of_a_span,
            signals::merged_gate_spans_show_no_gap_the_samples_do_not_have,
            signals::a_rollout_drives_the_sync_flags_and_holds_suppliers_not_listed,
            signals::sign_offs_and_applied_items_are_found_since_a_time,
            gate_sample::a_gate_sample_walks_past_a_hot_item_in_windows,
            feeds::feed_settings_are_bootstrapped_and_state_is_kept,
            feeds::a_manual_run_request_waits_until_the_worker_clears_it,
            feeds::a_feeds_journal_is_counted_per_day_of_reception,
            feeds::a_pull_failure_opens_one_dead_letter_until_a_run_completes,
            feeds::a_supplier_s_hold_is_kept_with_the_feed,
            feeds::a_full_refresh_journals_its_drift_and_completes_the_initial_sync,
            retention::retention_archives_old_days_and_an_old_redelivery_stays_a_duplicate,
            retention::a_day_is_archived_whole_by_the_first_pass_past_its_end,
            retention::a_clamped_event_s_claim_is_kept_from_its_own_time,
            retention::a_pass_with_the_largest_chunk_ends_and_drops_the_old_day,
            retention::a_pass_told_to_stop_drops_nothing_half_archived_and_the_next_goes_on,
            retention::publish_attempts_and_drifts_past_the_retention_are_dropped_and_publishing_goes_on,
            retention::resolved_dead_letters_past_the_retention_are_deleted_and_open_ones_stay,
            retention::old_feed_windows_that_overlap_or_touch_are_merged_and_their_coverage_kept,
        );
    };
}

/// Generates one `#[tokio::test]` per contract case, each on a fresh store from `$factory`.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:path) => {
        $crate::store_contract_cases!(@tests $factory);
    };
}

store_contract_cases!(@define);

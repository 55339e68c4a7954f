//! Reading the plans PostgreSQL picks for a statement, custom and generic, for the plan
//! checks (`journal_plans`, `outbox_plans`).

use sqlx::PgConnection;

use crate::recording::Query;

/// The plan PostgreSQL picks for a fresh statement: `EXPLAIN` of the statement with its
/// parameters, planned for their values.
pub(crate) async fn custom_plan(connection: &mut PgConnection, explain: Query<'_>) -> String {
    plan_nodes(explain.fetch_all(&mut *connection).await.expect("explain"))
}

/// The whole of the plan `explain` gives, its nodes' condition lines too.
pub(crate) async fn custom_plan_with_conditions(connection: &mut PgConnection, explain: Query<'_>) -> String {
    let lines = explain.fetch_all(&mut *connection).await.expect("explain");
    lines.iter().map(|row| sqlx::Row::get::<String, _>(row, 0)).collect::<Vec<_>>().join("\n")
}

/// The plan a long-lived connection's prepared statement ends up with, whatever its
/// parameters: the statement prepared by name and run through `EXECUTE` with
/// `plan_cache_mode = force_generic_plan`, the types of its first parameters `declared`
/// where PostgreSQL cannot infer them, and `arguments` as SQL literals (`EXPLAIN` of a
/// statement given its parameters always plans for their values). A generic plan does not
/// look at them, but the partitions it reads are pruned by them when it runs: an argument
/// that picks partitions must be a real value, others may be `NULL`.
pub(crate) async fn generic_plan(
    connection: &mut PgConnection,
    statement: &str,
    declared: &[&str],
    arguments: &[&str],
) -> String {
    let types = if declared.is_empty() { String::new() } else { format!("({})", declared.join(", ")) };
    let prepare = format!("PREPARE checked{types} AS {statement}");
    for setup in ["SET plan_cache_mode = force_generic_plan", &prepare] {
        sqlx::query(setup).execute(&mut *connection).await.expect("prepare the statement");
    }
    let explain = format!("EXPLAIN EXECUTE checked({})", arguments.join(", "));
    let lines = sqlx::query(&explain).fetch_all(&mut *connection).await.expect("explain");
    for reset in ["DEALLOCATE checked", "RESET plan_cache_mode"] {
        sqlx::query(reset).execute(&mut *connection).await.expect("reset");
    }
    plan_nodes(lines)
}

/// The plan's nodes (each carries its cost), without their condition lines.
fn plan_nodes(lines: Vec<sqlx::postgres::PgRow>) -> String {
    lines
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, 0))
        .filter(|line| line.contains("(cost="))
        .collect::<Vec<_>>()
        .join("\n")
}

//! Reads supplier events as NDJSON on standard input, decides them by the contract's rules,
//! and prints every rejection with its reason, then the resulting items, as JSON lines.
//!
//! `cargo run -p catalog-core --example decide < examples/supplier-events.ndjson`
//!
//! A team checking its own system copies this: feed the same events to both and compare
//! the items. Lines are decided in batches of `BATCH`, as a worker would; the rules make the
//! items the same for any batching or order of the lines.

use std::io::{BufRead, Write};

use catalog_core::{decode, AllSyncOn, ClockPolicy, Delivery, Outcome, ReferenceCatalog};

const BATCH: usize = 500;

#[allow(clippy::print_stderr)]
fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut catalog = ReferenceCatalog::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut line_numbers = Vec::with_capacity(BATCH);
    let mut counts = std::collections::BTreeMap::<&'static str, u64>::new();
    for (index, line) in stdin.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // This example reads the clock; catalog-core never does: the caller passes time in.
        batch.push(Delivery { decoded: decode(line.as_bytes()), received_at: std::time::SystemTime::now().into() });
        line_numbers.push(index + 1);
        if batch.len() == BATCH {
            decide(&mut catalog, &mut batch, &mut line_numbers, &mut counts, &mut stdout)?;
        }
    }
    decide(&mut catalog, &mut batch, &mut line_numbers, &mut counts, &mut stdout)?;
    for item in catalog.catalog_items() {
        let line = serde_json::json!({ "item": item });
        writeln!(stdout, "{line}")?;
    }
    eprintln!("{}", serde_json::json!({ "outcomes": counts }));
    Ok(())
}

/// Decides one batch, prints its rejections, and counts every outcome.
fn decide(
    catalog: &mut ReferenceCatalog,
    batch: &mut Vec<Delivery>,
    line_numbers: &mut Vec<usize>,
    counts: &mut std::collections::BTreeMap<&'static str, u64>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let plan = catalog.apply(batch, &AllSyncOn, ClockPolicy::default());
    for ((delivery, decision), line_number) in batch.iter().zip(&plan.decisions).zip(line_numbers.iter()) {
        *counts.entry(decision.outcome.as_str()).or_default() += 1;
        if let (Outcome::Rejected(reason), Err(rejection)) = (decision.outcome, &delivery.decoded) {
            let line =
                serde_json::json!({ "line": line_number, "rejected": reason.as_str(), "detail": rejection.detail });
            writeln!(out, "{line}")?;
        }
    }
    batch.clear();
    line_numbers.clear();
    Ok(())
}

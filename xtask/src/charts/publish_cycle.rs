//! `docs/bench-data/publish-cycle.json` (`cargo bench -p catalog-postgres --bench
//! publish_cycle`): PostgreSQL's CPU time per published version and per applied event, for
//! each run and its round size.

use serde::Deserialize;

use super::svg::{thousands, Area, Svg};
use super::{grouped_bars, Check, HEIGHT, WIDTH};

#[derive(Debug, Deserialize)]
pub(super) struct PublishCycle {
    runs: Vec<CycleRun>,
}

#[derive(Debug, Deserialize)]
struct CycleRun {
    round_limit: f64,
    rounds: f64,
    published: f64,
    publish_cpu_us_per_version: f64,
    apply_cpu_us_per_event: f64,
}

impl Check for PublishCycle {
    fn checks(&self) -> Vec<(bool, &'static str)> {
        vec![
            (!self.runs.is_empty(), "`runs` is empty"),
            (
                self.runs.iter().all(|run| run.rounds >= 1.0 && run.published >= run.rounds),
                "a run has no rounds, or more rounds than versions",
            ),
        ]
    }
}

pub(super) fn publish_cycle(data: &PublishCycle) -> String {
    const NAMES: [&str; 2] = ["per published version (claim + record)", "per applied event"];
    let mut svg = Svg::new(WIDTH, HEIGHT, "PostgreSQL CPU time, five channels, batches of 1,000 events");
    let area = Area { left: 72.0, top: 70.0, right: WIDTH - 28.0, bottom: HEIGHT - 44.0 };
    svg.legend(area.right, 50.0, &NAMES);
    let max = data
        .runs
        .iter()
        .flat_map(|run| [run.publish_cpu_us_per_version, run.apply_cpu_us_per_event])
        .fold(0.0, f64::max);
    let top = svg.y_axis(area, max * 1.15, 5.0);
    let groups: Vec<(String, Vec<f64>)> = data
        .runs
        .iter()
        .map(|run| {
            let average = thousands((run.published / run.rounds).round());
            let name = format!("limit {}, {average} a round", thousands(run.round_limit));
            (name, vec![run.publish_cpu_us_per_version, run.apply_cpu_us_per_event])
        })
        .collect();
    grouped_bars(&mut svg, area, top, &groups);
    svg.axes(area);
    svg.y_title(area, "µs of PostgreSQL CPU");
    svg.finish()
}

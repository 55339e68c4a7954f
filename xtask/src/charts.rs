//! `cargo xtask charts`: SVG charts of the benchmark results in `docs/bench-data/*.json`,
//! written to `docs/charts/`. The SVG is written by hand and depends on nothing but its input,
//! so the same results give byte-identical files. A missing input skips its charts; a
//! malformed one is an error naming the file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use publish_cycle::{publish_cycle, PublishCycle};
use svg::{amount, compact, line_panel, n, text_width, thousands, Area, Svg, COLOURS, GRID, HALO, INK, MUTED};

mod publish_cycle;
mod svg;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;

/// `docs/bench-data/soak.json`: one point per million events applied.
#[derive(Debug, Deserialize)]
struct Soak {
    title: String,
    points: Vec<SoakPoint>,
}

#[derive(Debug, Deserialize)]
struct SoakPoint {
    million: f64,
    events_per_second: f64,
    batch_apply_p99_ms: f64,
    rss_mib: f64,
    journal_mib: f64,
    claims_mib: f64,
    indexes_mib: f64,
}

/// `docs/bench-data/latency.json`: event → storefront accepted, as a histogram and by stage.
#[derive(Debug, Deserialize)]
struct Latency {
    title: String,
    buckets: Vec<Bucket>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    stages: Vec<Stage>,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    upper_ms: f64,
    count: u64,
}

#[derive(Debug, Deserialize)]
struct Stage {
    stage: String,
    p50_ms: f64,
    /// Drawn when present.
    p99_ms: Option<f64>,
    share: f64,
}

/// `docs/bench-data/baselines.json`: events/s of the worker and its baselines per round.
#[derive(Debug, Deserialize)]
struct Baselines {
    title: String,
    rounds: Vec<Round>,
}

#[derive(Debug, Deserialize)]
struct Round {
    round: u32,
    worker: f64,
    sql_baseline: f64,
    naive: f64,
}

/// `docs/bench-data/fanout.json`: event → accepted on each channel of the fan-out benchmark.
#[derive(Debug, Deserialize)]
struct Fanout {
    channels: Vec<FanoutChannel>,
    events_per_second: f64,
    items: f64,
    /// Amazon and Walmart took feeds in this run.
    #[serde(default)]
    feeds: bool,
}

#[derive(Debug, Deserialize)]
struct FanoutChannel {
    channel: String,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Issue #18's target for every channel not throttled.
const FANOUT_TARGET_P99_MS: f64 = 500.0;

/// What parses but cannot be drawn: each check with the problem it finds.
trait Check {
    fn checks(&self) -> Vec<(bool, &'static str)>;
}

impl Check for Soak {
    fn checks(&self) -> Vec<(bool, &'static str)> {
        let increasing = self.points.windows(2).all(|pair| pair[0].million < pair[1].million);
        vec![
            (!self.points.is_empty(), "`points` is empty"),
            (increasing, "`million` must increase from point to point"),
        ]
    }
}

impl Check for Latency {
    fn checks(&self) -> Vec<(bool, &'static str)> {
        let (buckets, stages) = (&self.buckets, &self.stages);
        let bounds = buckets.first().is_some_and(|first| first.upper_ms > 0.0)
            && buckets.windows(2).all(|pair| pair[0].upper_ms <= pair[1].upper_ms);
        vec![
            (!buckets.is_empty() && !stages.is_empty(), "`buckets` and `stages` must not be empty"),
            (bounds, "`upper_ms` must be above 0 and never decrease from bucket to bucket"),
            (self.p50_ms <= self.p99_ms && self.p99_ms <= self.max_ms, "`p50_ms` ≤ `p99_ms` ≤ `max_ms` does not hold"),
            (stages.iter().all(|stage| stage.share <= 1.0), "a stage's `share` is above 1"),
        ]
    }
}

impl Check for Fanout {
    fn checks(&self) -> Vec<(bool, &'static str)> {
        let ordered = self.channels.iter().all(|c| c.p50_ms <= c.p99_ms && c.p99_ms <= c.max_ms);
        vec![
            (!self.channels.is_empty(), "`channels` is empty"),
            (ordered, "`p50_ms` ≤ `p99_ms` ≤ `max_ms` does not hold for a channel"),
        ]
    }
}

impl Check for Baselines {
    fn checks(&self) -> Vec<(bool, &'static str)> {
        vec![(!self.rounds.is_empty(), "`rounds` is empty")]
    }
}

/// Whether any number in `value` is below 0: none in these files may be.
fn negative(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(number) => number.as_f64().is_some_and(|number| number < 0.0),
        serde_json::Value::Array(values) => values.iter().any(negative),
        serde_json::Value::Object(fields) => fields.values().any(negative),
        _ => false,
    }
}

/// Reads `docs/bench-data/*.json` under `root` and writes the charts of those present to
/// `docs/charts/`; names on stderr the charts it skips and the files it writes, and returns
/// those. Every input is read before anything is written.
pub(crate) fn draw_all(root: &Path) -> Result<Vec<PathBuf>> {
    let input = root.join("docs").join("bench-data");
    let mut charts = Vec::new();
    if let Some(soak) = load::<Soak>(&input.join("soak.json"), "soak-throughput.svg, soak-resources.svg")? {
        charts.push(("soak-throughput.svg", soak_throughput(&soak)));
        charts.push(("soak-resources.svg", soak_resources(&soak)));
    }
    if let Some(latency) = load::<Latency>(&input.join("latency.json"), "latency-histogram.svg, latency-stages.svg")? {
        charts.push(("latency-histogram.svg", latency_histogram(&latency)));
        charts.push(("latency-stages.svg", latency_stages(&latency)));
    }
    if let Some(data) = load::<Baselines>(&input.join("baselines.json"), "baselines.svg")? {
        charts.push(("baselines.svg", baselines(&data)));
    }
    if let Some(data) = load::<Fanout>(&input.join("fanout.json"), "fanout.svg")? {
        charts.push(("fanout.svg", fanout(&data)));
    }
    if let Some(data) = load::<Fanout>(&input.join("fanout-feeds.json"), "fanout-feeds.svg")? {
        charts.push(("fanout-feeds.svg", fanout(&data)));
    }
    if let Some(data) = load::<PublishCycle>(&input.join("publish-cycle.json"), "publish-cycle.svg")? {
        charts.push(("publish-cycle.svg", publish_cycle(&data)));
    }
    let output = root.join("docs").join("charts");
    let mut written = Vec::new();
    for (name, svg) in charts {
        std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;
        let path = output.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask charts: wrote {}", path.display());
        written.push(path);
    }
    Ok(written)
}

fn load<T: DeserializeOwned + Check>(path: &Path, charts: &str) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("xtask charts: no {}, so {charts} not drawn", path.display());
            Ok(None)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn parse<T: DeserializeOwned + Check>(path: &Path, text: &str) -> Result<T> {
    let data: T = serde_json::from_str(text).with_context(|| format!("{} is malformed", path.display()))?;
    let failed = data.checks().into_iter().find(|(holds, _)| !holds).map(|(_, problem)| problem);
    if let Some(problem) = failed.or(negative(&serde_json::from_str(text)?).then_some("a value is negative")) {
        bail!("{} is malformed: {problem}", path.display());
    }
    Ok(data)
}

fn soak_throughput(data: &Soak) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT, &data.title);
    svg.text(WIDTH / 2.0, 46.0, "middle", MUTED, "throughput over each million events applied");
    let area = Area { left: 72.0, top: 66.0, right: WIDTH - 28.0, bottom: HEIGHT - 60.0 };
    let xs: Vec<f64> = data.points.iter().map(|p| p.million).collect();
    let throughput = data.points.iter().map(|p| p.events_per_second).collect();
    line_panel(&mut svg, area, &xs, &[("throughput", throughput)], 5.0);
    svg.y_title(area, "events/s");
    svg.x_title(area, "millions of events applied");
    svg.finish()
}

fn soak_resources(data: &Soak) -> String {
    const PANEL: f64 = 86.0;
    const STEP: f64 = PANEL + 52.0;
    let mut svg = Svg::new(WIDTH, 88.0 + 3.0 * STEP, &data.title);
    svg.text(WIDTH / 2.0, 46.0, "middle", MUTED, "memory, batch latency and table sizes as the events are applied");
    let xs: Vec<f64> = data.points.iter().map(|p| p.million).collect();
    let of = |value: fn(&SoakPoint) -> f64| data.points.iter().map(value).collect::<Vec<f64>>();
    let panels = [
        ("peak RSS (MiB)", vec![("peak RSS", of(|p| p.rss_mib))]),
        ("batch apply p99 (ms)", vec![("batch apply p99", of(|p| p.batch_apply_p99_ms))]),
        (
            "table sizes (MiB)",
            vec![
                ("journal", of(|p| p.journal_mib)),
                ("claims", of(|p| p.claims_mib)),
                ("indexes", of(|p| p.indexes_mib)),
            ],
        ),
    ];
    let mut area = Area { left: 72.0, top: 0.0, right: WIDTH - 28.0, bottom: 0.0 };
    for (index, (heading, series)) in panels.iter().enumerate() {
        area.top = 82.0 + index as f64 * STEP;
        area.bottom = area.top + PANEL;
        svg.text(area.left, area.top - 12.0, "start", "font-weight=\"bold\"", heading);
        line_panel(&mut svg, area, &xs, series, 3.0);
    }
    svg.x_title(area, "millions of events applied");
    svg.finish()
}

fn latency_histogram(data: &Latency) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT, &data.title);
    let total: u64 = data.buckets.iter().map(|b| b.count).sum();
    let (p50, p99, max) = (amount(data.p50_ms), amount(data.p99_ms), amount(data.max_ms));
    let subtitle = format!("{} events: p50 {p50} ms, p99 {p99} ms, max {max} ms", thousands(total as f64));
    svg.text(WIDTH / 2.0, 46.0, "middle", MUTED, &subtitle);
    // An empty bucket with the bound of the one before (an open last bucket past the maximum) has no room.
    let buckets: Vec<&Bucket> = (data.buckets.iter().enumerate())
        .filter(|(index, b)| *index == 0 || b.count > 0 || b.upper_ms > data.buckets[index - 1].upper_ms)
        .map(|(_, bucket)| bucket)
        .collect();
    let area = Area { left: 72.0, top: 84.0, right: WIDTH - 28.0, bottom: HEIGHT - 60.0 };
    let top = svg.y_axis(area, buckets.iter().map(|b| b.count).max().unwrap_or(0).max(5) as f64, 5.0);
    let slot = area.width() / buckets.len() as f64;
    for (index, bucket) in buckets.iter().enumerate() {
        let y = area.y(bucket.count as f64, top);
        svg.rect(area.left + index as f64 * slot + 1.0, y, slot - 2.0, area.bottom - y, COLOURS[0]);
    }
    // Labels on the bucket bounds; every n-th one when they would crowd.
    let labels: Vec<String> = ["0".to_owned()].into_iter().chain(buckets.iter().map(|b| amount(b.upper_ms))).collect();
    let widest = labels.iter().map(|label| text_width(label, 12.0)).fold(0.0, f64::max);
    let every = ((widest + 8.0) / slot).ceil().max(1.0) as usize;
    for (index, label) in labels.iter().enumerate() {
        let x = area.left + index as f64 * slot;
        svg.line((x, area.bottom), (x, area.bottom + 4.0), INK);
        if index % every == 0 {
            svg.text(x, area.bottom + 18.0, "middle", "", label);
        }
    }
    // p50 left of its line, p99 right of its own; a row higher when the two labels would meet.
    let mut taken = 0.0;
    for (value, name, colour, before) in [(data.p50_ms, "p50", "#222", true), (data.p99_ms, "p99", "#d55e00", false)] {
        let x = area.left + bucket_position(&buckets, value) * slot;
        let label = format!("{name} {} ms", amount(value));
        let width = text_width(&label, 12.0);
        let start = if before { (x - 5.0 - width).max(4.0) } else { (x + 5.0).min(WIDTH - 4.0 - width) };
        let y = if start < taken { area.top - 20.0 } else { area.top - 4.0 };
        taken = start + width + 8.0;
        let style = format!("stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"5 3\"");
        svg.line((x, area.bottom), (x, y - 8.0), &style);
        let (text_x, anchor) = if before { (start + width, "end") } else { (start, "start") };
        svg.text(text_x, y, anchor, &format!("fill=\"{colour}\" {HALO} font-weight=\"bold\""), &label);
    }
    svg.axes(area);
    svg.y_title(area, "events");
    svg.x_title(area, "event → storefront accepted, ms (bucket bounds; widths not to scale)");
    svg.finish()
}

/// Where `value` falls in bucket slots: 1.5 is halfway through the second bucket.
fn bucket_position(buckets: &[&Bucket], value: f64) -> f64 {
    let mut lower = 0.0;
    for (index, bucket) in buckets.iter().enumerate() {
        if value <= bucket.upper_ms && bucket.upper_ms > lower {
            return index as f64 + ((value - lower) / (bucket.upper_ms - lower)).max(0.0);
        }
        lower = bucket.upper_ms;
    }
    buckets.len() as f64
}

fn latency_stages(data: &Latency) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT, &data.title);
    svg.text(WIDTH / 2.0, 46.0, "middle", MUTED, "each stage's share of the latency, with its own percentiles");
    let area = Area { left: 28.0, top: 66.0, right: WIDTH - 28.0, bottom: HEIGHT - 60.0 };
    for percent in (0..=100).step_by(20) {
        let x = area.left + f64::from(percent) / 100.0 * area.width();
        svg.line((x, area.top), (x, area.bottom), GRID);
        svg.text(x, area.bottom + 18.0, "middle", "", &format!("{percent}%"));
    }
    let row = area.height() / data.stages.len() as f64;
    let bar = (row - 24.0).clamp(8.0, 24.0);
    for (index, stage) in data.stages.iter().enumerate() {
        // The stage's name above its bar; the share after the bar, or above its end when it does not fit.
        let y = area.top + index as f64 * row + (row - bar - 16.0) / 2.0 + 16.0;
        svg.text(area.left + 6.0, y - 5.0, "start", "", &stage.stage);
        let end = area.left + stage.share * area.width();
        svg.rect(area.left, y, end - area.left, bar, COLOURS[index % COLOURS.len()]);
        let percentiles = match stage.p99_ms {
            Some(p99) => format!("p50 {} ms, p99 {} ms", amount(stage.p50_ms), amount(p99)),
            None => format!("p50 {} ms", amount(stage.p50_ms)),
        };
        let label = format!("{}% ({percentiles})", n(stage.share * 100.0));
        if end + 6.0 + text_width(&label, 12.0) <= WIDTH - 4.0 {
            svg.text(end + 6.0, y + bar / 2.0 + 4.0, "start", "font-weight=\"bold\"", &label);
        } else {
            svg.text(end, y - 5.0, "end", "font-weight=\"bold\"", &label);
        }
    }
    svg.line((area.left, area.top), (area.left, area.bottom), INK);
    svg.x_title(area, "share of event → storefront accepted latency");
    svg.finish()
}

fn baselines(data: &Baselines) -> String {
    const NAMES: [&str; 3] = ["catalog-sync worker", "SQL-only baseline", "naive one transaction per event"];
    let mut svg = Svg::new(WIDTH, HEIGHT, &data.title);
    let area = Area { left: 72.0, top: 70.0, right: WIDTH - 28.0, bottom: HEIGHT - 44.0 };
    svg.legend(area.right, 50.0, &NAMES);
    let max = data.rounds.iter().flat_map(|r| [r.worker, r.sql_baseline, r.naive]).fold(0.0, f64::max);
    let top = svg.y_axis(area, max * 1.08, 5.0);
    let groups: Vec<(String, Vec<f64>)> = data
        .rounds
        .iter()
        .map(|round| (format!("round {}", round.round), vec![round.worker, round.sql_baseline, round.naive]))
        .collect();
    grouped_bars(&mut svg, area, top, &groups);
    svg.axes(area);
    svg.y_title(area, "events/s");
    svg.finish()
}

/// A bar per value side by side in each group, in the series' colours, each labelled with
/// its value (shortened when the full number is wider than its bar), the group's name below.
fn grouped_bars(svg: &mut Svg, area: Area, top: f64, groups: &[(String, Vec<f64>)]) {
    let n_series = groups.iter().map(|(_, values)| values.len()).max().unwrap_or(1).max(1) as f64;
    let group = area.width() / groups.len().max(1) as f64;
    let bar = group * 0.8 / n_series;
    for (index, (name, values)) in groups.iter().enumerate() {
        let start = area.left + index as f64 * group + group * 0.1;
        for (series, value) in values.iter().copied().enumerate() {
            let (x, y) = (start + series as f64 * bar, area.y(value, top));
            svg.rect(x + 1.0, y, bar - 2.0, area.bottom - y, COLOURS[series % COLOURS.len()]);
            let full = thousands(value);
            let label = if text_width(&full, 11.0) <= bar + 2.0 { full } else { compact(value) };
            svg.text(x + bar / 2.0, y - 4.0, "middle", "font-size=\"11\"", &label);
        }
        svg.text(start + n_series / 2.0 * bar, area.bottom + 18.0, "middle", "", name);
    }
}

fn fanout(data: &Fanout) -> String {
    const NAMES: [&str; 3] = ["p50", "p99", "max"];
    let title = format!(
        "event → accepted per channel, {} events/s over {} items{}",
        thousands(data.events_per_second),
        thousands(data.items),
        if data.feeds { ", Amazon and Walmart in feeds" } else { "" }
    );
    let mut svg = Svg::new(WIDTH, HEIGHT, &title);
    let area = Area { left: 72.0, top: 70.0, right: WIDTH - 28.0, bottom: HEIGHT - 44.0 };
    svg.legend(area.right, 50.0, &NAMES);
    let max = data.channels.iter().map(|c| c.max_ms).fold(FANOUT_TARGET_P99_MS, f64::max);
    let top = svg.y_axis(area, max * 1.08, 5.0);
    let groups: Vec<(String, Vec<f64>)> =
        data.channels.iter().map(|c| (c.channel.clone(), vec![c.p50_ms, c.p99_ms, c.max_ms])).collect();
    grouped_bars(&mut svg, area, top, &groups);
    let target = area.y(FANOUT_TARGET_P99_MS, top);
    // The target line, named beside the legend, where no bar's label can be.
    const TARGET: &str = "stroke=\"#d55e00\" stroke-dasharray=\"6 4\"";
    svg.line((area.left, target), (area.right, target), TARGET);
    svg.line((area.left, 46.0), (area.left + 24.0, 46.0), TARGET);
    let label = format!("target: p99 < {} ms", thousands(FANOUT_TARGET_P99_MS));
    svg.text(area.left + 30.0, 50.0, "start", "fill=\"#d55e00\"", &label);
    svg.axes(area);
    svg.y_title(area, "milliseconds");
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<T: DeserializeOwned + Check>(name: &str) -> T {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests-data").join(name);
        parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn charts_of_the_samples() {
        let soak: Soak = sample("soak.json");
        insta::assert_snapshot!("soak_throughput", soak_throughput(&soak));
        insta::assert_snapshot!("soak_resources", soak_resources(&soak));
        let latency: Latency = sample("latency.json");
        insta::assert_snapshot!("latency_histogram", latency_histogram(&latency));
        insta::assert_snapshot!("latency_stages", latency_stages(&latency));
        insta::assert_snapshot!("baselines", baselines(&sample("baselines.json")));
        insta::assert_snapshot!("fanout", fanout(&sample("fanout.json")));
        insta::assert_snapshot!("publish_cycle", publish_cycle(&sample("publish-cycle.json")));
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let error = |result: Result<()>| format!("{:#}", result.unwrap_err());
        let soak = |text| parse::<Soak>(Path::new("docs/bench-data/soak.json"), text).map(drop);
        let latency = |text| parse::<Latency>(Path::new("docs/bench-data/latency.json"), text).map(drop);
        let baselines = |text| parse::<Baselines>(Path::new("docs/bench-data/baselines.json"), text).map(drop);
        insta::assert_snapshot!(error(soak(r#"{"title": "t", "points": [{"million": 1}]}"#)), @"docs/bench-data/soak.json is malformed: missing field `events_per_second` at line 1 column 40");
        insta::assert_snapshot!(error(soak(r#"{"title": "t", "points": []}"#)), @"docs/bench-data/soak.json is malformed: `points` is empty");
        let buckets = r#""buckets": [{"upper_ms": 10, "count": 1}, {"upper_ms": 5, "count": 1}]"#;
        let stage = r#"{"stage": "s", "p50_ms": 1, "share": 1}"#;
        let text =
            format!(r#"{{"title": "t", {buckets}, "p50_ms": 1, "p99_ms": 2, "max_ms": 3, "stages": [{stage}]}}"#);
        insta::assert_snapshot!(error(latency(&text)), @"docs/bench-data/latency.json is malformed: `upper_ms` must be above 0 and never decrease from bucket to bucket");
        insta::assert_snapshot!(error(baselines("{\"title\": ")), @"docs/bench-data/baselines.json is malformed: EOF while parsing a value at line 1 column 10");
        let fanout = |text| parse::<Fanout>(Path::new("docs/bench-data/fanout.json"), text).map(drop);
        let channel = r#"{"channel": "ebay", "p50_ms": 300, "p99_ms": 200, "max_ms": 400}"#;
        let text = format!(r#"{{"channels": [{channel}], "events_per_second": 5000, "items": 1000}}"#);
        insta::assert_snapshot!(error(fanout(&text)), @"docs/bench-data/fanout.json is malformed: `p50_ms` ≤ `p99_ms` ≤ `max_ms` does not hold for a channel");
        let cycle = |text| parse::<PublishCycle>(Path::new("docs/bench-data/publish-cycle.json"), text).map(drop);
        let run = r#"{"round_limit": 32, "rounds": 0, "published": 10, "publish_cpu_us_per_version": 40, "apply_cpu_us_per_event": 30}"#;
        insta::assert_snapshot!(error(cycle(&format!(r#"{{"runs": [{run}]}}"#))), @"docs/bench-data/publish-cycle.json is malformed: a run has no rounds, or more rounds than versions");
    }

    #[test]
    fn draw_all_skips_missing_inputs_and_fails_on_malformed_ones() {
        let root = std::env::temp_dir().join(format!("xtask-charts-{}", std::process::id()));
        let input = root.join("docs").join("bench-data");
        std::fs::create_dir_all(&input).unwrap();
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests-data").join("baselines.json");
        std::fs::copy(sample, input.join("baselines.json")).unwrap();
        let written = draw_all(&root).unwrap();
        assert_eq!(written, [root.join("docs").join("charts").join("baselines.svg")]);
        let first = std::fs::read(&written[0]).unwrap();
        draw_all(&root).unwrap();
        assert_eq!(std::fs::read(&written[0]).unwrap(), first, "the same input gives the same bytes");
        std::fs::write(input.join("latency.json"), "{\"title\": 1}").unwrap();
        let error = format!("{:#}", draw_all(&root).unwrap_err());
        assert!(error.contains("latency.json is malformed"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

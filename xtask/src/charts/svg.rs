//! The hand-written SVG behind `cargo xtask charts`: a document with a white background and a
//! title, plotting areas, round ticks, legends, line panels, and numbers formatted the same way
//! on every run.

/// Okabe–Ito colours, which stay apart for colour-blind readers too.
pub(super) const COLOURS: [&str; 4] = ["#0072b2", "#e69f00", "#009e73", "#cc79a7"];
pub(super) const GRID: &str = "stroke=\"#e4e4e4\"";
pub(super) const MUTED: &str = "fill=\"#555\"";
pub(super) const INK: &str = "stroke=\"#222\"";
/// A white outline under text, so lines it crosses do not cross it out.
pub(super) const HALO: &str = "stroke=\"#fff\" stroke-width=\"4\" paint-order=\"stroke\"";

/// Lines over x (millions of events) with round axes from 0; a legend above the panel's
/// right end when there are several series.
pub(super) fn line_panel(svg: &mut Svg, area: Area, xs: &[f64], series: &[(&str, Vec<f64>)], wanted_ticks: f64) {
    let y_max = series.iter().flat_map(|(_, values)| values.iter().copied()).fold(0.0, f64::max);
    let top = svg.y_axis(area, y_max, wanted_ticks);
    let (x_step, x_ticks) = ticks(xs.iter().copied().fold(0.0, f64::max), 8.0);
    let x_top = x_ticks.last().copied().unwrap_or(1.0);
    let x = |value: f64| area.left + value / x_top * area.width();
    for tick in &x_ticks {
        svg.line((x(*tick), area.bottom), (x(*tick), area.bottom + 4.0), INK);
        svg.text(x(*tick), area.bottom + 18.0, "middle", "", &tick_label(*tick, x_step));
    }
    for (index, (_, values)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> =
            xs.iter().zip(values).map(|(px, py)| format!("{},{}", n(x(*px)), n(area.y(*py, top)))).collect();
        svg.push(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
            points.join(" ")
        ));
        // Dots on the points while there are few enough to tell apart.
        for (px, py) in xs.iter().zip(values).filter(|_| xs.len() <= 40) {
            let (cx, cy) = (n(x(*px)), n(area.y(*py, top)));
            svg.push(&format!("<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{colour}\"/>\n"));
        }
    }
    svg.axes(area);
    if series.len() > 1 {
        let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
        svg.legend(area.right, area.top - 12.0, &names);
    }
}

/// A plotting area in SVG coordinates.
#[derive(Debug, Clone, Copy)]
pub(super) struct Area {
    pub(super) left: f64,
    pub(super) top: f64,
    pub(super) right: f64,
    pub(super) bottom: f64,
}

impl Area {
    pub(super) fn width(&self) -> f64 {
        self.right - self.left
    }

    pub(super) fn height(&self) -> f64 {
        self.bottom - self.top
    }

    /// The y of `value` on an axis from 0 at the bottom to `top` at the top.
    pub(super) fn y(&self, value: f64, top: f64) -> f64 {
        self.bottom - value / top * self.height()
    }
}

/// An SVG document under construction: white background, title, sans-serif text.
#[derive(Debug)]
pub(super) struct Svg {
    out: String,
}

impl Svg {
    pub(super) fn new(width: f64, height: f64, title: &str) -> Self {
        let (w, h) = (n(width), n(height));
        let mut svg = Svg { out: String::new() };
        svg.push(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"sans-serif\" font-size=\"12\" fill=\"#222\">\n<title>{}</title>\n",
            escape(title)
        ));
        svg.rect(0.0, 0.0, width, height, "#fff");
        let size = 16.0f64.min((width - 24.0) / text_width(title, 1.0)).max(9.0);
        svg.text(width / 2.0, 26.0, "middle", &format!("font-size=\"{}\" font-weight=\"bold\"", n(size)), title);
        svg
    }

    fn push(&mut self, element: &str) {
        self.out.push_str(element);
    }

    pub(super) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
        let (x1, y1, x2, y2) = (n(x1), n(y1), n(x2), n(y2));
        self.push(&format!("<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" {style}/>\n"));
    }

    pub(super) fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, fill: &str) {
        let (x, y, width, height) = (n(x), n(y), n(width.max(0.0)), n(height.max(0.0)));
        self.push(&format!("<rect x=\"{x}\" y=\"{y}\" width=\"{width}\" height=\"{height}\" fill=\"{fill}\"/>\n"));
    }

    pub(super) fn text(&mut self, x: f64, y: f64, anchor: &str, attributes: &str, content: &str) {
        let attributes = if attributes.is_empty() { String::new() } else { format!(" {attributes}") };
        let (x, y, content) = (n(x), n(y), escape(content));
        self.push(&format!("<text x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\"{attributes}>{content}</text>\n"));
    }

    /// Grid lines with round labels from 0 to at least `max`; returns the axis' top value.
    pub(super) fn y_axis(&mut self, area: Area, max: f64, wanted_ticks: f64) -> f64 {
        let (step, values) = ticks(max, wanted_ticks);
        let top = values.last().copied().unwrap_or(1.0);
        for value in values {
            let y = area.y(value, top);
            self.line((area.left, y), (area.right, y), GRID);
            self.text(area.left - 6.0, y + 4.0, "end", "", &tick_label(value, step));
        }
        top
    }

    pub(super) fn axes(&mut self, area: Area) {
        self.line((area.left, area.top), (area.left, area.bottom), INK);
        self.line((area.left, area.bottom), (area.right, area.bottom), INK);
    }

    pub(super) fn y_title(&mut self, area: Area, title: &str) {
        let (x, y) = (16.0, n((area.top + area.bottom) / 2.0));
        self.text(x, (area.top + area.bottom) / 2.0, "middle", &format!("transform=\"rotate(-90 {x} {y})\""), title);
    }

    pub(super) fn x_title(&mut self, area: Area, title: &str) {
        self.text((area.left + area.right) / 2.0, area.bottom + 40.0, "middle", "", title);
    }

    /// Colour swatches and names in a row ending at `right`.
    pub(super) fn legend(&mut self, right: f64, y: f64, names: &[&str]) {
        let widths: Vec<f64> = names.iter().map(|name| 14.0 + text_width(name, 12.0) + 16.0).collect();
        let mut x = (right - widths.iter().sum::<f64>() + 16.0).max(4.0);
        for (index, (name, width)) in names.iter().zip(widths).enumerate() {
            self.rect(x, y - 9.0, 10.0, 10.0, COLOURS[index % COLOURS.len()]);
            self.text(x + 14.0, y, "start", "", name);
            x += width;
        }
    }

    pub(super) fn finish(mut self) -> String {
        self.push("</svg>\n");
        self.out
    }
}

/// Round ticks from 0 to at least `max`, about `wanted` steps of 1, 2 or 5 times a power of ten.
fn ticks(max: f64, wanted: f64) -> (f64, Vec<f64>) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / wanted;
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    let step = [1.0, 2.0, 5.0].into_iter().map(|m| m * magnitude).find(|step| *step >= raw).unwrap_or(10.0 * magnitude);
    let count = (max / step - 1e-9).ceil() as usize;
    (step, (0..=count).map(|index| index as f64 * step).collect())
}

/// A tick's label: `50k` on an axis in steps of thousands, `0.5` in steps of tenths.
fn tick_label(value: f64, step: f64) -> String {
    let (value, step, suffix) = match step {
        s if s >= 100_000.0 => (value / 1e6, step / 1e6, "M"),
        s if s >= 1_000.0 => (value / 1e3, step / 1e3, "k"),
        _ => (value, step, ""),
    };
    if value == 0.0 {
        return "0".to_owned();
    }
    let decimals = if step >= 1.0 { 0 } else { (-step.log10() - 1e-9).ceil() as usize };
    format!("{value:.decimals$}{suffix}")
}

/// A coordinate or a small amount: one decimal at most, none when it is 0.
pub(super) fn n(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    let text = format!("{:.1}", if rounded.abs() < 0.05 { 0.0 } else { rounded });
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// Milliseconds and the like: `2.5`, `120`, `1,000`.
pub(super) fn amount(value: f64) -> String {
    if value >= 1_000.0 {
        thousands(value)
    } else {
        n(value)
    }
}

/// `48,529`.
pub(super) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.round().abs());
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `48.5k` where `48,529` does not fit.
pub(super) fn compact(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{}M", n(v / 1e6)),
        v if v >= 1e3 => format!("{}k", n(v / 1e3)),
        v => n(v),
    }
}

/// A generous estimate of the width of sans-serif `text` at font size `size`.
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(48_000.0, 5.0), (10_000.0, vec![0.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0]));
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(
            (thousands(48_529.4), compact(48_529.0), amount(2.5)),
            ("48,529".into(), "48.5k".into(), "2.5".into())
        );
    }
}

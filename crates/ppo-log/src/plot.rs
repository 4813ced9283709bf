//! Training plots as PNG images: every metric in a grid of panels, and the
//! five-panel PPO chart. Text is drawn with DejaVu Sans compiled into the
//! binary (the `dejavu` crate), so no system fonts are needed.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::LogError;
use crate::metrics::read_metrics;
use crate::record::{MetricsRecord, RecordKind};

/// File name of the grid with one panel per metric.
pub const DETAILED_PLOT_FILE: &str = "training_metrics_detailed.png";
/// File name of the five-panel PPO chart.
pub const PPO_PLOT_FILE: &str = "ppo_metrics_with_entropy.png";

/// The PPO chart's panels, in order; eval_reward is overlaid on reward.
const PPO_METRICS: [&str; 5] = [
    "policy_loss",
    "value_loss",
    "reward",
    "advantage",
    "entropy",
];

const DETAILED_COLUMNS: u32 = 4;
const DETAILED_PANEL: (u32, u32) = (400, 260);
const PPO_COLUMNS: u32 = 3;
const PPO_PANEL: (u32, u32) = (520, 340);
const HEADER_HEIGHT: u32 = 48;

/// Family name the embedded font is registered under (plotters' default).
const FONT: &str = "sans-serif";
const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const EVAL_COLOR: RGBColor = RGBColor(230, 110, 0);
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
const GRID_LIGHT: RGBColor = RGBColor(240, 240, 240);

type BoxError = Box<dyn Error + Send + Sync + 'static>;
type DrawResult = Result<(), BoxError>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Plots the metrics file `metrics_file` (a run's `logs/metrics.jsonl`) into `out_dir`;
/// see [`plot_metrics`] for the images written. Returns their paths.
///
/// A missing, unreadable or malformed file is an error naming it, and so is a
/// file without any metric value ([`LogError::NoMetrics`]).
pub fn plot_file(metrics_file: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let records = read_metrics(metrics_file)?;
    if records.iter().all(|record| record.values.is_empty()) {
        return Err(LogError::NoMetrics {
            path: metrics_file.to_path_buf(),
        });
    }
    plot_metrics(&records, out_dir)
}

/// Draws `records` as two PNG images in `out_dir` (created if missing) and
/// returns their paths.
///
/// - [`DETAILED_PLOT_FILE`]: one panel per metric, train metrics in first-seen
///   order and then eval metrics, 4 columns of 400×260 px under a 48 px
///   header (1600 × (48 + 260·rows) px). Train series are drawn as a line,
///   with a centred moving average over `n / 20` points once that is at least
///   2; eval series as a line with markers.
/// - [`PPO_PLOT_FILE`]: policy_loss, value_loss, reward (with eval_reward
///   overlaid), advantage and entropy, 3 + 2 panels of 520×340 px
///   (1560 × 728 px), with legends.
///
/// Non-finite values (null in the file) leave gaps. Records without any metric
/// value are an error ([`LogError::NoMetrics`] naming `out_dir`).
pub fn plot_metrics(records: &[MetricsRecord], out_dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let series = collect_series(records);
    if series.is_empty() {
        return Err(LogError::NoMetrics {
            path: out_dir.to_path_buf(),
        });
    }
    fs_err::create_dir_all(out_dir).map_err(|source| LogError::WritePlot {
        path: out_dir.to_path_buf(),
        source: source.into(),
    })?;
    let summary = run_summary(records);

    let detailed = out_dir.join(DETAILED_PLOT_FILE);
    let rows = (series.len() as u32).div_ceil(DETAILED_COLUMNS);
    let size = (
        DETAILED_COLUMNS * DETAILED_PANEL.0,
        HEADER_HEIGHT + rows * DETAILED_PANEL.1,
    );
    render_png(&detailed, size, |root| {
        let title = format!("Training metrics: {summary}");
        draw_detailed(root, &title, &series, rows)
    })?;

    let ppo = out_dir.join(PPO_PLOT_FILE);
    let size = (PPO_COLUMNS * PPO_PANEL.0, HEADER_HEIGHT + 2 * PPO_PANEL.1);
    render_png(&ppo, size, |root| {
        let title = format!("PPO metrics: {summary}");
        draw_ppo(root, &title, &series)
    })?;

    Ok(vec![detailed, ppo])
}

/// One metric over steps.
struct Series {
    name: String,
    kind: RecordKind,
    /// `(step, value)` sorted by step; non-finite values mark gaps.
    points: Vec<(f64, f64)>,
}

/// Train series in first-seen order, then eval series in first-seen order.
fn collect_series(records: &[MetricsRecord]) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    let mut index: HashMap<(RecordKind, &str), usize> = HashMap::new();
    for record in records {
        for (name, value) in &record.values {
            let slot = *index.entry((record.kind, name)).or_insert_with(|| {
                series.push(Series {
                    name: name.clone(),
                    kind: record.kind,
                    points: Vec::new(),
                });
                series.len() - 1
            });
            series[slot].points.push((record.step as f64, *value));
        }
    }
    for one in &mut series {
        one.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series.sort_by_key(|one| one.kind == RecordKind::Eval);
    series
}

/// "200 train / 10 eval records, steps 1–200" for the figure headers.
fn run_summary(records: &[MetricsRecord]) -> String {
    let count = |kind| records.iter().filter(|r| r.kind == kind).count();
    let first = records.iter().map(|r| r.step).min().unwrap_or(0);
    let last = records.iter().map(|r| r.step).max().unwrap_or(0);
    format!(
        "{} train / {} eval records, steps {first}–{last}",
        count(RecordKind::Train),
        count(RecordKind::Eval)
    )
}

/// Draws into an RGB buffer, then encodes it as a PNG at `path`.
fn render_png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<(), LogError> {
    let wrap = |source| LogError::WritePlot {
        path: path.to_path_buf(),
        source,
    };
    register_font().map_err(wrap)?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root).map_err(wrap)?;
        root.present().map_err(|err| wrap(err.into()))?;
    }
    let png = encode_png(width, height, &rgb).map_err(wrap)?;
    fs_err::write(path, png).map_err(|err| wrap(err.into()))
}

fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, BoxError> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(png)
}

/// Registers DejaVu Sans with plotters once per process.
fn register_font() -> DrawResult {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded DejaVu Sans font could not be loaded".into())
    }
}

/// Fills the background and draws the figure title; returns the area below it.
fn draw_header<'a>(root: &Area<'a>, title: &str) -> Result<Area<'a>, BoxError> {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER_HEIGHT);
    let (width, height) = header.dim_in_pixel();
    let style = TextStyle::from((FONT, 22, FontStyle::Bold).into_font())
        .pos(Pos::new(HPos::Center, VPos::Center));
    header.draw_text(title, &style, (width as i32 / 2, height as i32 / 2))?;
    Ok(body)
}

fn draw_detailed(root: &Area<'_>, title: &str, series: &[Series], rows: u32) -> DrawResult {
    let body = draw_header(root, title)?;
    let panels = body.split_evenly((rows as usize, DETAILED_COLUMNS as usize));
    // A name logged both as train and as eval gets "(eval)" on its eval panel.
    let train_names: Vec<&str> = series
        .iter()
        .filter(|s| s.kind == RecordKind::Train)
        .map(|s| s.name.as_str())
        .collect();
    for (area, one) in panels.iter().zip(series) {
        let (train, eval) = match one.kind {
            RecordKind::Train => (Some(one), None),
            RecordKind::Eval => (None, Some(one)),
        };
        let title = if one.kind == RecordKind::Eval && train_names.contains(&one.name.as_str()) {
            format!("{} (eval)", one.name)
        } else {
            one.name.clone()
        };
        let panel = Panel {
            title: &title,
            train,
            eval,
            legend: false,
        };
        draw_panel(area, &panel)?;
    }
    Ok(())
}

fn draw_ppo(root: &Area<'_>, title: &str, series: &[Series]) -> DrawResult {
    let body = draw_header(root, title)?;
    let (top, bottom) = body.split_vertically(PPO_PANEL.1);
    let mut areas = top.split_evenly((1, PPO_COLUMNS as usize));
    // Centre the last two panels under the first three.
    let bottom = bottom.shrink((PPO_PANEL.0 / 2, 0), (2 * PPO_PANEL.0, PPO_PANEL.1));
    areas.extend(bottom.split_evenly((1, 2)));
    let find = |kind, name| series.iter().find(|s| s.kind == kind && s.name == name);
    for (area, name) in areas.iter().zip(PPO_METRICS) {
        let eval = (name == "reward")
            .then(|| find(RecordKind::Eval, "eval_reward"))
            .flatten();
        let panel = Panel {
            title: name,
            train: find(RecordKind::Train, name),
            eval,
            legend: true,
        };
        draw_panel(area, &panel)?;
    }
    Ok(())
}

/// What one panel shows: a train series, an eval series, or both overlaid.
struct Panel<'a> {
    title: &'a str,
    train: Option<&'a Series>,
    eval: Option<&'a Series>,
    /// Draw a legend when the panel holds more than one line.
    legend: bool,
}

fn draw_panel(area: &Area<'_>, panel: &Panel<'_>) -> DrawResult {
    let points = || {
        panel
            .train
            .into_iter()
            .chain(panel.eval)
            .flat_map(|s| &s.points)
    };
    let caption = (FONT, 16, FontStyle::Bold);
    let y_range = padded_range(points().map(|p| p.1).filter(|y| y.is_finite()));
    let (Some((x0, x1)), Some((y0, y1))) = (padded_range(points().map(|p| p.0)), y_range) else {
        let inner = area.margin(8, 8, 8, 8).titled(panel.title, caption)?;
        let (width, height) = inner.dim_in_pixel();
        let style = TextStyle::from((FONT, 14).into_font())
            .color(&RGBColor(120, 120, 120))
            .pos(Pos::new(HPos::Center, VPos::Center));
        inner.draw_text("no data", &style, (width as i32 / 2, height as i32 / 2))?;
        return Ok(());
    };

    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, caption)
        .margin(8)
        .margin_right(18)
        .x_label_area_size(36)
        .y_label_area_size(62)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let x_format = TickFormat::new(x0, x1, true);
    let y_format = TickFormat::new(y0, y1, false);
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|x| x_format.format(*x))
        .y_label_formatter(&|y| y_format.format(*y))
        .label_style((FONT, 12))
        .x_desc("step")
        .axis_desc_style((FONT, 12))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .max_light_lines(2)
        .draw()?;

    let mut n_lines = 0;
    if let Some(train) = panel.train {
        n_lines += draw_train(&mut chart, train)?;
    }
    if let Some(eval) = panel.eval {
        n_lines += draw_eval(&mut chart, eval)?;
    }
    if panel.legend && n_lines > 1 {
        chart
            .configure_series_labels()
            .position(legend_corner(points(), (x0, x1), (y0, y1)))
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(GRID_BOLD)
            .draw()?;
    }
    Ok(())
}

/// The corner of the plot the legend covers the fewest points in.
fn legend_corner<'a>(
    points: impl Iterator<Item = &'a (f64, f64)>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    // The legend box spans roughly this share of the plot's width and height.
    let (box_w, box_h) = ((x1 - x0) * 0.45, (y1 - y0) * 0.35);
    let mut counts = [0usize; 4];
    for &(x, y) in points.filter(|p| p.1.is_finite()) {
        let (left, right) = (x <= x0 + box_w, x >= x1 - box_w);
        let (bottom, top) = (y <= y0 + box_h, y >= y1 - box_h);
        let hits = [right && top, left && top, right && bottom, left && bottom];
        for (count, hit) in counts.iter_mut().zip(hits) {
            *count += usize::from(hit);
        }
    }
    let corners = [
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::LowerRight,
        SeriesLabelPosition::LowerLeft,
    ];
    // `min_by_key` keeps the first of equal counts, so upper right wins ties.
    let best = (0..4).min_by_key(|&i| counts[i]).unwrap_or(0);
    corners[best].clone()
}

/// Draws a train series: the raw line (light when smoothed), markers when
/// short, and the moving average when long. Returns the legend entries added.
fn draw_train(chart: &mut Chart<'_, '_>, series: &Series) -> Result<usize, BoxError> {
    let finite: Vec<(f64, f64)> = series
        .points
        .iter()
        .copied()
        .filter(|p| p.1.is_finite())
        .collect();
    if finite.is_empty() {
        return Ok(0);
    }
    let window = (finite.len() / 20).max(1);
    let smoothed = window > 1;
    let raw = if smoothed {
        TRAIN_COLOR.mix(0.35).stroke_width(1)
    } else {
        TRAIN_COLOR.stroke_width(2)
    };
    draw_runs(chart, &series.points, raw, &series.name)?;
    if finite.len() <= 30 {
        let marker = TRAIN_COLOR.filled();
        chart.draw_series(finite.iter().map(|&p| Circle::new(p, 3, marker)))?;
    }
    if !smoothed {
        return Ok(1);
    }
    let smooth = TRAIN_COLOR.stroke_width(2);
    chart
        .draw_series(LineSeries::new(moving_average(&finite, window), smooth))?
        .label(format!("{} (mean of {window})", series.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], smooth));
    Ok(2)
}

/// Draws an eval series as a line with a marker on every value.
fn draw_eval(chart: &mut Chart<'_, '_>, series: &Series) -> Result<usize, BoxError> {
    let line = EVAL_COLOR.stroke_width(2);
    if !draw_runs(chart, &series.points, line, &series.name)? {
        return Ok(0);
    }
    let marker = EVAL_COLOR.filled();
    chart.draw_series(
        series
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&p| Circle::new(p, 3, marker)),
    )?;
    Ok(1)
}

/// Draws each run of finite points as a line (a lone point as a dot), so
/// non-finite values leave gaps; the first run carries the legend label.
/// Returns whether anything was drawn.
fn draw_runs(
    chart: &mut Chart<'_, '_>,
    points: &[(f64, f64)],
    style: ShapeStyle,
    label: &str,
) -> Result<bool, BoxError> {
    let mut drawn = false;
    for run in points.split(|p| !p.1.is_finite()).filter(|r| !r.is_empty()) {
        let anno = if let [point] = run {
            chart.draw_series(std::iter::once(Circle::new(*point, 3, style.filled())))?
        } else {
            chart.draw_series(LineSeries::new(run.iter().copied(), style))?
        };
        if !drawn {
            anno.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            drawn = true;
        }
    }
    Ok(drawn)
}

/// Centred moving average over `window` points (shorter at the ends).
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    let mut prefix = Vec::with_capacity(points.len() + 1);
    prefix.push(0.0);
    for (i, p) in points.iter().enumerate() {
        prefix.push(prefix[i] + p.1);
    }
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(points.len());
            (p.0, (prefix[hi] - prefix[lo]) / (hi - lo) as f64)
        })
        .collect()
}

/// The range of `values` with a 5% margin; a single value gets ±10% of
/// itself (±1 for zero). `None` when there are no values.
fn padded_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold(None, |acc: Option<(f64, f64)>, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    let magnitude = lo.abs().max(hi.abs());
    let pad = if hi - lo > magnitude * 1e-9 {
        (hi - lo) * 0.05
    } else if magnitude > 0.0 {
        magnitude * 0.1
    } else {
        1.0
    };
    Some((lo - pad, hi + pad))
}

/// Tick labels with as many digits as the axis range needs: fixed-point for
/// ordinary magnitudes, scientific for very large or small ones.
#[derive(Clone, Copy)]
struct TickFormat {
    /// Rough tick spacing; values much closer to zero than this print as 0.
    spacing: f64,
    scientific: bool,
    /// Digits after the point (of the mantissa when scientific), before trimming zeros.
    digits: usize,
}

impl TickFormat {
    fn new(lo: f64, hi: f64, integer_steps: bool) -> Self {
        let spacing = (hi - lo) / 5.0;
        let magnitude = lo.abs().max(hi.abs());
        let spacing_exp = spacing.log10().floor();
        if integer_steps && spacing >= 1.0 {
            return Self {
                spacing,
                scientific: false,
                digits: 0,
            };
        }
        let scientific = !(1e-3..1e5).contains(&magnitude);
        let digits = if scientific {
            magnitude.log10().floor() - spacing_exp + 1.0
        } else {
            1.0 - spacing_exp
        };
        Self {
            spacing,
            scientific,
            digits: digits.clamp(0.0, 8.0) as usize,
        }
    }

    fn format(self, value: f64) -> String {
        if value.abs() < self.spacing * 1e-6 {
            return "0".to_owned();
        }
        let digits = self.digits;
        if self.scientific {
            let text = format!("{value:.digits$e}");
            match text.split_once('e') {
                Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa)),
                None => text,
            }
        } else {
            trim_zeros(&format!("{value:.digits$}")).to_owned()
        }
    }
}

/// "0.250" → "0.25", "2.000" → "2"; integers are left alone.
fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_have_the_digits_the_range_needs() {
        let f = TickFormat::new(0.0, 1.0, false);
        assert_eq!(f.format(0.25), "0.25");
        assert_eq!(f.format(0.2), "0.2");
        assert_eq!(f.format(1e-17), "0");
        let lr = TickFormat::new(1e-5, 3e-5, false);
        assert_eq!(lr.format(1.5e-5), "1.5e-5");
        let steps = TickFormat::new(0.0, 1000.0, true);
        assert_eq!(steps.format(200.0), "200");
        let big = TickFormat::new(0.0, 2e6, false);
        assert_eq!(big.format(1.5e6), "1.5e6");
    }

    #[test]
    fn ranges_are_padded_even_for_a_single_value() {
        assert_eq!(padded_range([0.0, 10.0].into_iter()), Some((-0.5, 10.5)));
        let (lo, hi) = padded_range([2.0].into_iter()).unwrap();
        assert!(
            (lo - 1.8).abs() < 1e-12 && (hi - 2.2).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(padded_range([0.0, 0.0].into_iter()), Some((-1.0, 1.0)));
        assert_eq!(padded_range(std::iter::empty()), None);
    }

    #[test]
    fn moving_average_is_centred_and_shrinks_at_the_ends() {
        let points: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, i as f64 * 3.0)).collect();
        let ma = moving_average(&points, 3);
        assert_eq!(
            ma,
            vec![(0.0, 1.5), (1.0, 3.0), (2.0, 6.0), (3.0, 9.0), (4.0, 10.5)]
        );
    }

    #[test]
    fn series_keep_train_then_eval_first_seen_order() {
        let record = |kind, step, values: &[(&str, f64)]| {
            MetricsRecord::now(
                kind,
                step,
                values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            )
        };
        let records = [
            record(RecordKind::Eval, 0, &[("eval_reward", 1.0)]),
            record(RecordKind::Train, 2, &[("b", 1.0), ("a", f64::NAN)]),
            record(RecordKind::Train, 1, &[("c", 1.0), ("b", 0.0)]),
        ];
        let series = collect_series(&records);
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c", "eval_reward"]);
        assert_eq!(series[0].points, vec![(1.0, 0.0), (2.0, 1.0)]);
    }
}

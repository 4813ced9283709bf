//! Training plots: both PNGs are written and decode, the grid grows with the
//! number of metrics, eval values reach the PPO chart, and empty input errors.

use std::io::Cursor;
use std::path::Path;

use ppo_log::{
    DETAILED_PLOT_FILE, LogError, MetricsRecord, MetricsWriter, PPO_PLOT_FILE, RecordKind,
    plot_file, plot_metrics,
};

/// Colour of eval lines and markers in the plots.
const EVAL_COLOR: [u8; 3] = [230, 110, 0];

const TRAIN_METRICS: [&str; 27] = [
    "policy_loss",
    "value_loss",
    "total_loss",
    "reward",
    "advantage",
    "entropy",
    "kl_divergence",
    "learning_rate",
    "score",
    "non_score_reward",
    "clipfrac",
    "value_clipfrac",
    "approx_kl",
    "ratio_mean",
    "explained_variance",
    "response_length",
    "eos_rate",
    "kl_coef",
    "grad_norm_policy",
    "grad_norm_critic",
    "critic_learning_rate",
    "tokens_per_second",
    "time/generate",
    "time/score",
    "time/update",
    "epoch",
    "peak_memory_mib",
];

/// `n_steps` train records of the given metrics (decaying, wiggling; kl_coef
/// constant; policy_loss NaN at step 10) and, with `eval`, eval records every
/// 20 steps plus a single eval_accuracy point.
fn records(metrics: &[&str], n_steps: u64, eval: bool) -> Vec<MetricsRecord> {
    let mut out = Vec::new();
    for step in 1..=n_steps {
        let t = step as f64;
        let values = metrics
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = match *name {
                    "kl_coef" => 0.05,
                    "policy_loss" if step == 10 => f64::NAN,
                    _ => (i as f64 + 1.0) * (-t / 30.0).exp() + 0.1 * (t * 0.7 + i as f64).sin(),
                };
                ((*name).to_owned(), value)
            })
            .collect();
        out.push(MetricsRecord::now(RecordKind::Train, step, values));
        if eval && step % 20 == 0 {
            let mut values = vec![
                ("eval_reward".to_owned(), 1.0 - (-t / 40.0).exp()),
                ("eval_entropy".to_owned(), 2.0),
            ];
            if step == 40 {
                values.push(("eval_accuracy".to_owned(), 0.5));
            }
            out.push(MetricsRecord::now(RecordKind::Eval, step, values));
        }
    }
    out
}

/// Decodes an RGB PNG: (width, height, pixels).
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

fn count_pixels(pixels: &[u8], color: [u8; 3]) -> usize {
    pixels.chunks_exact(3).filter(|p| *p == color).count()
}

#[test]
fn writes_both_pngs_with_the_documented_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let written = plot_metrics(&records(&TRAIN_METRICS, 60, true), dir.path()).unwrap();
    assert_eq!(
        written,
        [
            dir.path().join(DETAILED_PLOT_FILE),
            dir.path().join(PPO_PLOT_FILE)
        ]
    );

    // 27 train + 3 eval metrics: 8 rows of 4 panels under the header.
    let (width, height, pixels) = decode(&written[0]);
    assert_eq!((width, height), (1600, 48 + 8 * 260));
    assert!(count_pixels(&pixels, EVAL_COLOR) > 0, "eval panels drawn");
    // The header's title is drawn (dark text on white).
    let header = &pixels[..(48 * width * 3) as usize];
    assert!(header.chunks_exact(3).any(|p| p.iter().all(|&c| c < 100)));

    let (width, height, pixels) = decode(&written[1]);
    assert_eq!((width, height), (1560, 48 + 2 * 340));
    assert!(
        count_pixels(&pixels, EVAL_COLOR) > 0,
        "eval_reward overlaid"
    );
}

#[test]
fn detailed_grid_grows_with_the_number_of_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let few = plot_metrics(
        &records(&TRAIN_METRICS[..5], 30, false),
        &dir.path().join("few"),
    );
    let (_, few_height, _) = decode(&few.unwrap()[0]);
    let many = plot_metrics(
        &records(&TRAIN_METRICS, 30, false),
        &dir.path().join("many"),
    );
    let (_, many_height, _) = decode(&many.unwrap()[0]);
    assert_eq!(few_height, 48 + 2 * 260);
    assert_eq!(many_height, 48 + 7 * 260);
}

#[test]
fn ppo_chart_has_no_eval_colour_without_eval_records() {
    let dir = tempfile::tempdir().unwrap();
    let written = plot_metrics(&records(&TRAIN_METRICS, 60, false), dir.path()).unwrap();
    let (_, _, pixels) = decode(&written[1]);
    assert_eq!(count_pixels(&pixels, EVAL_COLOR), 0);
}

#[test]
fn single_points_and_missing_ppo_metrics_still_render() {
    let dir = tempfile::tempdir().unwrap();
    // One step, one metric that is not in the PPO chart, one all-NaN metric.
    let record = MetricsRecord::now(
        RecordKind::Train,
        0,
        vec![("score".to_owned(), 0.0), ("entropy".to_owned(), f64::NAN)],
    );
    let written = plot_metrics(&[record], dir.path()).unwrap();
    assert_eq!(decode(&written[0]).1, 48 + 260);
    assert_eq!(decode(&written[1]).0, 1560);
}

#[test]
fn plot_file_reads_the_metrics_file() {
    let run = tempfile::tempdir().unwrap();
    let mut writer = MetricsWriter::create(run.path().join("logs/metrics.jsonl")).unwrap();
    for record in records(&TRAIN_METRICS[..8], 40, true) {
        writer.write(&record).unwrap();
    }
    let written = plot_file(&run.path().join("logs/metrics.jsonl"), run.path()).unwrap();
    assert_eq!(written[0], run.path().join(DETAILED_PLOT_FILE));
    assert!(written.iter().all(|path| path.is_file()));
}

#[test]
fn empty_or_missing_metrics_file_is_an_error_naming_it() {
    let run = tempfile::tempdir().unwrap();
    let metrics = run.path().join("logs").join("metrics.jsonl");

    let err = plot_file(&metrics, run.path()).unwrap_err();
    assert!(matches!(err, LogError::ReadMetrics { .. }), "{err:?}");
    assert!(err.to_string().contains(&metrics.display().to_string()));

    MetricsWriter::create(&metrics).unwrap();
    let err = plot_file(&metrics, run.path()).unwrap_err();
    assert!(matches!(err, LogError::NoMetrics { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no metrics to plot in {}", metrics.display())
    );
    assert!(!run.path().join(DETAILED_PLOT_FILE).exists());

    let err = plot_metrics(&[], run.path()).unwrap_err();
    assert!(matches!(err, LogError::NoMetrics { .. }), "{err:?}");
}

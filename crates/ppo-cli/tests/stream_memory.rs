//! Saves and loads stream: on a model of a few hundred MB, the resident memory a checkpoint
//! save/load, an optimiser-state save or a Hugging Face export/load adds on top of the model
//! stays under 1.2 × its largest tensor (read from /proc/self/status: the peak `VmHWM`, reset
//! through /proc/self/clear_refs before each call).
//!
//! One test in its own binary: no other test thread allocates while it measures.

use burn::tensor::{Device, Tensor};
use ppo_models::hf::{self, ExportDtype, ExportOptions};
use ppo_models::{CausalLm, Rng, TransformerConfig};

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Runs `f` and returns (its result, peak RSS during it − max(RSS before, RSS after)) in bytes:
/// the transient memory of the call, whatever it keeps.
fn transient<T>(f: impl FnOnce() -> T) -> (T, u64) {
    // "5" resets the peak (VmHWM) to the current RSS (Linux ≥ 4.0).
    std::fs::write("/proc/self/clear_refs", "5").expect("cannot reset VmHWM");
    let before = status_kib("VmRSS");
    let out = f();
    let peak = status_kib("VmHWM");
    let after = status_kib("VmRSS");
    (out, peak.saturating_sub(before.max(after)) * 1024)
}

fn config() -> TransformerConfig {
    TransformerConfig {
        vocab_size: 32_768,
        hidden_size: 1024,
        intermediate_size: 2816,
        num_hidden_layers: 2,
        num_attention_heads: 8,
        num_key_value_heads: 4,
        head_dim: 128,
        tie_word_embeddings: false,
        ..TransformerConfig::tiny(32_768)
    }
}

/// A few logits: equal for equal weights.
fn first_values(model: &CausalLm) -> Vec<f32> {
    let logits = model.forward(&[1, 2, 3], &[true; 3], 1, None);
    let v = logits
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    v[..16].to_vec()
}

fn check(what: &str, bytes: u64, largest: u64) {
    let ratio = bytes as f64 / largest as f64;
    println!(
        "{what}: {:.1} MiB transient = {ratio:.2} × the largest tensor",
        bytes as f64 / 1048576.0
    );
    assert!(
        ratio <= 1.2,
        "{what} needed {bytes} bytes beyond the model, {ratio:.2} × the largest tensor ({largest} bytes)"
    );
}

#[test]
fn saves_and_loads_need_about_one_tensor_of_memory() {
    let device = Device::flex();
    let config = config();
    let largest = (config.vocab_size * config.hidden_size * 4) as u64;
    let model = CausalLm::init(&config, &mut Rng::new(1), &device);
    let total = config.num_params() as u64 * 4;
    assert!(total > 300 << 20, "model of {total} bytes");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    // burn initialises parameters lazily: a forward pass materialises them, as training does.
    let expected = first_values(&model);

    let (saved, bytes) = transient(|| ppo_ckpt::save_module(&model, &path.join("model.bpk")));
    saved.unwrap();
    check("checkpoint save", bytes, largest);

    let fresh = CausalLm::init(&config, &mut Rng::new(2), &device);
    first_values(&fresh);
    let (loaded, bytes) = transient(|| ppo_ckpt::load_module(fresh, &path.join("model.bpk")));
    let loaded = loaded.unwrap();
    check("checkpoint load", bytes, largest);
    assert_eq!(first_values(&loaded), expected);
    drop(loaded);

    let flat: Vec<(String, Tensor<1>)> = (0..3)
        .map(|i| {
            let t = Tensor::<1>::ones([config.vocab_size * config.hidden_size], &device) * i;
            (format!("t{i}"), t)
        })
        .collect();
    let (saved, bytes) = transient(|| {
        ppo_ckpt::save_tensors(&path.join("optim.bpk"), flat.clone(), &Default::default())
    });
    saved.unwrap();
    check("optimiser state save", bytes, largest);
    drop(flat);

    for dtype in [ExportDtype::F32, ExportDtype::Bf16] {
        let out = path.join(format!("hf-{dtype:?}"));
        let options = ExportOptions {
            dtype,
            ..Default::default()
        };
        let (saved, bytes) = transient(|| hf::save_causal_lm(&model, &out, &options));
        saved.unwrap();
        check(&format!("Hugging Face export ({dtype:?})"), bytes, largest);
        // the export wrote config.json: nothing else is needed to load the weights back
        let (loaded, bytes) = transient(|| hf::load_causal_lm(&out, &device));
        let (_, loaded) = loaded.unwrap();
        check(&format!("Hugging Face load ({dtype:?})"), bytes, largest);
        if dtype == ExportDtype::F32 {
            assert_eq!(first_values(&loaded), expected);
        }
    }
}

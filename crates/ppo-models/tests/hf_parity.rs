//! Parity with transformers: tiny random checkpoints and transformers' logits / greedy tokens,
//! written by `scripts/make_hf_fixtures.py` into `tests/fixtures/hf` (no Python at test time),
//! and the loader's refusals and error messages.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ppo_models::hf::{self, HfError};
use ppo_models::{Rng, SamplingConfig, generate, to_f32_vec};
use safetensors::SafeTensors;
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "support/devices.rs"]
mod devices;

use devices::devices;

const CAUSAL_CASES: [&str; 4] = [
    "llama_gqa_untied",
    "qwen2_bias_tied",
    "qwen3_qknorm_bf16",
    "mistral_sharded_f16",
];

/// Largest |ours − theirs| allowed, relative to the largest |theirs|.
const REL_TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

#[derive(Deserialize)]
struct Expected {
    input_ids: Vec<Vec<u32>>,
    logits_shape: Option<Vec<usize>>,
    logits: Option<Vec<f32>>,
    values_shape: Option<Vec<usize>>,
    values: Option<Vec<f32>>,
    generation: Option<ExpectedGeneration>,
}

#[derive(Deserialize)]
struct ExpectedGeneration {
    prompts: Vec<Vec<u32>>,
    pad_token_id: u32,
    max_new_tokens: usize,
    tokens: Vec<Vec<u32>>,
}

fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (max |a − b|, max |a − b| / max |b|)
fn differences(ours: &[f32], theirs: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), theirs.len());
    let max_diff = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let scale = theirs.iter().map(|b| b.abs()).fold(0.0, f32::max);
    (max_diff, max_diff / (scale + 1e-12))
}

#[test]
fn logits_match_transformers() {
    for ((backend, device), name) in devices()
        .into_iter()
        .flat_map(|d| CAUSAL_CASES.map(|name| (d.clone(), name)))
    {
        let (config, model) = hf::load_causal_lm(fixture(name), &device).unwrap();
        assert_eq!(model.config(), &config);
        let expected = expected(name);
        let batch = expected.input_ids.len();
        let ids: Vec<u32> = expected.input_ids.concat();
        let mask = vec![true; ids.len()];
        let logits = model.forward(&ids, &mask, batch, None);
        assert_eq!(
            logits.dims().to_vec(),
            expected.logits_shape.unwrap(),
            "{name}"
        );
        assert_eq!(logits.dims()[2], config.vocab_size);
        let (max_diff, rel) = differences(&to_f32_vec(logits), &expected.logits.unwrap());
        println!("{name} on {backend}: max |Δlogit| = {max_diff:.3e}, relative {rel:.3e}");
        assert!(
            rel <= REL_TOL,
            "{name} on {backend}: relative logit difference {rel:e}"
        );
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for ((backend, device), name) in devices()
        .into_iter()
        .flat_map(|d| CAUSAL_CASES.map(|name| (d.clone(), name)))
    {
        let (config, model) = hf::load_causal_lm(fixture(name), &device).unwrap();
        let gen_case = expected(name).generation.unwrap();
        let sampling = SamplingConfig {
            greedy: true,
            max_new_tokens: gen_case.max_new_tokens,
            ..SamplingConfig::default()
        };
        // The fixtures generate without an EOS: give an id no model can produce.
        let no_eos = config.vocab_size as u32;
        let out = generate(
            &model,
            &gen_case.prompts,
            &sampling,
            no_eos,
            gen_case.pad_token_id,
            &mut Rng::new(0),
        );
        let ours: Vec<Vec<u32>> = (0..out.batch_size).map(|row| out.response(row)).collect();
        assert_eq!(ours, gen_case.tokens, "{name} on {backend}");
    }
}

#[test]
fn value_head_matches_transformers() {
    let name = "qwen2_value_head";
    for (backend, device) in devices() {
        let (_, critic) = hf::load_value_model(fixture(name), &device).unwrap();
        let expected = expected(name);
        let batch = expected.input_ids.len();
        let ids: Vec<u32> = expected.input_ids.concat();
        let values = critic.forward(&ids, &vec![true; ids.len()], batch);
        assert_eq!(values.dims().to_vec(), expected.values_shape.unwrap());
        let (max_diff, rel) = differences(&to_f32_vec(values), &expected.values.unwrap());
        println!("{name} on {backend}: max |Δvalue| = {max_diff:.3e}, relative {rel:.3e}");
        assert!(
            rel <= REL_TOL,
            "{name} on {backend}: relative value difference {rel:e}"
        );
    }
}

/// flex and LibTorch run the same maths with different kernels: their logits agree far more
/// closely than either agrees with transformers (f32 summation order only).
#[cfg(feature = "tch")]
#[test]
fn libtorch_and_flex_logits_agree_to_1e_5() {
    #[allow(deprecated)]
    let tch = Device::libtorch();
    for name in CAUSAL_CASES {
        let (_, on_flex) = hf::load_causal_lm(fixture(name), &Device::flex()).unwrap();
        let (_, on_tch) = hf::load_causal_lm(fixture(name), &tch).unwrap();
        // Left padding too: position ids and masks built on each backend.
        let ids: Vec<u32> = vec![0, 0, 5, 17, 3, 9, 11, 2, 8, 1, 4, 6];
        let mask: Vec<bool> = ids.iter().enumerate().map(|(i, _)| i >= 2).collect();
        let a = to_f32_vec(on_flex.forward(&ids, &mask, 2, None));
        let b = to_f32_vec(on_tch.forward(&ids, &mask, 2, None));
        let (max_diff, rel) = differences(&b, &a);
        println!("{name}: tch vs flex max |Δlogit| = {max_diff:.3e}, relative {rel:.3e}");
        assert!(
            rel <= 1e-5,
            "{name}: tch vs flex relative difference {rel:e}"
        );
    }
}

#[test]
fn configs_of_older_transformers_resolve_the_same() {
    // transformers 4.51 writes `torch_dtype` and top-level `rope_theta`, 4.57 `dtype` and
    // `rope_scaling: null`, 5.x (the fixtures) `dtype` and `rope_parameters`.
    for version in ["4.51.3", "4.57.6"] {
        for name in CAUSAL_CASES.iter().chain(&["qwen2_value_head"]) {
            let reference = hf::read_config(fixture(name)).unwrap();
            let path = fixture("configs")
                .join(format!("transformers-{version}"))
                .join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = hf::parse_config(&text, &path).unwrap();
            assert_eq!(parsed, reference, "{version} {name}");
        }
    }
}

#[test]
fn fixture_configs_resolve_as_written() {
    let llama = hf::read_config(fixture("llama_gqa_untied")).unwrap();
    assert_eq!(llama.family, hf::HfFamily::Llama);
    assert_eq!(llama.dtype.as_deref(), Some("float32"));
    let c = &llama.transformer;
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (4, 2, 8)
    );
    assert!(!c.tie_word_embeddings && !c.attention_bias && !c.qk_norm);
    assert_eq!(c.rms_norm_eps, 1e-5);

    let qwen2 = hf::load_config(fixture("qwen2_bias_tied")).unwrap();
    assert!(qwen2.tie_word_embeddings && qwen2.attention_bias && !qwen2.qk_norm);
    assert_eq!(qwen2.rope_theta, 1e6);

    let qwen3 = hf::read_config(fixture("qwen3_qknorm_bf16")).unwrap();
    assert_eq!(qwen3.dtype.as_deref(), Some("bfloat16"));
    let c = &qwen3.transformer;
    assert!(c.qk_norm && !c.attention_bias);
    assert_eq!((c.hidden_size, c.head_dim, c.rope_theta), (24, 8, 5e5));

    let mistral = hf::read_config(fixture("mistral_sharded_f16")).unwrap();
    assert_eq!(mistral.family, hf::HfFamily::Mistral);
    assert_eq!(mistral.transformer.num_key_value_heads, 1);

    let critic = hf::read_config(fixture("qwen2_value_head")).unwrap();
    assert_eq!(critic.head, hf::HfHead::SequenceClassification);
}

// ---------------------------------------------------------------------------------------
// config.json variants

/// A `config.json` as a JSON object.
type ConfigJson = serde_json::Map<String, Value>;

/// The Llama fixture's config.json as a JSON object, edited by `edit`, then parsed.
fn parse_edited(base: &str, edit: impl FnOnce(&mut ConfigJson)) -> Result<hf::HfConfig, HfError> {
    let path = fixture(base).join("config.json");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(value.as_object_mut().unwrap());
    hf::parse_config(&value.to_string(), &path)
}

/// Fixture `base`'s config.json with the keys of `set` replaced and `remove` removed, parsed.
fn parse_patched(base: &str, set: &Value, remove: &[&str]) -> Result<hf::HfConfig, HfError> {
    parse_edited(base, |c| {
        for key in remove {
            c.remove(*key);
        }
        for (key, value) in set.as_object().unwrap() {
            c.insert(key.clone(), value.clone());
        }
    })
}

fn error_text(result: Result<hf::HfConfig, HfError>) -> String {
    let error = result.expect_err("config should be refused");
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[test]
fn unknown_architecture_is_named() {
    let text = error_text(parse_edited("llama_gqa_untied", |c| {
        c.insert("architectures".into(), json!(["GPT2LMHeadModel"]));
    }));
    assert!(text.contains("GPT2LMHeadModel"), "{text}");
    assert!(
        text.contains("architectures") && text.contains("config.json"),
        "{text}"
    );
    // Without `architectures`, `model_type` picks the causal LM; an unknown one is named.
    let parsed = parse_edited("qwen3_qknorm_bf16", |c| {
        c.remove("architectures");
    })
    .unwrap();
    assert_eq!(parsed.architecture, "Qwen3ForCausalLM");
    let text = error_text(parse_edited("llama_gqa_untied", |c| {
        c.remove("architectures");
        c.insert("model_type".into(), json!("gpt2"));
    }));
    assert!(
        text.contains("`gpt2`") && text.contains("model_type"),
        "{text}"
    );
}

#[test]
fn rope_scaling_absent_or_null_loads_and_other_types_are_refused() {
    let reference = hf::load_config(fixture("llama_gqa_untied")).unwrap();
    // transformers 4.x layout: top-level rope_theta, rope_scaling null or absent.
    for rope_scaling in [
        None,
        Some(Value::Null),
        Some(json!({"rope_type": "default"})),
    ] {
        let parsed = parse_edited("llama_gqa_untied", |c| {
            c.remove("rope_parameters");
            c.insert("rope_theta".into(), json!(10000.0));
            if let Some(v) = rope_scaling.clone() {
                c.insert("rope_scaling".into(), v);
            }
        })
        .unwrap();
        assert_eq!(
            parsed.transformer, reference,
            "rope_scaling {rope_scaling:?}"
        );
    }
    let llama3 = json!({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
    let text = error_text(parse_edited("llama_gqa_untied", |c| {
        c.insert("rope_scaling".into(), llama3);
    }));
    assert!(
        text.contains("llama3") && text.contains("rope_scaling.rope_type"),
        "{text}"
    );
    // Legacy spelling `type`, and transformers 5's `rope_parameters`.
    let text = error_text(parse_edited("llama_gqa_untied", |c| {
        c.insert(
            "rope_scaling".into(),
            json!({"type": "linear", "factor": 2.0}),
        );
    }));
    assert!(
        text.contains("`linear`") && text.contains("rope_scaling.type"),
        "{text}"
    );
    let text = error_text(parse_edited("qwen3_qknorm_bf16", |c| {
        c.insert(
            "rope_parameters".into(),
            json!({"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0}),
        );
    }));
    assert!(
        text.contains("`yarn`") && text.contains("rope_parameters.rope_type"),
        "{text}"
    );
}

#[test]
fn dtype_and_torch_dtype_are_both_read() {
    let with_dtype = parse_edited("llama_gqa_untied", |c| {
        c.insert("dtype".into(), json!("bfloat16"));
    })
    .unwrap();
    let with_torch_dtype = parse_edited("llama_gqa_untied", |c| {
        c.remove("dtype");
        c.insert("torch_dtype".into(), json!("bfloat16"));
    })
    .unwrap();
    assert_eq!(with_dtype.dtype.as_deref(), Some("bfloat16"));
    assert_eq!(with_torch_dtype, with_dtype);
    let neither = parse_edited("llama_gqa_untied", |c| {
        c.remove("dtype");
    })
    .unwrap();
    assert_eq!(neither.dtype, None);
}

#[test]
fn absent_keys_take_the_architecture_defaults() {
    let minimal = |c: &mut ConfigJson| {
        for key in [
            "head_dim",
            "num_key_value_heads",
            "tie_word_embeddings",
            "rope_parameters",
            "rms_norm_eps",
            "max_position_embeddings",
            "attention_bias",
            "layer_types",
            "sliding_window",
        ] {
            c.remove(key);
        }
        c.insert("an_unknown_key".into(), json!({"ignored": true}));
    };
    let llama = parse_edited("llama_gqa_untied", minimal)
        .unwrap()
        .transformer;
    assert_eq!((llama.head_dim, llama.num_key_value_heads), (32 / 4, 4));
    assert!(!llama.tie_word_embeddings);
    assert_eq!((llama.rope_theta, llama.rms_norm_eps), (10_000.0, 1e-6));
    assert_eq!(llama.max_position_embeddings, 2048);
    // Qwen3's class defaults: head_dim 128, 32 kv heads; and here 4 query heads.
    let qwen3 = parse_edited("qwen3_qknorm_bf16", |c| {
        minimal(c);
        c.insert("num_attention_heads".into(), json!(32));
    })
    .unwrap()
    .transformer;
    assert_eq!((qwen3.head_dim, qwen3.num_key_value_heads), (128, 32));
    // `null` head_dim (Mistral writes it) means hidden_size / num_attention_heads.
    let mistral = parse_edited("mistral_sharded_f16", |c| {
        c.insert("head_dim".into(), Value::Null);
    })
    .unwrap()
    .transformer;
    assert_eq!(mistral.head_dim, 8);
}

#[test]
fn refusals_name_the_key() {
    // (fixture, key the error must name, keys to set, keys to remove)
    let cases = [
        (
            "llama_gqa_untied",
            "hidden_size",
            json!({}),
            &["hidden_size"][..],
        ),
        (
            "llama_gqa_untied",
            "num_hidden_layers",
            json!({"num_hidden_layers": "two"}),
            &[],
        ),
        (
            "llama_gqa_untied",
            "attention_bias",
            json!({"attention_bias": true}),
            &[],
        ),
        (
            "llama_gqa_untied",
            "mlp_bias",
            json!({"mlp_bias": true}),
            &[],
        ),
        (
            "llama_gqa_untied",
            "hidden_act",
            json!({"hidden_act": "gelu"}),
            &[],
        ),
        (
            "llama_gqa_untied",
            "partial_rotary_factor",
            json!({"partial_rotary_factor": 0.5}),
            &[],
        ),
        (
            "llama_gqa_untied",
            "num_key_value_heads",
            json!({"num_key_value_heads": 3}),
            &[],
        ),
        (
            "llama_gqa_untied",
            "quantization_config",
            json!({"quantization_config": {"quant_method": "bitsandbytes"}}),
            &[],
        ),
        // Mistral-7B-v0.1: a 4096-token window over 32k positions.
        (
            "mistral_sharded_f16",
            "sliding_window",
            json!({"sliding_window": 4096, "max_position_embeddings": 32768}),
            &[],
        ),
        // Absent means transformers' default window of 4096.
        (
            "mistral_sharded_f16",
            "sliding_window",
            json!({"max_position_embeddings": 32768}),
            &["sliding_window"],
        ),
        (
            "qwen3_qknorm_bf16",
            "layer_types",
            json!({"layer_types": ["full_attention", "sliding_attention"]}),
            &[],
        ),
        (
            "qwen2_bias_tied",
            "use_sliding_window",
            json!({"use_sliding_window": true, "sliding_window": 16, "max_window_layers": 1}),
            &["layer_types"],
        ),
    ];
    for (base, key, set, remove) in cases {
        let text = error_text(parse_patched(base, &set, remove));
        assert!(text.contains(key), "{base}/{key}: {text}");
        assert!(text.contains("config.json"), "{base}/{key}: {text}");
    }
    // A Mistral window as long as the context never binds; Qwen2 windows from layer 28 on
    // do not exist in a 2-layer model.
    parse_patched("mistral_sharded_f16", &json!({"sliding_window": 64}), &[]).unwrap();
    let qwen2_window = json!({"use_sliding_window": true, "sliding_window": 16});
    parse_patched("qwen2_bias_tied", &qwen2_window, &["layer_types"]).unwrap();
}

// ---------------------------------------------------------------------------------------
// weights

/// A copy of fixture `name` in a temporary directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Rewrites the safetensors file at `path` with `edit` applied to its (name, dtype, shape,
/// bytes) list.
fn rewrite_safetensors(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(path).unwrap();
    let mut tensors: Vec<_> = SafeTensors::deserialize(&bytes)
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn load_error(dir: &Path) -> HfError {
    match hf::load_causal_lm(dir, &Device::flex()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(error) => error,
    }
}

#[test]
fn missing_tensor_is_named_with_its_file() {
    let dir = copy_fixture("llama_gqa_untied");
    let file = dir.path().join("model.safetensors");
    rewrite_safetensors(&file, |t| {
        t.retain(|(name, ..)| name != "model.layers.1.mlp.up_proj.weight")
    });
    let error = load_error(dir.path());
    assert!(
        matches!(&error, HfError::MissingTensor { tensor, path } if tensor == "model.layers.1.mlp.up_proj.weight" && *path == file),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("model.layers.1.mlp.up_proj.weight")
    );

    // Untied model without lm_head.
    let dir = copy_fixture("llama_gqa_untied");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |t| {
        t.retain(|(name, ..)| name != "lm_head.weight")
    });
    assert!(
        load_error(dir.path())
            .to_string()
            .contains("lm_head.weight")
    );

    // Sharded: the shard the index names does not hold it.
    let dir = copy_fixture("mistral_sharded_f16");
    let index_path = dir.path().join("model.safetensors.index.json");
    let mut index: Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    let shard = dir
        .path()
        .join(index["weight_map"]["model.norm.weight"].as_str().unwrap());
    rewrite_safetensors(&shard, |t| {
        t.retain(|(name, ..)| name != "model.norm.weight")
    });
    let error = load_error(dir.path());
    assert!(
        matches!(&error, HfError::MissingTensor { tensor, path } if tensor == "model.norm.weight" && *path == shard),
        "{error}"
    );

    // Sharded: the index does not list it.
    index["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.norm.weight");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let error = load_error(dir.path());
    assert!(
        matches!(&error, HfError::MissingTensor { tensor, path } if tensor == "model.norm.weight" && *path == index_path),
        "{error}"
    );
}

#[test]
fn bad_shape_is_named_with_both_shapes() {
    let dir = copy_fixture("llama_gqa_untied");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |tensors| {
        let (_, _, shape, data) = tensors
            .iter_mut()
            .find(|(name, ..)| name == "model.layers.0.self_attn.k_proj.weight")
            .unwrap();
        // [16, 32] (2 kv heads × 8) stored as [8, 32]: half the rows.
        assert_eq!(*shape, vec![16, 32]);
        *shape = vec![8, 32];
        data.truncate(8 * 32 * 4);
    });
    let text = load_error(dir.path()).to_string();
    assert!(
        text.contains("model.layers.0.self_attn.k_proj.weight"),
        "{text}"
    );
    assert!(
        text.contains("[8, 32]") && text.contains("expected [16, 32]"),
        "{text}"
    );
}

#[test]
fn extra_and_unsupported_tensors_are_refused() {
    // An o_proj bias would change the function: refuse rather than drop it.
    let dir = copy_fixture("qwen2_bias_tied");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |t| {
        t.push((
            "model.layers.0.self_attn.o_proj.bias".into(),
            safetensors::Dtype::F32,
            vec![32],
            vec![0; 32 * 4],
        ));
    });
    let text = load_error(dir.path()).to_string();
    assert!(
        text.contains("model.layers.0.self_attn.o_proj.bias"),
        "{text}"
    );

    // Buffers of older checkpoints and a tied lm_head are ignored, as transformers does.
    let dir = copy_fixture("qwen2_bias_tied");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |t| {
        t.push((
            "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
            safetensors::Dtype::F32,
            vec![4],
            vec![0; 16],
        ));
        t.push((
            "lm_head.weight".into(),
            safetensors::Dtype::F32,
            vec![80, 32],
            vec![0; 80 * 32 * 4],
        ));
    });
    hf::load_causal_lm(dir.path(), &Device::flex()).unwrap();

    let dir = copy_fixture("llama_gqa_untied");
    rewrite_safetensors(&dir.path().join("model.safetensors"), |tensors| {
        let entry = tensors
            .iter_mut()
            .find(|(name, ..)| name == "model.norm.weight")
            .unwrap();
        entry.1 = safetensors::Dtype::F64;
        entry.3 = vec![0; 32 * 8];
    });
    let text = load_error(dir.path()).to_string();
    assert!(
        text.contains("model.norm.weight") && text.contains("F64"),
        "{text}"
    );
}

#[test]
fn directory_without_weights_or_with_the_wrong_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama_gqa_untied").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    assert!(matches!(load_error(dir.path()), HfError::NoWeights { .. }));
    let text = load_error(&fixture("qwen2_value_head")).to_string();
    assert!(text.contains("Qwen2ForSequenceClassification"), "{text}");
    let text = match hf::load_value_model(fixture("qwen2_bias_tied"), &Device::flex()) {
        Ok(_) => panic!("a causal LM has no score head"),
        Err(error) => error.to_string(),
    };
    assert!(text.contains("from_backbone"), "{text}");
}

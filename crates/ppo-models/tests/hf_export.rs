//! Export to Hugging Face format: save → load round trips for each family (bit for bit in
//! f32, each weight rounded to nearest even in bf16), the `config.json` written over a base
//! config, refusals, the tokenizer files, and transformers' own outputs for the exported
//! models (`scripts/check_hf_export.py`).
//!
//! The transformers check runs with the python named by `PPO_RS_PYTHON`, else
//! `<repo>/.venv-fixtures/bin/python` (`scripts/install-hf-python.sh` installs one); with
//! neither it says so and passes. Once a python is found, any mismatch fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData, bf16};
use ppo_models::LoraConfig;
use ppo_models::hf::{self, ExportDtype, ExportOptions, HfError, HfFamily, HfHead, TokenIds};
use ppo_models::{
    ByteTokenizer, CausalLm, HfTokenizer, Rng, SamplingConfig, Tokenizer, TransformerConfig,
    ValueModel, generate, to_f32_vec,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};

#[path = "../../ppo-log/tests/support/skip.rs"]
mod skip;
use skip::report_skip;

/// An unpadded batch for logits and values (no id is 0, the pad id of the critic).
const INPUT_IDS: [[u32; 8]; 2] = [[5, 17, 42, 8, 23, 61, 3, 30], [12, 7, 55, 40, 2, 19, 33, 9]];
/// Prompts of different lengths, left-padded for generation.
const PROMPTS: [&[u32]; 2] = [&[4, 9, 31, 22, 50], &[14, 27, 6]];
const MAX_NEW_TOKENS: usize = 8;

/// Llama: GQA 4/2, untied lm_head, eps 1e-5.
fn llama_untied() -> TransformerConfig {
    TransformerConfig {
        vocab_size: 96,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_position_embeddings: 64,
        tie_word_embeddings: false,
        attention_bias: false,
        qk_norm: false,
        initializer_range: 0.02,
    }
}

/// Qwen2: q/k/v bias, tied embeddings, head_dim 12 ≠ hidden / heads, rope_theta 1e6.
fn qwen2_bias_tied() -> TransformerConfig {
    TransformerConfig {
        vocab_size: 80,
        intermediate_size: 48,
        num_key_value_heads: 4,
        head_dim: 12,
        rms_norm_eps: 1e-6,
        rope_theta: 1e6,
        tie_word_embeddings: true,
        attention_bias: true,
        ..llama_untied()
    }
}

/// Qwen3: q/k norm, width 24 with head_dim 8, rope_theta 5e5, untied.
fn qwen3_qknorm() -> TransformerConfig {
    TransformerConfig {
        vocab_size: 128,
        hidden_size: 24,
        rms_norm_eps: 1e-6,
        rope_theta: 5e5,
        qk_norm: true,
        ..llama_untied()
    }
}

/// Redraws every parameter (norms 1 + 0.2·N, biases 0.2·N, weights 0.15·N), so that a norm
/// or bias written under the wrong name changes the output.
struct Randomize {
    path: Vec<String>,
    rng: Rng,
    /// Only the LoRA factors (`….lora.a`, `….lora.b`).
    adapters_only: bool,
}

impl ModuleMapper for Randomize {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        if self.adapters_only && !name.contains(".lora.") {
            return param;
        }
        let (offset, std) = if name.contains("norm") {
            (1.0, 0.2)
        } else if name.ends_with("bias") {
            (0.0, 0.2)
        } else {
            (0.0, 0.15)
        };
        param.map(|old| {
            let shape: [usize; D] = old.dims();
            let n = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| (offset + std * self.rng.normal()) as f32)
                .collect();
            Tensor::from_data(TensorData::new(values, shape), &old.device())
        })
    }
}

fn randomize<M: Module>(module: M, seed: u64) -> M {
    module.map(&mut Randomize {
        path: Vec::new(),
        rng: Rng::new(seed),
        adapters_only: false,
    })
}

/// `model` with LoRA adapters on every projection, both factors random (as training leaves
/// them), over its unchanged weights.
fn lora_trained(model: CausalLm, lora: &LoraConfig, seed: u64) -> CausalLm {
    model
        .with_lora(lora, &mut Rng::new(seed))
        .map(&mut Randomize {
            path: Vec::new(),
            rng: Rng::new(seed + 1),
            adapters_only: true,
        })
}

fn causal_lm(config: &TransformerConfig, seed: u64) -> CausalLm {
    randomize(
        CausalLm::init(config, &mut Rng::new(seed), &Device::flex()),
        seed,
    )
}

fn value_model(config: &TransformerConfig, seed: u64) -> ValueModel {
    randomize(
        ValueModel::init(config, &mut Rng::new(seed), &Device::flex()),
        seed,
    )
}

/// `(name, shape, values)` of every parameter, in visiting order.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    params: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Params {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        self.params
            .push((self.path.join("."), shape, to_f32_vec(tensor)));
    }
}

fn params<M: Module>(module: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut visitor = Params::default();
    module.visit(&mut visitor);
    visitor.params
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn input_ids() -> Vec<u32> {
    INPUT_IDS.concat()
}

fn logits(model: &CausalLm) -> Vec<f32> {
    let ids = input_ids();
    to_f32_vec(model.forward(&ids, &vec![true; ids.len()], INPUT_IDS.len(), None))
}

fn values(model: &ValueModel) -> Vec<f32> {
    let ids = input_ids();
    to_f32_vec(model.forward(&ids, &vec![true; ids.len()], INPUT_IDS.len()))
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

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

#[test]
fn f32_export_reloads_bit_for_bit_for_each_family() {
    let cases = [
        ("llama", llama_untied(), HfFamily::Llama),
        ("qwen2", qwen2_bias_tied(), HfFamily::Qwen2),
        ("qwen3", qwen3_qknorm(), HfFamily::Qwen3),
    ];
    for (seed, (name, config, family)) in cases.into_iter().enumerate() {
        let model = causal_lm(&config, seed as u64);
        let dir = tempfile::tempdir().unwrap();
        hf::save_causal_lm(&model, dir.path(), &ExportOptions::default()).unwrap();
        assert_eq!(
            file_names(dir.path()),
            BTreeSet::from(["config.json".to_owned(), "model.safetensors".to_owned()]),
            "{name}: no temporary file is left behind"
        );

        let written = hf::read_config(dir.path()).unwrap();
        assert_eq!(written.family, family, "{name}");
        assert_eq!(written.head, HfHead::CausalLm, "{name}");
        assert_eq!(written.dtype.as_deref(), Some("float32"), "{name}");
        let (loaded_config, loaded) = hf::load_causal_lm(dir.path(), &Device::flex()).unwrap();
        assert_eq!(loaded_config, config, "{name}");
        assert_eq!(loaded.config(), &config, "{name}");

        let (ours, theirs) = (params(&model), params(&loaded));
        assert_eq!(ours.len(), theirs.len(), "{name}");
        for ((n1, s1, v1), (n2, s2, v2)) in ours.iter().zip(&theirs) {
            assert_eq!((n1, s1), (n2, s2), "{name}");
            assert_eq!(bits(v1), bits(v2), "{name}: {n1}");
        }
        assert_eq!(bits(&logits(&model)), bits(&logits(&loaded)), "{name}");
    }
}

#[test]
fn safetensors_file_has_pytorch_names_layout_and_metadata() {
    let model = causal_lm(&qwen2_bias_tied(), 3);
    let dir = tempfile::tempdir().unwrap();
    hf::save_causal_lm(&model, dir.path(), &ExportOptions::default()).unwrap();
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let format = metadata.metadata().as_ref().and_then(|m| m.get("format"));
    assert_eq!(format.map(String::as_str), Some("pt"));
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let names: BTreeSet<String> = file.names().into_iter().map(|n| n.to_string()).collect();
    // Tied: one embedding matrix, no lm_head, as transformers saves it.
    assert!(!names.contains("lm_head.weight"));
    let expected: BTreeSet<String> = params(&model).into_iter().map(|(n, ..)| n).collect();
    assert_eq!(names, expected);
    // q_proj is [in 32, out 4·12] here, [48, 32] in the file, and its row j is our column j.
    let q = file
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!((q.dtype(), q.shape()), (Dtype::F32, &[48, 32][..]));
    let ours = params(&model)
        .into_iter()
        .find(|(n, ..)| n == "model.layers.0.self_attn.q_proj.weight")
        .unwrap()
        .2;
    let file_value = |row: usize, col: usize| {
        let at = (row * 32 + col) * 4;
        f32::from_le_bytes(q.data()[at..at + 4].try_into().unwrap())
    };
    assert_eq!(file_value(5, 7).to_bits(), ours[7 * 48 + 5].to_bits());
    assert_eq!(file_value(47, 31).to_bits(), ours[31 * 48 + 47].to_bits());
    let embed = file.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(embed.shape(), &[80, 32]);
    let bias = file.tensor("model.layers.1.self_attn.k_proj.bias").unwrap();
    assert_eq!(bias.shape(), &[48]);
}

#[test]
fn bf16_export_rounds_every_weight_to_nearest_even() {
    let config = qwen3_qknorm();
    let model = causal_lm(&config, 7);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        dtype: ExportDtype::Bf16,
        ..ExportOptions::default()
    };
    hf::save_causal_lm(&model, dir.path(), &options).unwrap();
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert!(file.tensors().iter().all(|(_, t)| t.dtype() == Dtype::BF16));
    let written = hf::read_config(dir.path()).unwrap();
    assert_eq!(written.dtype.as_deref(), Some("bfloat16"));

    let (loaded_config, loaded) = hf::load_causal_lm(dir.path(), &Device::flex()).unwrap();
    assert_eq!(loaded_config, config);
    for ((name, _, ours), (_, _, theirs)) in params(&model).iter().zip(&params(&loaded)) {
        let rounded: Vec<f32> = ours.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
        assert_eq!(bits(&rounded), bits(theirs), "{name}");
        assert_ne!(bits(ours), bits(theirs), "{name} should lose bits in bf16");
    }
    let (max_diff, rel) = differences(&logits(&loaded), &logits(&model));
    println!("bf16 export: max |Δlogit| {max_diff:.3e}, relative {rel:.3e}");
    assert!(rel < 2e-2, "bf16 logits differ by {rel:e} relative");
}

#[test]
fn value_model_round_trips_as_sequence_classification() {
    let config = qwen2_bias_tied();
    let critic = value_model(&config, 11);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        token_ids: TokenIds {
            pad: Some(0),
            ..TokenIds::default()
        },
        ..ExportOptions::default()
    };
    hf::save_value_model(&critic, dir.path(), &options).unwrap();
    let json = read_json(&dir.path().join("config.json"));
    assert_eq!(
        json["architectures"],
        json!(["Qwen2ForSequenceClassification"])
    );
    assert_eq!(json["num_labels"], json!(1));
    assert_eq!(json["id2label"], json!({"0": "LABEL_0"}));
    assert_eq!(json["pad_token_id"], json!(0));
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("score.weight").unwrap().shape(), &[1, 32]);
    assert!(file.tensor("lm_head.weight").is_err());

    let (loaded_config, loaded) = hf::load_value_model(dir.path(), &Device::flex()).unwrap();
    assert_eq!(loaded_config, config);
    assert_eq!(bits(&values(&critic)), bits(&values(&loaded)));
    // The causal-LM loader refuses it: it has no language-model head.
    assert!(hf::load_causal_lm(dir.path(), &Device::flex()).is_err());
}

#[test]
fn base_config_keys_are_kept_and_function_keys_replaced() {
    let mut base = hf::read_config_json(fixture("qwen2_bias_tied")).unwrap();
    let edits = json!({
        "my_custom_key": {"kept": true},
        "bos_token_id": 5,
        "eos_token_id": [6, 7],
        "hidden_size": 999,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0},
        "use_sliding_window": true,
        "sliding_window": 16,
        "max_window_layers": 0,
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "bitsandbytes"},
    });
    for (key, value) in edits.as_object().unwrap() {
        base[key] = value.clone();
    }
    let config = qwen2_bias_tied();
    let model = causal_lm(&config, 5);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        base_config: Some(base.clone()),
        token_ids: TokenIds {
            pad: Some(3),
            ..TokenIds::default()
        },
        ..ExportOptions::default()
    };
    hf::save_causal_lm(&model, dir.path(), &options).unwrap();
    let json = read_json(&dir.path().join("config.json"));
    // Kept from the base config.
    assert_eq!(json["my_custom_key"], json!({"kept": true}));
    assert_eq!(json["bos_token_id"], json!(5));
    assert_eq!(json["eos_token_id"], json!([6, 7]));
    assert_eq!(json["transformers_version"], base["transformers_version"]);
    // Given in the options, or describing our model.
    assert_eq!(json["pad_token_id"], json!(3));
    assert_eq!(json["hidden_size"], json!(32));
    assert_eq!(json["head_dim"], json!(12));
    assert_eq!(json["use_sliding_window"], json!(false));
    assert_eq!(json["torch_dtype"], json!("float32"));
    assert_eq!(json["dtype"], json!("float32"));
    assert_eq!(
        json["rope_parameters"],
        json!({"rope_type": "default", "rope_theta": 1e6})
    );
    let object = json.as_object().unwrap();
    assert!(!object.contains_key("rope_scaling"));
    assert!(!object.contains_key("quantization_config"));
    let (loaded_config, loaded) = hf::load_causal_lm(dir.path(), &Device::flex()).unwrap();
    assert_eq!(loaded_config, config);
    assert_eq!(bits(&logits(&model)), bits(&logits(&loaded)));

    // A Mistral base config keeps its family for a model Mistral can compute.
    let options = ExportOptions {
        base_config: Some(hf::read_config_json(fixture("mistral_sharded_f16")).unwrap()),
        ..ExportOptions::default()
    };
    let model = causal_lm(&llama_untied(), 6);
    let dir = tempfile::tempdir().unwrap();
    hf::save_causal_lm(&model, dir.path(), &options).unwrap();
    let written = hf::read_config(dir.path()).unwrap();
    assert_eq!(written.architecture, "MistralForCausalLM");
    assert_eq!(written.transformer, llama_untied());
    let json = read_json(&dir.path().join("config.json"));
    assert_eq!(
        (&json["bos_token_id"], &json["eos_token_id"]),
        (&json!(1), &json!(2))
    );
}

#[test]
fn token_ids_not_given_are_null_without_a_base_config() {
    // transformers' LlamaConfig would otherwise assume BOS 1 and EOS 2.
    let model = causal_lm(&llama_untied(), 1);
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        token_ids: TokenIds {
            eos: Some(9),
            ..TokenIds::default()
        },
        ..ExportOptions::default()
    };
    hf::save_causal_lm(&model, dir.path(), &options).unwrap();
    let json = read_json(&dir.path().join("config.json"));
    assert_eq!(json["bos_token_id"], Value::Null);
    assert_eq!(json["eos_token_id"], json!(9));
    assert_eq!(json["pad_token_id"], Value::Null);
    assert!(json.as_object().unwrap().contains_key("bos_token_id"));
}

fn export_error(model: &CausalLm, options: &ExportOptions) -> (HfError, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let error = hf::save_causal_lm(model, &out, options).expect_err("export should be refused");
    assert!(
        !out.exists(),
        "nothing is written when the config is refused"
    );
    (error, dir)
}

fn config_key(error: &HfError) -> &str {
    match error {
        HfError::Config { key, .. } => key,
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn models_no_transformers_class_computes_are_refused() {
    // q/k norm with q/k/v bias: Qwen3 with bias would also add one on o_proj.
    let both = TransformerConfig {
        attention_bias: true,
        ..qwen3_qknorm()
    };
    let (error, _dir) = export_error(&causal_lm(&both, 0), &ExportOptions::default());
    assert_eq!(config_key(&error), "attention_bias", "{error}");
    assert!(error.to_string().contains("o_proj"), "{error}");

    let with_family = |family| ExportOptions {
        family: Some(family),
        ..ExportOptions::default()
    };
    let qwen2 = causal_lm(&qwen2_bias_tied(), 0);
    let llama = causal_lm(&llama_untied(), 0);
    let qwen3 = causal_lm(&qwen3_qknorm(), 0);
    let refused = [
        (&qwen2, with_family(HfFamily::Llama), "attention_bias"),
        (&qwen2, with_family(HfFamily::Mistral), "attention_bias"),
        (&llama, with_family(HfFamily::Qwen2), "attention_bias"),
        (&llama, with_family(HfFamily::Qwen3), "qk_norm"),
        (&qwen3, with_family(HfFamily::Llama), "qk_norm"),
    ];
    for (model, options, key) in refused {
        let (error, _dir) = export_error(model, &options);
        assert_eq!(config_key(&error), key, "{error}");
    }

    // A base config of another family or architecture.
    let qwen3_base = ExportOptions {
        base_config: Some(hf::read_config_json(fixture("qwen3_qknorm_bf16")).unwrap()),
        ..ExportOptions::default()
    };
    let (error, _dir) = export_error(&llama, &qwen3_base);
    assert_eq!(config_key(&error), "qk_norm", "{error}");
    let gpt2_base = ExportOptions {
        base_config: Some(json!({"architectures": ["GPT2LMHeadModel"]})),
        ..ExportOptions::default()
    };
    let (error, _dir) = export_error(&llama, &gpt2_base);
    assert_eq!(config_key(&error), "architectures", "{error}");
    assert!(error.to_string().contains("GPT2LMHeadModel"), "{error}");
    let not_an_object = ExportOptions {
        base_config: Some(json!([1, 2])),
        ..ExportOptions::default()
    };
    let (error, _dir) = export_error(&llama, &not_an_object);
    assert_eq!(config_key(&error), "(root)", "{error}");
}

#[test]
fn export_overwrites_a_previous_one_and_reports_unwritable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let first = causal_lm(&llama_untied(), 1);
    let second = causal_lm(&llama_untied(), 2);
    hf::save_causal_lm(&first, dir.path(), &ExportOptions::default()).unwrap();
    hf::save_causal_lm(&second, dir.path(), &ExportOptions::default()).unwrap();
    let (_, loaded) = hf::load_causal_lm(dir.path(), &Device::flex()).unwrap();
    assert_eq!(bits(&logits(&loaded)), bits(&logits(&second)));
    assert_eq!(file_names(dir.path()).len(), 2);

    let file = dir.path().join("config.json");
    let error = hf::save_causal_lm(&first, &file, &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&error, HfError::Io { path, .. } if *path == file),
        "{error}"
    );
}

#[test]
fn tokenizer_files_are_copied_and_generation_config_written() {
    let src = tempfile::tempdir().unwrap();
    for name in [
        "tokenizer.json",
        "merges.txt",
        "generation_config.json",
        "model.safetensors",
    ] {
        std::fs::write(src.path().join(name), format!("contents of {name}")).unwrap();
    }
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("export");
    let copied = hf::copy_tokenizer_files(src.path(), &out).unwrap();
    assert_eq!(
        copied,
        ["tokenizer.json", "merges.txt", "generation_config.json"]
    );
    assert_eq!(
        std::fs::read_to_string(out.join("merges.txt")).unwrap(),
        "contents of merges.txt"
    );
    assert_eq!(file_names(&out).len(), 3, "only tokenizer files are copied");

    let ids = TokenIds::of(&ByteTokenizer);
    assert_eq!(
        ids,
        TokenIds {
            bos: Some(256),
            eos: Some(257),
            pad: Some(258)
        }
    );
    hf::write_generation_config(dst.path(), &ids).unwrap();
    let json = read_json(&dst.path().join("generation_config.json"));
    assert_eq!(
        json,
        json!({"bos_token_id": 256, "eos_token_id": 257, "pad_token_id": 258})
    );
    let eos_only = TokenIds {
        eos: Some(2),
        ..TokenIds::default()
    };
    hf::write_generation_config(dst.path(), &eos_only).unwrap();
    let json = read_json(&dst.path().join("generation_config.json"));
    assert_eq!(json, json!({"eos_token_id": 2}));
}

#[test]
fn byte_tokenizer_json_maps_each_byte_to_its_id() {
    let dir = tempfile::tempdir().unwrap();
    hf::write_byte_tokenizer_files(dir.path()).unwrap();
    let tokenizer = read_json(&dir.path().join("tokenizer.json"));
    let vocab = tokenizer["model"]["vocab"].as_object().unwrap();
    let ids: BTreeSet<u64> = vocab.values().map(|id| id.as_u64().unwrap()).collect();
    assert_eq!(ids, (0..256).collect());
    assert!(vocab.keys().all(|token| token.chars().count() == 1));
    assert_eq!(
        (&vocab["A"], &vocab["Ġ"], &vocab["Ċ"]),
        (&json!(65), &json!(32), &json!(10))
    );
    let added: Vec<(u64, &str, bool)> = tokenizer["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["content"].as_str().unwrap(),
                t["special"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, &str, bool)> = hf::BYTE_TOKENIZER_SPECIAL_TOKENS
        .iter()
        .map(|&(id, name)| (u64::from(id), name, true))
        .collect();
    assert_eq!(added, expected);
    assert_eq!(added.len() + 256, ByteTokenizer::VOCAB_SIZE);
    let config = read_json(&dir.path().join("tokenizer_config.json"));
    assert_eq!(config["eos_token"], json!(expected[1].1));
}

/// Texts in several scripts, with whitespace, control bytes and special-token spellings.
const TOKENIZER_TEXTS: [&str; 5] = [
    "Hello, world!",
    "如何制作一杯好咖啡？",
    "  two spaces,\ttab,\nnewline and \u{7f}\u{0}",
    "text that spells <|eos|> and <|bos|>",
    "émigré Ω ∑ 🙂",
];

/// Ids to decode: specials dropped, a truncated UTF-8 sequence, a lone invalid byte.
const DECODE_IDS: [&[u32]; 3] = [
    &[256, 72, 105, 257, 258],
    &[0xE5, 0xA6, 65],
    &[0xF0, 0x9F, 0x99, 0x82, 0xFF],
];

#[test]
fn byte_tokenizer_files_load_as_the_byte_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    hf::write_byte_tokenizer_files(dir.path()).unwrap();
    hf::write_generation_config(dir.path(), &TokenIds::of(&ByteTokenizer)).unwrap();
    let loaded = HfTokenizer::from_dir(dir.path()).unwrap();
    let byte = ByteTokenizer;
    assert_eq!(loaded.vocab_size(), byte.vocab_size());
    assert_eq!(
        (loaded.bos_id(), loaded.eos_id(), loaded.pad_id()),
        (byte.bos_id(), byte.eos_id(), byte.pad_id())
    );
    for text in TOKENIZER_TEXTS {
        assert_eq!(loaded.encode(text), byte.encode(text), "{text:?}");
        assert_eq!(
            loaded.encode_prompt(text),
            byte.encode_prompt(text),
            "{text:?}"
        );
        assert_eq!(loaded.decode(&byte.encode(text)), text);
    }
    for ids in DECODE_IDS {
        assert_eq!(loaded.decode(ids), byte.decode(ids), "{ids:?}");
    }
}

// ---------------------------------------------------------------------------------------
// transformers

/// `PPO_RS_PYTHON` if set (it must then exist), else the repository's `.venv-fixtures`.
fn python() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PPO_RS_PYTHON").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PPO_RS_PYTHON={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let candidate = repo_root().join(".venv-fixtures/bin/python");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "PPO_RS_PYTHON is not set and {} does not exist",
            candidate.display()
        ))
    }
}

fn repo_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .expect("crates/<name> lies two levels below the root")
}

/// Greedy continuations of the left-padded `prompts`, each up to and including EOS.
fn greedy(model: &CausalLm, prompts: &[Vec<u32>], eos: u32, pad: u32) -> Vec<Vec<u32>> {
    let sampling = SamplingConfig {
        greedy: true,
        max_new_tokens: MAX_NEW_TOKENS,
        ..SamplingConfig::default()
    };
    let out = generate(model, prompts, &sampling, eos, pad, &mut Rng::new(0));
    (0..out.batch_size).map(|row| out.response(row)).collect()
}

/// The case for a causal LM exported to `dir/name`: logits and greedy tokens. Without an
/// EOS both sides generate the full length (`vocab_size` is an id no model produces).
fn causal_case(
    name: &str,
    model: &CausalLm,
    prompts: &[Vec<u32>],
    eos: Option<u32>,
    pad: u32,
) -> Value {
    let config = model.config();
    let no_eos = config.vocab_size as u32;
    json!({
        "name": name,
        "head": "causal_lm",
        "input_ids": INPUT_IDS,
        "logits": logits(model),
        "logits_shape": [INPUT_IDS.len(), INPUT_IDS[0].len(), config.vocab_size],
        "generation": {
            "prompts": prompts,
            "pad_token_id": pad,
            "eos_token_id": eos,
            "max_new_tokens": MAX_NEW_TOKENS,
            "tokens": greedy(model, prompts, eos.unwrap_or(no_eos), pad),
        },
    })
}

/// Exports one model of each family (one in bf16, one over a Mistral base config), a critic
/// and the byte-tokenizer model into `dir`; returns the expected outputs.
fn export_for_transformers(dir: &Path) -> Value {
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let mut cases = Vec::new();
    let f32_options = ExportOptions::default();

    let llama = causal_lm(&llama_untied(), 21);
    hf::save_causal_lm(&llama, dir.join("llama_untied"), &f32_options).unwrap();
    let mut case = causal_case("llama_untied", &llama, &prompts, None, 0);
    case["token_ids"] = json!({"bos": null, "eos": null, "pad": null});
    cases.push(case);

    let mistral_base = ExportOptions {
        base_config: Some(hf::read_config_json(fixture("mistral_sharded_f16")).unwrap()),
        ..ExportOptions::default()
    };
    let mistral = causal_lm(&llama_untied(), 22);
    hf::save_causal_lm(&mistral, dir.join("mistral_base_config"), &mistral_base).unwrap();
    cases.push(causal_case(
        "mistral_base_config",
        &mistral,
        &prompts,
        None,
        0,
    ));

    let qwen2 = causal_lm(&qwen2_bias_tied(), 23);
    hf::save_causal_lm(&qwen2, dir.join("qwen2_bias_tied"), &f32_options).unwrap();
    cases.push(causal_case("qwen2_bias_tied", &qwen2, &prompts, None, 0));

    // bf16: the reference is our model with the weights as written (read back).
    let qwen3 = causal_lm(&qwen3_qknorm(), 24);
    let bf16_options = ExportOptions {
        dtype: ExportDtype::Bf16,
        ..ExportOptions::default()
    };
    let qwen3_dir = dir.join("qwen3_qknorm_bf16");
    hf::save_causal_lm(&qwen3, &qwen3_dir, &bf16_options).unwrap();
    let (_, qwen3_rounded) = hf::load_causal_lm(&qwen3_dir, &Device::flex()).unwrap();
    cases.push(causal_case(
        "qwen3_qknorm_bf16",
        &qwen3_rounded,
        &prompts,
        None,
        0,
    ));

    let critic = value_model(&qwen2_bias_tied(), 25);
    let critic_options = ExportOptions {
        token_ids: TokenIds {
            pad: Some(0),
            ..TokenIds::default()
        },
        ..ExportOptions::default()
    };
    hf::save_value_model(&critic, dir.join("qwen2_value"), &critic_options).unwrap();
    cases.push(json!({
        "name": "qwen2_value",
        "head": "value",
        "input_ids": INPUT_IDS,
        "values": values(&critic),
        "values_shape": [INPUT_IDS.len(), INPUT_IDS[0].len()],
        "token_ids": {"bos": null, "eos": null, "pad": 0},
    }));

    cases.push(export_byte_model(&dir.join("byte_tokenizer_model")));

    // LoRA: the merged export is a plain checkpoint with the adapted model's logits, and the
    // PEFT adapter loaded by peft over the base export gives them too.
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        target_modules: ppo_models::LORA_TARGETS.map(String::from).to_vec(),
    };
    let base = causal_lm(&llama_untied(), 31);
    hf::save_causal_lm(&base, dir.join("lora_base"), &f32_options).unwrap();
    let adapted = lora_trained(base, &lora, 32);
    hf::save_causal_lm(&adapted, dir.join("lora_merged"), &f32_options).unwrap();
    cases.push(causal_case("lora_merged", &adapted, &prompts, None, 0));
    let adapter_dir = dir.join("lora_adapter");
    let base_dir = dir.join("lora_base").display().to_string();
    hf::save_peft_adapter(&adapted, &lora, &base_dir, &adapter_dir).unwrap();
    let mut case = causal_case("lora_adapter", &adapted, &prompts, None, 0);
    case["head"] = json!("peft");
    case["base"] = json!("lora_base");
    cases.push(case);
    json!({"rel_tol": 1e-4, "cases": cases})
}

/// The built-in default: a Qwen3-style model over [`ByteTokenizer`], with tokenizer files and
/// a generation config; generation starts from tokenized prompts and stops at EOS.
fn export_byte_model(dir: &Path) -> Value {
    let tok = ByteTokenizer;
    let model = causal_lm(&TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE), 26);
    let ids = TokenIds::of(&tok);
    let options = ExportOptions {
        token_ids: ids,
        ..ExportOptions::default()
    };
    hf::save_causal_lm(&model, dir, &options).unwrap();
    hf::write_byte_tokenizer_files(dir).unwrap();
    hf::write_generation_config(dir, &ids).unwrap();

    let texts = TOKENIZER_TEXTS;
    let prompts: Vec<Vec<u32>> = texts[..2].iter().map(|t| tok.encode_prompt(t)).collect();
    let mut case = causal_case("byte_tokenizer_model", &model, &prompts, Some(257), 258);
    case["token_ids"] = json!({"bos": 256, "eos": 257, "pad": 258});
    case["tokenizer"] = json!({
        "texts": texts,
        "ids": texts.iter().map(|t| tok.encode(t)).collect::<Vec<_>>(),
        "prompt_ids": texts.iter().map(|t| tok.encode_prompt(t)).collect::<Vec<_>>(),
        "decode": DECODE_IDS
            .iter()
            .map(|ids| json!({"ids": ids, "text": tok.decode(ids)}))
            .collect::<Vec<_>>(),
        "token_ids": {"bos": 256, "eos": 257, "pad": 258},
    });
    case
}

#[test]
fn exported_models_match_transformers() {
    let python = match python() {
        Ok(python) => python,
        Err(why) => {
            report_skip("ppo-models hf_export transformers check", &why);
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let expected = export_for_transformers(dir.path());
    let expected_path = dir.path().join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();
    let script = repo_root().join("scripts/check_hf_export.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .arg(&expected_path)
        .output()
        .unwrap_or_else(|err| panic!("failed to run {}: {err}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{stdout}\n{stderr}",
        python.display(),
        script.display(),
        output.status
    );
}

//! Parity of the DeBERTa-v2/v3 sequence classifier with transformers: tiny random checkpoints,
//! their tokenizer and transformers' ids and logits, written by
//! `scripts/make_deberta_fixtures.py` into `tests/fixtures/deberta` (no Python at test
//! time); and the loader's refusals of bad directories, naming the file and key.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ppo_models::hf::{self, HfError};
use ppo_models::{HfTokenizer, TokenizerError, log_bucket_position, to_f32_vec};
use serde::Deserialize;
use serde_json::Value;

#[path = "support/devices.rs"]
mod devices;

use devices::devices;

const CASES: [&str; 4] = [
    "v3_shared_c2p_p2c_bin",
    "unshared_c2p_types",
    "unshared_conv_embed_proj",
    "shared_p2c_buckets32",
];

/// Largest |ours − theirs| allowed, relative to the largest |theirs|.
const REL_TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/deberta")
        .join(name)
}

#[derive(Deserialize)]
struct Expected {
    pairs: Vec<(String, String)>,
    input_ids: Vec<Vec<u32>>,
    token_type_ids: Vec<Vec<u32>>,
    single_logits: Vec<f32>,
    right_padded: PaddedBatch,
    left_padded: PaddedBatch,
}

#[derive(Deserialize)]
struct PaddedBatch {
    input_ids: Vec<Vec<u32>>,
    token_type_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u8>>,
    logits: Vec<f32>,
}

fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// max |a − b| / max |b|
fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let diff = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let scale = theirs.iter().map(|b| b.abs()).fold(0.0, f32::max);
    diff / scale.max(f32::MIN_POSITIVE)
}

#[test]
fn tokenizer_pairs_match_transformers() {
    for case in CASES {
        let expected = expected(case);
        let tokenizer = HfTokenizer::from_dir(fixture(case)).unwrap();
        for (idx, (question, answer)) in expected.pairs.iter().enumerate() {
            let pair = tokenizer.encode_pair(question, answer).unwrap();
            assert_eq!(pair.ids, expected.input_ids[idx], "{case} pair {idx}");
            assert_eq!(
                pair.type_ids, expected.token_type_ids[idx],
                "{case} pair {idx}"
            );
        }
    }
}

#[test]
fn scores_match_transformers_alone_and_padded() {
    for ((backend, device), case) in devices()
        .into_iter()
        .flat_map(|d| CASES.map(|case| (d.clone(), case)))
    {
        let expected = expected(case);
        let (config, model) = hf::load_deberta(fixture(case), &device).unwrap();
        assert_eq!(config.num_labels, 1);
        let mut singles = Vec::new();
        for (ids, types) in expected.input_ids.iter().zip(&expected.token_type_ids) {
            let mask = vec![true; ids.len()];
            singles.extend(to_f32_vec(model.forward(ids, types, &mask, 1)));
        }
        let single_error = relative_error(&singles, &expected.single_logits);
        let mut batch_errors = Vec::new();
        for (side, batch) in [
            ("right", &expected.right_padded),
            ("left", &expected.left_padded),
        ] {
            let ids: Vec<u32> = batch.input_ids.concat();
            let types: Vec<u32> = batch.token_type_ids.concat();
            let mask: Vec<bool> = batch
                .attention_mask
                .concat()
                .iter()
                .map(|&m| m == 1)
                .collect();
            let logits = to_f32_vec(model.forward(&ids, &types, &mask, batch.input_ids.len()));
            let error = relative_error(&logits, &batch.logits);
            assert!(
                error < REL_TOL,
                "{case} on {backend}, {side}-padded: relative error {error}"
            );
            batch_errors.push((side, error));
        }
        println!(
            "{case} on {backend}: max relative error single {single_error:.2e}, {}",
            batch_errors
                .iter()
                .map(|(s, e)| format!("{s}-padded {e:.2e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(
            single_error < REL_TOL,
            "{case} on {backend}: relative error {single_error}"
        );
        // Padding on the right leaves every score as it is alone.
        let right = to_f32_vec({
            let b = &expected.right_padded;
            let mask: Vec<bool> = b.attention_mask.concat().iter().map(|&m| m == 1).collect();
            model.forward(
                &b.input_ids.concat(),
                &b.token_type_ids.concat(),
                &mask,
                b.input_ids.len(),
            )
        });
        assert!(
            relative_error(&right, &singles) < 1e-5,
            "{case} on {backend}: padding changed a score"
        );
    }
}

#[test]
fn log_buckets_match_transformers() {
    let text = std::fs::read_to_string(fixture("buckets.json")).unwrap();
    let tables: Vec<Value> = serde_json::from_str(&text).unwrap();
    for table in tables {
        let buckets = table["position_buckets"].as_u64().unwrap() as usize;
        let max_position = table["max_relative_positions"].as_u64().unwrap() as usize;
        let first = table["first_relative_position"].as_i64().unwrap();
        for (offset, expected) in table["buckets"].as_array().unwrap().iter().enumerate() {
            let relative = first + offset as i64;
            assert_eq!(
                log_bucket_position(relative, buckets, max_position),
                expected.as_i64().unwrap(),
                "buckets {buckets}, max {max_position}, relative position {relative}"
            );
        }
    }
}

/// A copy of a fixture case in a temporary directory.
fn copy_case(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(case)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

fn load_error(dir: &Path) -> HfError {
    hf::load_deberta(dir, &Device::flex()).unwrap_err()
}

#[test]
fn unsupported_options_are_refused_naming_file_and_key() {
    for (key, value, needle) in [
        ("pos_att_type", serde_json::json!(["c2p", "p2p"]), "p2p"),
        ("num_labels", serde_json::json!(2), "2 labels"),
        ("hidden_act", serde_json::json!("swish"), "swish"),
        (
            "norm_rel_ebd",
            serde_json::json!("batch_norm"),
            "batch_norm",
        ),
        ("conv_kernel_size", serde_json::json!(4), "even"),
        ("pooler_hidden_size", serde_json::json!(7), "hidden_size"),
        ("model_type", serde_json::json!("deberta"), "deberta-v2"),
    ] {
        let dir = copy_case("unshared_c2p_types");
        edit_config(dir.path(), |map| {
            map.insert(key.into(), value.clone());
        });
        let err = load_error(dir.path());
        let message = err.to_string();
        assert!(
            matches!(&err, HfError::Config { key: k, .. } if k == key),
            "{key}: {message}"
        );
        assert!(
            message.contains("config.json") && message.contains(needle),
            "{message}"
        );
    }
    // More than one label, given by id2label alone.
    let dir = copy_case("unshared_c2p_types");
    edit_config(dir.path(), |map| {
        map.remove("num_labels");
        map.insert(
            "id2label".into(),
            serde_json::json!({"0": "bad", "1": "good"}),
        );
    });
    let message = load_error(dir.path()).to_string();
    assert!(
        message.contains("id2label") && message.contains("2 labels"),
        "{message}"
    );
}

#[test]
fn missing_and_mismatched_tensors_are_refused_naming_file_and_tensor() {
    // A shape that disagrees with the checkpoint.
    let dir = copy_case("unshared_c2p_types");
    edit_config(dir.path(), |map| {
        map.insert("intermediate_size".into(), serde_json::json!(40));
    });
    let err = load_error(dir.path());
    let message = err.to_string();
    assert!(
        matches!(&err, HfError::ShapeMismatch { tensor, .. }
            if tensor == "deberta.encoder.layer.0.intermediate.dense.weight"),
        "{message}"
    );
    assert!(message.contains("model.safetensors"), "{message}");

    // A tensor the configuration needs and the file lacks (separate position keys).
    let dir = copy_case("shared_p2c_buckets32");
    edit_config(dir.path(), |map| {
        map.insert("share_att_key".into(), serde_json::json!(false));
    });
    let err = load_error(dir.path());
    assert!(
        matches!(&err, HfError::MissingTensor { tensor, path }
            if tensor == "deberta.encoder.layer.0.attention.self.pos_query_proj.weight"
                && path.ends_with("model.safetensors")),
        "{err}"
    );

    // A tensor the model has no parameter for (relative attention switched off).
    let dir = copy_case("v3_shared_c2p_p2c_bin");
    edit_config(dir.path(), |map| {
        map.insert("relative_attention".into(), serde_json::json!(false));
    });
    let err = load_error(dir.path());
    assert!(
        matches!(&err, HfError::UnexpectedTensor { tensor, path }
            if tensor.starts_with("deberta.encoder") && path.ends_with("pytorch_model.bin")),
        "{err}"
    );

    // No weights at all.
    let dir = copy_case("v3_shared_c2p_p2c_bin");
    std::fs::remove_file(dir.path().join("pytorch_model.bin")).unwrap();
    let message = load_error(dir.path()).to_string();
    assert!(message.contains("pytorch_model.bin"), "{message}");
}

#[test]
fn sentencepiece_only_directories_say_how_to_convert() {
    let dir = copy_case("shared_p2c_buckets32");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("spm.model"), b"not read").unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, TokenizerError::OnlySentencePiece { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("spm.model") && message.contains("save_pretrained"),
        "{message}"
    );
}

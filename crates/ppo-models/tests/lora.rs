//! LoRA adapters: an adapted model computes its base's function until the adapters move;
//! only the adapters (and a critic's value head) receive gradients; merging folds them into
//! the weights without changing the function; the PEFT file holds PyTorch-layout factors.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use ppo_models::hf;
use ppo_models::{
    ByteTokenizer, CausalLm, LoraConfig, Rng, TransformerConfig, ValueModel, adapter_counts,
    merged, to_f32_vec,
};

fn config() -> TransformerConfig {
    TransformerConfig {
        tie_word_embeddings: false,
        ..TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE)
    }
}

fn lora(targets: &[&str]) -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        target_modules: targets.iter().map(|t| t.to_string()).collect(),
    }
}

const IDS: [u32; 12] = [5, 42, 17, 99, 3, 250, 7, 7, 64, 128, 11, 2];

fn logits(model: &CausalLm) -> Vec<f32> {
    to_f32_vec(model.forward(&IDS, &[true; 12], 2, None))
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Every float parameter's dotted path and shape.
#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    found: BTreeMap<String, (ParamId, Vec<usize>)>,
}

impl ModuleVisitor for Shapes {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let dims = param.lazy_shape().as_slice().to_vec();
        self.found.insert(self.path.join("."), (param.id, dims));
    }
}

fn shapes<M: Module>(module: &M) -> BTreeMap<String, (ParamId, Vec<usize>)> {
    let mut s = Shapes::default();
    module.visit(&mut s);
    s.found
}

/// Sets every `B` factor to draws of N(0, 0.05²): the adapters as training would leave them.
struct MoveB {
    path: Vec<String>,
    rng: Rng,
}

impl ModuleMapper for MoveB {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.path.join(".").ends_with(".lora.b") {
            return param;
        }
        let rng = &mut self.rng;
        param.map(|b| {
            let dims = b.dims();
            let n: usize = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.05) as f32).collect();
            Tensor::from_data(TensorData::new(v, dims), &b.device())
                .set_require_grad(b.is_require_grad())
        })
    }
}

fn moved<M: Module>(model: M) -> M {
    model.map(&mut MoveB {
        path: Vec::new(),
        rng: Rng::new(99),
    })
}

#[test]
fn adapters_sit_on_the_targeted_projections_with_peft_shapes() {
    let device = Device::flex();
    let c = config();
    let base = CausalLm::init(&c, &mut Rng::new(1), &device);
    let adapted = base
        .clone()
        .with_lora(&lora(&["q_proj", "v_proj"]), &mut Rng::new(2));
    let found = shapes(&adapted);
    let adapters: Vec<_> = found.keys().filter(|p| p.contains(".lora.")).collect();
    assert_eq!(adapters.len(), 2 * 2 * c.num_hidden_layers, "{adapters:?}");
    let q = c.num_attention_heads * c.head_dim;
    let kv = c.num_key_value_heads * c.head_dim;
    let h = c.hidden_size;
    for layer in 0..c.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{layer}.self_attn.{s}");
        assert_eq!(found[&p("q_proj.weight.lora.a")].1, vec![h, 4]);
        assert_eq!(found[&p("q_proj.weight.lora.b")].1, vec![4, q]);
        assert_eq!(found[&p("v_proj.weight.lora.a")].1, vec![h, 4]);
        assert_eq!(found[&p("v_proj.weight.lora.b")].1, vec![4, kv]);
        assert!(!found.contains_key(&p("k_proj.weight.lora.a")));
    }
    let (all, adapter) = adapter_counts(&adapted);
    let per_layer = h * 4 + 4 * q + h * 4 + 4 * kv;
    assert_eq!(adapter, per_layer * c.num_hidden_layers);
    assert_eq!(adapter, lora(&["q_proj", "v_proj"]).num_params(&c));
    let every = lora(&[
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]);
    let all_adapted =
        CausalLm::init(&c, &mut Rng::new(1), &device).with_lora(&every, &mut Rng::new(2));
    assert_eq!(adapter_counts(&all_adapted).1, every.num_params(&c));
    assert_eq!(all, adapter_counts(&base).0 + adapter);
    // The same seed draws the same A.
    let again = CausalLm::init(&c, &mut Rng::new(1), &device)
        .with_lora(&lora(&["q_proj", "v_proj"]), &mut Rng::new(2));
    let a = |m: &CausalLm| to_f32_vec(merged(moved(m.clone())).forward(&IDS, &[true; 12], 2, None));
    assert_eq!(a(&adapted), a(&again));
}

#[test]
fn bad_settings_name_the_key() {
    let mut c = lora(&["q_proj", "qkv"]);
    let e = c.validate("lora").unwrap_err().to_string();
    assert!(
        e.contains("lora.target_modules") && e.contains("\"qkv\"") && e.contains("down_proj"),
        "{e}"
    );
    c.target_modules.clear();
    assert!(
        c.validate("lora")
            .unwrap_err()
            .to_string()
            .contains("lora.target_modules: is empty")
    );
    let zero = LoraConfig {
        rank: 0,
        ..lora(&["q_proj"])
    };
    assert!(
        zero.validate("lora")
            .unwrap_err()
            .to_string()
            .contains("lora.rank")
    );
    let nan = LoraConfig {
        alpha: f64::NAN,
        ..lora(&["q_proj"])
    };
    assert!(
        nan.validate("lora")
            .unwrap_err()
            .to_string()
            .contains("lora.alpha")
    );
    assert!(lora(&["q_proj", "down_proj"]).validate("lora").is_ok());
}

#[test]
fn an_adapted_model_computes_its_base_until_the_adapters_move_and_merging_keeps_the_function() {
    let device = Device::flex();
    let all = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];
    let base = CausalLm::init(&config(), &mut Rng::new(1), &device);
    let adapted = base.clone().with_lora(&lora(&all), &mut Rng::new(2));
    // B = 0: exactly the base (W + 0).
    assert_eq!(logits(&base), logits(&adapted));
    let trained = moved(adapted);
    let with_adapters = logits(&trained);
    let change = max_rel_diff(&logits(&base), &with_adapters);
    assert!(
        change > 1e-3,
        "the adapters should change the logits, moved {change}"
    );
    let folded = merged(trained.clone());
    assert!(shapes(&folded).keys().all(|p| !p.contains(".lora.")));
    assert_eq!(shapes(&folded).len(), shapes(&base).len());
    // The merged weight is the one the adapted forward computes: equal logits.
    assert_eq!(logits(&folded), with_adapters);
    // And the base is untouched by merging a clone.
    assert_eq!(logits(&trained), with_adapters);
}

#[test]
fn only_the_adapters_and_the_value_head_get_gradients() {
    let device = Device::flex().autodiff();
    let c = config();
    let policy = CausalLm::init(&c, &mut Rng::new(1), &device)
        .with_lora(&lora(&["q_proj", "down_proj"]), &mut Rng::new(2));
    let policy = moved(policy);
    let loss = policy
        .forward(&IDS, &[true; 12], 2, None)
        .powi_scalar(2)
        .mean();
    let grads = GradientsParams::from_grads(loss.backward(), &policy);
    for (path, (id, _)) in shapes(&policy) {
        let has = grads.get::<2>(id).is_some() || grads.get::<1>(id).is_some();
        assert_eq!(has, path.contains(".lora."), "{path}: gradient {has}");
    }

    let critic = ValueModel::init(&c, &mut Rng::new(3), &device)
        .with_lora(&lora(&["v_proj"]), &mut Rng::new(4));
    let loss = critic.forward(&IDS, &[true; 12], 2).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &critic);
    let mut trained = Vec::new();
    for (path, (id, _)) in shapes(&critic) {
        if grads.get::<2>(id).is_some() || grads.get::<1>(id).is_some() {
            trained.push(path);
        }
    }
    // With B = 0, A's gradient is zero but present.
    let mut expected: Vec<String> = (0..c.num_hidden_layers)
        .flat_map(|l| {
            ["a", "b"].map(|f| format!("model.layers.{l}.self_attn.v_proj.weight.lora.{f}"))
        })
        .collect();
    expected.push("score.weight".into());
    expected.sort();
    trained.sort();
    assert_eq!(trained, expected);
}

#[test]
fn the_peft_adapter_file_holds_pytorch_layout_factors_and_a_loadable_config() {
    let device = Device::flex();
    let c = config();
    let cfg = lora(&["q_proj", "v_proj"]);
    let model =
        moved(CausalLm::init(&c, &mut Rng::new(1), &device).with_lora(&cfg, &mut Rng::new(2)));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("adapter");
    hf::save_peft_adapter(&model, &cfg, "base-dir", &out).unwrap();
    let bytes = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(names.len(), 2 * 2 * c.num_hidden_layers);
    let found = shapes(&model);
    let q = c.num_attention_heads * c.head_dim;
    let a_name = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
    let b_name = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight";
    let a = file.tensor(a_name).unwrap();
    let b = file.tensor(b_name).unwrap();
    assert_eq!(a.shape(), [4, c.hidden_size]);
    assert_eq!(b.shape(), [q, 4]);
    // lora_B.weight[o][k] = our b[k][o].
    let ours = {
        let mut v = None;
        model.visit(&mut FindB {
            path: Vec::new(),
            want: "model.layers.1.self_attn.q_proj.weight.lora.b",
            out: &mut v,
        });
        v.unwrap()
    };
    let file_b: Vec<f32> = b
        .data()
        .chunks(4)
        .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .collect();
    for o in 0..q {
        for k in 0..4 {
            assert_eq!(file_b[o * 4 + k], ours[k * q + o]);
        }
    }
    assert!(found.contains_key("model.layers.1.self_attn.q_proj.weight.lora.b"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    assert_eq!(config["base_model_name_or_path"], "base-dir");
    // A model without adapters has nothing to write.
    let plain = CausalLm::init(&c, &mut Rng::new(1), &device);
    let e = hf::save_peft_adapter(&plain, &cfg, "b", dir.path().join("none")).unwrap_err();
    assert!(e.to_string().contains("no adapter"), "{e}");
}

struct FindB<'a> {
    path: Vec<String>,
    want: &'a str,
    out: &'a mut Option<Vec<f32>>,
}

impl ModuleVisitor for FindB<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.join(".") == self.want {
            *self.out = Some(to_f32_vec(param.val()));
        }
    }
}

#[test]
fn a_merged_export_reloads_with_the_adapted_logits() {
    let device = Device::flex();
    let c = config();
    let model = moved(
        CausalLm::init(&c, &mut Rng::new(1), &device)
            .with_lora(&lora(&["q_proj", "o_proj", "up_proj"]), &mut Rng::new(2)),
    );
    let dir = tempfile::tempdir().unwrap();
    hf::save_causal_lm(&model, dir.path(), &hf::ExportOptions::default()).unwrap();
    let (_, reloaded) = hf::load_causal_lm(dir.path(), &device).unwrap();
    let ours = logits(&model);
    let theirs = logits(&reloaded);
    let diff = max_rel_diff(&ours, &theirs);
    assert!(diff <= 1e-6, "merged export logits differ by {diff}");
}

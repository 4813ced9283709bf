use ppo_models::{ChatMessage, HfTokenizer, PromptFormat};
#[test]
fn real() {
    for name in ["qwen3_real", "qwen3_train"] {
        let dir = std::path::Path::new("/tmp/realtpl").join(name);
        let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let tok = HfTokenizer::from_dir(&dir).unwrap();
        let mut n = 0;
        for c in e["chats"].as_array().unwrap() {
            let et = c["enable_thinking"].as_bool();
            let t = tok.clone().with_prompt_format(PromptFormat { use_chat_template: true, system_prompt: None, enable_thinking: et }).unwrap();
            let msgs: Vec<ChatMessage> = c["messages"].as_array().unwrap().iter().map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
            let agp = c["add_generation_prompt"].as_bool().unwrap();
            assert_eq!(t.render_chat(&msgs, agp).unwrap(), c["text"].as_str().unwrap(), "{name}");
            let ids: Vec<u32> = c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(t.encode_chat(&msgs, agp).unwrap(), ids);
            n += 1;
        }
        eprintln!("{name}: {n} chats match");
    }
}

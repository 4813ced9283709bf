//! jsonl and json files: the GSM8K-like fixtures, the layouts and line endings people write,
//! and the error for each way a file can be wrong, naming file, line or row, and field.

mod common;

use std::path::{Path, PathBuf};

use common::{expected_gsm8k, fixture, source};
use ppo_data::{DataError, DataFormat, DataSource, Location, Record, load_source};
use tempfile::TempDir;

/// Writes `contents` to `name` in a fresh directory (kept alive by the returned guard).
fn file(name: &str, contents: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

fn record(input: &str, output: Option<&str>) -> Record {
    Record {
        input: input.into(),
        output: output.map(str::to_owned),
    }
}

fn read(path: &Path, input: &str, output: Option<&str>) -> Result<Vec<Record>, DataError> {
    load_source(&source(path, input, output))
}

#[test]
fn gsm8k_fixtures_read_like_the_parquet_ones() {
    let expected = expected_gsm8k();
    assert_eq!(
        read(&fixture("gsm8k.jsonl"), "question", Some("answer")).unwrap(),
        expected
    );
    assert_eq!(
        read(&fixture("gsm8k.json"), "question", Some("answer")).unwrap(),
        expected
    );
    let ids: Vec<String> = read(&fixture("gsm8k.json"), "id", None)
        .unwrap()
        .into_iter()
        .map(|r| r.input)
        .collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4"]);
}

#[test]
fn jsonl_skips_blank_lines_and_takes_crlf_and_a_bom() {
    let (_dir, path) = file(
        "p.jsonl",
        b"\xEF\xBB\xBF{\"prompt\": \"a\"}\r\n\r\n   \n{\"prompt\": \"b\\n\", \"x\": 1}\r\n{\"prompt\": \" c \"}",
    );
    assert_eq!(
        load_source(&DataSource::new(&path)).unwrap(),
        [record("a", None), record("b\n", None), record(" c ", None)]
    );
}

#[test]
fn jsonl_max_samples_reads_no_further() {
    let (_dir, path) = file("p.jsonl", b"{\"q\": \"1\"}\n\n{\"q\": \"2\"}\nnot json\n");
    let mut s = source(&path, "q", None);
    s.max_samples = Some(2);
    assert_eq!(
        load_source(&s).unwrap(),
        [record("1", None), record("2", None)]
    );
    s.max_samples = Some(3);
    let err = load_source(&s).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::InvalidJson {
                line: 4,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("invalid JSON in {} at line 4, column 2", path.display())
    );
}

#[test]
fn invalid_json_names_file_and_line() {
    let (_dir, path) = file("bad.jsonl", b"{\"q\": \"1\"}\n{\"q\": \"2\",}\n");
    let err = read(&path, "q", None).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidJson { line: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("invalid JSON in {} at line 2", path.display()))
    );

    let (_dir, path) = file("bad.json", b"[\n  {\"q\": \"1\"},\n  {\"q\": 2\n]\n");
    let err = read(&path, "q", None).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidJson { line: 4, .. }),
        "{err:?}"
    );

    let (_dir, path) = file("latin1.jsonl", b"{\"q\": \"ok\"}\n{\"q\": \"caf\xe9\"}\n");
    let err = read(&path, "q", None).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidJson { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn records_must_be_objects() {
    let (_dir, path) = file("a.jsonl", b"{\"q\": \"1\"}\n[\"q\"]\n");
    let err = read(&path, "q", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 2: expected a JSON object, found an array",
            path.display()
        )
    );
    let (_dir, path) = file("a.json", b"[{\"q\": \"1\"}, {\"q\": \"2\"}, \"q\"]");
    let err = read(&path, "q", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 2: expected a JSON object, found a string",
            path.display()
        )
    );
}

#[test]
fn json_layouts() {
    let (_dir, path) = file("a.json", br#"{"train": [{"q": "x", "a": 3}]}"#);
    assert_eq!(
        read(&path, "q", Some("a")).unwrap(),
        [record("x", Some("3"))]
    );
    let (_dir, path) = file("b.json", br#"{"q": "x", "a": "y"}"#);
    let err = read(&path, "q", None).unwrap_err();
    assert!(matches!(err, DataError::JsonLayout { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "unexpected layout of {}: expected an array of objects, or an object with a single array field such as {{\"data\": [...]}}, found an object with fields `a`, `q`",
            path.display()
        )
    );
    let (_dir, path) = file("c.json", b"[]");
    let err = read(&path, "q", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("dataset file {} has no records", path.display())
    );
}

#[test]
fn scalars_become_text_and_null_output_is_no_reference() {
    let (_dir, path) = file(
        "s.jsonl",
        concat!(
            r#"{"q": 7, "a": 72.0}"#,
            "\n",
            r#"{"q": true, "a": null}"#,
            "\n{\"q\": -0.5, \"a\": \"#### 1\"}\n",
        )
        .as_bytes(),
    );
    assert_eq!(
        read(&path, "q", Some("a")).unwrap(),
        [
            record("7", Some("72")),
            record("true", None),
            record("-0.5", Some("#### 1"))
        ]
    );
}

#[test]
fn wrong_types_name_file_line_and_field() {
    let (_dir, path) = file(
        "w.jsonl",
        b"{\"q\": \"1\", \"a\": \"x\"}\n{\"q\": null, \"a\": \"y\"}\n",
    );
    let err = read(&path, "q", Some("a")).unwrap_err();
    assert!(matches!(
        err,
        DataError::WrongType {
            location: Location::Line(2),
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 2: field `q` is null, expected a string, number or boolean",
            path.display()
        )
    );
    let (_dir, path) = file("w.json", br#"[{"q": "1", "a": ["x"]}]"#);
    let err = read(&path, "q", Some("a")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 0: field `a` is an array, expected a string, number or boolean",
            path.display()
        )
    );
}

#[test]
fn missing_fields_list_what_is_there() {
    let (_dir, path) = file(
        "m.jsonl",
        br#"{"question": "1", "answer": "2"}
{"question": "3", "meta": {"answer": "4", "src": {"id": 5}}}
"#,
    );
    let err = read(&path, "question", Some("answer")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 2: no field `answer` (available: meta.answer, meta.src.id, question)",
            path.display()
        )
    );
    let err = load_source(&DataSource::new(&path)).unwrap_err();
    assert!(matches!(
        &err,
        DataError::MissingField { location: Some(Location::Line(1)), field, .. } if field == "prompt"
    ));
}

#[test]
fn dotted_paths_reach_into_objects() {
    let (_dir, path) = file(
        "n.jsonl",
        br#"{"meta": {"question": "q0", "gold": {"value": 3}}, "meta.question": "literal"}
{"meta": {"question": "q1", "gold": {"value": "4"}}}
"#,
    );
    // A key spelled with the dot wins where it exists.
    assert_eq!(
        read(&path, "meta.question", Some("meta.gold.value")).unwrap(),
        [record("literal", Some("3")), record("q1", Some("4"))]
    );
    let err = read(&path, "meta.gold", None).unwrap_err();
    assert!(
        err.to_string().contains("field `meta.gold` is an object"),
        "{err}"
    );
}

#[test]
fn empty_files_are_errors() {
    for contents in [&b""[..], b"\n\n  \n"] {
        let (_dir, path) = file("e.jsonl", contents);
        let err = read(&path, "q", None).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}

#[test]
fn type_overrides_the_extension() {
    let (_dir, path) = file("prompts.txt", b"{\"q\": \"x\"}\n");
    let err = read(&path, "q", None).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }));
    let mut s = source(&path, "q", None);
    s.format = Some(DataFormat::Jsonl);
    assert_eq!(load_source(&s).unwrap(), [record("x", None)]);
    // A jsonl file read as json is one document followed by more: a JSON error at line 2.
    let (_dir, path) = file("two.json", b"{\"q\": \"x\"}\n{\"q\": \"y\"}\n");
    let err = read(&path, "q", None).unwrap_err();
    assert!(
        matches!(err, DataError::InvalidJson { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn config_tables_deserialise_from_toml() {
    #[derive(serde::Deserialize)]
    struct Data {
        sources: Vec<DataSource>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        data: Data,
    }
    let config: Config = toml::from_str(
        r#"
        [[data.sources]]
        path = "data/gsm8k/train.parquet"
        type = "parquet"
        input = "question"
        output = "answer"

        [[data.sources]]
        path = "extra.jsonl"
        max_samples = 10
        "#,
    )
    .unwrap();
    let [gsm8k, extra] = &config.data.sources[..] else {
        panic!("two sources")
    };
    assert_eq!(
        gsm8k,
        &DataSource {
            path: "data/gsm8k/train.parquet".into(),
            format: Some(DataFormat::Parquet),
            input: "question".into(),
            output: Some("answer".into()),
            max_samples: None,
        }
    );
    assert_eq!(extra.format, None);
    assert_eq!(extra.input, "prompt");
    assert_eq!(extra.max_samples, Some(10));
    let err = toml::from_str::<Config>("[[data.sources]]\npath = \"a\"\nfield = \"q\"\n")
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown field `field`"), "{err}");
}

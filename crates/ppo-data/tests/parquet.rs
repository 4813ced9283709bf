//! Parquet files written by pyarrow (scripts/make_data_fixtures.py): every codec and encoding
//! we support reads the exact records, and every error names the file and the field.

mod common;

use std::error::Error;

use common::{expected_gsm8k, fixture, source};
use ppo_data::{DataError, DataFormat, Location, Record, load_source, load_sources};

fn records(rows: &[(&str, Option<&str>)]) -> Vec<Record> {
    rows.iter()
        .map(|(input, output)| Record {
            input: (*input).into(),
            output: output.map(str::to_owned),
        })
        .collect()
}

/// The message of `err` followed by those of its sources, as `main` prints it.
fn chain(err: &DataError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[test]
fn gsm8k_in_every_supported_codec_and_encoding() {
    let expected = expected_gsm8k();
    assert_eq!(expected.len(), 5);
    assert_eq!(
        expected[1].input,
        "A café sells a croissant for €2 and a coffee for €3. What do 4 of each cost?"
    );
    assert!(
        expected[0]
            .output
            .as_deref()
            .unwrap()
            .ends_with("\n#### 54")
    );
    for name in [
        "gsm8k_snappy.parquet",
        "gsm8k_gzip.parquet",
        "gsm8k_zstd.parquet",
        "gsm8k_lz4.parquet",
        "gsm8k_uncompressed.parquet",
        "gsm8k_plain.parquet",
        "gsm8k_page_v2.parquet",
        "gsm8k_large_string.parquet",
    ] {
        let read = load_source(&source(fixture(name), "question", Some("answer")))
            .unwrap_or_else(|e| panic!("{name}: {}", chain(&e)));
        assert_eq!(read, expected, "{name}");
    }
}

#[test]
fn max_samples_stops_inside_and_across_row_groups() {
    // gsm8k_snappy has row groups of 3 and 2 rows, gsm8k_plain of 2, 2 and 1.
    let expected = expected_gsm8k();
    for name in ["gsm8k_snappy.parquet", "gsm8k_plain.parquet"] {
        for n in [1, 2, 3, 4, 5, 6, 100] {
            let mut s = source(fixture(name), "question", Some("answer"));
            s.max_samples = Some(n);
            let read = load_source(&s).unwrap();
            assert_eq!(read, expected[..n.min(5)], "{name}, max_samples = {n}");
        }
    }
}

#[test]
fn without_output_there_is_no_reference() {
    let read = load_source(&source(fixture("gsm8k_zstd.parquet"), "answer", None)).unwrap();
    let expected: Vec<Record> = expected_gsm8k()
        .into_iter()
        .map(|r| Record {
            input: r.output.unwrap(),
            output: None,
        })
        .collect();
    assert_eq!(read, expected);
}

#[test]
fn numbers_and_booleans_become_text() {
    let path = fixture("numbers.parquet");
    let column = |name: &str| -> Vec<String> {
        load_source(&source(&path, name, None))
            .unwrap()
            .into_iter()
            .map(|r| r.input)
            .collect()
    };
    assert_eq!(column("answer"), ["72", "-3", "1000000000000"]);
    assert_eq!(column("small"), ["1", "2", "3"]);
    assert_eq!(column("unsigned"), ["7", "0", "4000000000"]);
    assert_eq!(column("score"), ["0.5", "72", "-1.25"]);
    assert_eq!(column("ratio"), ["0.1", "2", "3.5"]);
    assert_eq!(column("correct"), ["true", "false", "true"]);
    let read = load_source(&source(&path, "question", Some("answer"))).unwrap();
    assert_eq!(
        read,
        records(&[
            ("one", Some("72")),
            ("two", Some("-3")),
            ("three", Some("1000000000000"))
        ])
    );
}

#[test]
fn binary_columns_are_read_when_they_hold_utf8() {
    let path = fixture("numbers.parquet");
    let mut s = source(&path, "question", Some("blob"));
    s.max_samples = Some(1);
    assert_eq!(
        load_source(&s).unwrap(),
        records(&[("one", Some("bytes 0"))])
    );
    s.max_samples = None;
    let err = load_source(&s).unwrap_err();
    assert!(matches!(
        &err,
        DataError::WrongType { location: Location::Row(1), field, .. } if field == "blob"
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 1: field `blob` is binary data that is not valid UTF-8, expected a string, number or boolean",
            path.display()
        )
    );
}

#[test]
fn null_output_is_no_reference() {
    let read = load_source(&source(fixture("nulls.parquet"), "prompt", Some("answer"))).unwrap();
    assert_eq!(
        read,
        records(&[("p0", Some("#### 0")), ("p1", Some("#### 1")), ("p2", None)])
    );
}

#[test]
fn null_input_names_file_row_and_field() {
    let path = fixture("nulls.parquet");
    let err = load_source(&source(&path, "question", Some("answer"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 1: field `question` is null, expected a string, number or boolean",
            path.display()
        )
    );
    // The null input comes before the null output; with the fields swapped it is row 2.
    let err = load_source(&source(&path, "answer", Some("question"))).unwrap_err();
    assert!(matches!(
        &err,
        DataError::WrongType { location: Location::Row(2), field, found, .. }
            if field == "answer" && found == "null"
    ));
}

#[test]
fn struct_fields_by_dotted_path() {
    let path = fixture("nested.parquet");
    let read = load_source(&source(&path, "meta.question", Some("meta.answer"))).unwrap();
    assert_eq!(
        read,
        records(&[
            ("What is 6 * 7?", Some("#### 42")),
            ("What is 9 + 10?", Some("#### 19"))
        ])
    );
    let read = load_source(&source(&path, "id", Some("meta.answer"))).unwrap();
    assert_eq!(
        read,
        records(&[("10", Some("#### 42")), ("11", Some("#### 19"))])
    );
}

#[test]
fn lists_and_structs_are_not_prompts() {
    let path = fixture("nested.parquet");
    let err = load_source(&source(&path, "tags", None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 0: field `tags` is a list, expected a string, number or boolean",
            path.display()
        )
    );
    let err = load_source(&source(&path, "meta.question", Some("meta"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 0: field `meta` is a struct, expected a string, number or boolean",
            path.display()
        )
    );
}

#[test]
fn missing_column_lists_the_columns() {
    let path = fixture("gsm8k_snappy.parquet");
    let err = load_source(&ppo_data::DataSource::new(&path)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no field `prompt` (available: question, answer)",
            path.display()
        )
    );
    let path = fixture("nested.parquet");
    let err = load_source(&source(&path, "meta.question", Some("meta.qestion"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no field `meta.qestion` (available: id, meta.question, meta.answer, tags)",
            path.display()
        )
    );
    // Inside a list there is nothing to address.
    let err = load_source(&source(&path, "tags.list", None)).unwrap_err();
    assert!(
        matches!(err, DataError::MissingField { location: None, .. }),
        "{err}"
    );
}

#[test]
fn brotli_is_not_built_in_and_says_so() {
    let path = fixture("gsm8k_brotli.parquet");
    let err = load_source(&source(&path, "question", Some("answer"))).unwrap_err();
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    let text = chain(&err);
    assert!(
        text.starts_with(&format!("cannot read parquet file {}: ", path.display())),
        "{text}"
    );
    assert!(text.to_lowercase().contains("brotli"), "{text}");
}

#[test]
fn empty_file_is_an_error() {
    let path = fixture("empty.parquet");
    let err = load_source(&source(&path, "question", Some("answer"))).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }));
    assert_eq!(
        err.to_string(),
        format!("dataset file {} has no records", path.display())
    );
}

#[test]
fn missing_and_non_parquet_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    let err = load_source(&source(&missing, "question", None)).unwrap_err();
    let DataError::Io { path, source: io } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &missing);
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!("cannot read dataset file {}", missing.display())
    );

    let jsonl = fixture("gsm8k.jsonl");
    let mut s = source(&jsonl, "question", None);
    s.format = Some(DataFormat::Parquet);
    let err = load_source(&s).unwrap_err();
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&jsonl.display().to_string()),
        "{err}"
    );
}

/// A dictionary page whose strings stop short of its value count makes the `parquet` crate
/// panic (an assertion in its decoder); the reader reports it as a parquet error instead.
#[test]
fn a_short_dictionary_page_is_an_error() {
    let mut bytes = std::fs::read(fixture("gsm8k_uncompressed.parquet")).unwrap();
    // The uncompressed dictionary page of `question` holds each question after its length
    // (4 bytes, little endian). Stretch the first one over all the others but 2 bytes: the
    // decoder then finds 2 bytes where it expects the second length.
    let questions: Vec<String> = expected_gsm8k().into_iter().map(|r| r.input).collect();
    let first = questions[0].as_bytes();
    let at = bytes
        .windows(first.len())
        .position(|w| w == first)
        .expect("the uncompressed dictionary holds the question");
    assert_eq!(bytes[at - 4..at], (first.len() as u32).to_le_bytes());
    let dictionary_len: usize = questions.iter().map(|q| 4 + q.len()).sum();
    let stretched = (dictionary_len - 4 - 2) as u32;
    bytes[at - 4..at].copy_from_slice(&stretched.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.parquet");
    std::fs::write(&path, &bytes).unwrap();
    let err = load_source(&source(&path, "question", Some("answer"))).unwrap_err();
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    let text = chain(&err);
    assert!(
        text.starts_with(&format!("cannot read parquet file {}: ", path.display())),
        "{text}"
    );
}

/// Cut or flipped bytes give an error or (where the damage is in a value) different text,
/// never a panic, and errors name the file.
#[test]
fn damaged_files_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.parquet");
    let s = source(&path, "question", Some("answer"));
    for name in [
        "gsm8k_snappy.parquet",
        "gsm8k_zstd.parquet",
        "gsm8k_page_v2.parquet",
    ] {
        let original = std::fs::read(fixture(name)).unwrap();
        for len in (0..original.len()).step_by(9) {
            std::fs::write(&path, &original[..len]).unwrap();
            let err = load_source(&s).expect_err(&format!("{name} cut at {len} bytes read fine"));
            assert!(err.to_string().contains("damaged.parquet"), "{err}");
        }
    }
    // Every byte of a dictionary-encoded file: page headers, dictionary, data, footer.
    let original = std::fs::read(fixture("gsm8k_snappy.parquet")).unwrap();
    for at in 0..original.len() {
        let mut bytes = original.clone();
        bytes[at] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        if let Err(err) = load_source(&s) {
            assert!(err.to_string().contains("damaged.parquet"), "{err}");
        }
    }
}

#[test]
fn sources_are_concatenated_in_order() {
    let expected = expected_gsm8k();
    let mut first = source(fixture("gsm8k_gzip.parquet"), "question", Some("answer"));
    first.max_samples = Some(2);
    let second = source(fixture("nulls.parquet"), "prompt", Some("answer"));
    let third = source(fixture("gsm8k.jsonl"), "question", None);
    let read = load_sources(&[first, second, third]).unwrap();
    assert_eq!(read.len(), 2 + 3 + 5);
    assert_eq!(read[..2], expected[..2]);
    assert_eq!(
        read[2..5],
        records(&[("p0", Some("#### 0")), ("p1", Some("#### 1")), ("p2", None)])
    );
    assert_eq!(read[5].input, expected[0].input);
    assert!(read[5..].iter().all(|r| r.output.is_none()));
}

#[test]
fn a_failing_source_stops_the_mix_and_is_named() {
    let good = source(fixture("gsm8k_snappy.parquet"), "question", Some("answer"));
    let bad = source(fixture("nulls.parquet"), "question", None);
    let err = load_sources(&[good, bad]).unwrap_err();
    assert!(err.to_string().contains("nulls.parquet: row 1"), "{err}");
}

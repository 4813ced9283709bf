#!/usr/bin/env python3
"""Writes the parquet fixtures of ppo-data (crates/ppo-data/tests/fixtures).

The files are written by pyarrow the way Hugging Face `datasets` and pandas write them, so
the tests read what users will feed the trainer: a GSM8K-like prompt set (made-up questions,
answers ending in "#### N") in every compression and encoding we support, plus one file per
column kind (large_string, integers, floats, booleans, binary, nulls, structs and lists).
`gsm8k.jsonl` and `gsm8k.json` hold the same prompts; `expected.json` holds the
(input, output) records all the GSM8K-like files must read as.

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install -r scripts/requirements-fixtures.txt
    .venv-fixtures/bin/python scripts/make_data_fixtures.py

Every file is checked after writing (row groups, codec, dictionary encoding), so a pyarrow
release that changes a default fails here instead of silently weakening a test.
"""

import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/ppo-data/tests/fixtures"

# Made-up word problems in the GSM8K layout: the answer is a worked solution whose last line
# is "#### <number>". Non-ASCII text and a multi-line answer check the UTF-8 path.
GSM8K_LIKE = [
    (
        "Mia bakes 3 trays of 24 cookies and gives away 18. How many cookies are left?",
        "She bakes 3 * 24 = <<3*24=72>>72 cookies.\n72 - 18 = <<72-18=54>>54 are left.\n#### 54",
    ),
    (
        "A café sells a croissant for €2 and a coffee for €3. What do 4 of each cost?",
        "One of each costs 2 + 3 = <<2+3=5>>5 euros.\n4 * 5 = <<4*5=20>>20\n#### 20",
    ),
    (
        "Tom reads 15 pages a day. How many days does a 120-page book take him?",
        "120 / 15 = <<120/15=8>>8\n#### 8",
    ),
    (
        "A train travels 60 km in the first hour and 45 km in the second. How far did it go?",
        "60 + 45 = <<60+45=105>>105\n#### 105",
    ),
    (
        "Ana has 7 marbles 🙂 and finds twice as many. How many does she have now?",
        "She finds 2 * 7 = <<2*7=14>>14.\n7 + 14 = <<7+14=21>>21\n#### 21",
    ),
]


def gsm8k_table(string_type=pa.string()):
    return pa.table(
        {
            "question": pa.array([q for q, _ in GSM8K_LIKE], type=string_type),
            "answer": pa.array([a for _, a in GSM8K_LIKE], type=string_type),
        }
    )


def write(name, table, **kwargs):
    path = OUT / name
    pq.write_table(table, path, **kwargs)
    return pq.ParquetFile(path).metadata


def check(metadata, *, row_groups, codec, dictionary):
    assert metadata.num_row_groups == row_groups, metadata
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        for col in range(group.num_columns):
            chunk = group.column(col)
            assert chunk.compression == codec, (chunk.compression, codec)
            has_dictionary = chunk.dictionary_page_offset is not None
            assert has_dictionary == dictionary, (chunk.path_in_schema, chunk.encodings)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    table = gsm8k_table()

    # pyarrow's defaults (snappy, dictionary on), split into 2 row groups (3 + 2 rows).
    meta = write("gsm8k_snappy.parquet", table, row_group_size=3)
    check(meta, row_groups=2, codec="SNAPPY", dictionary=True)
    meta = write("gsm8k_gzip.parquet", table, row_group_size=3, compression="gzip")
    check(meta, row_groups=2, codec="GZIP", dictionary=True)
    meta = write("gsm8k_zstd.parquet", table, row_group_size=3, compression="zstd")
    check(meta, row_groups=2, codec="ZSTD", dictionary=True)
    meta = write("gsm8k_lz4.parquet", table, compression="lz4")
    check(meta, row_groups=1, codec="LZ4", dictionary=True)
    meta = write("gsm8k_uncompressed.parquet", table, compression="none")
    check(meta, row_groups=1, codec="UNCOMPRESSED", dictionary=True)
    # Plain encoding (no dictionary page) and version-2 data pages.
    meta = write("gsm8k_plain.parquet", table, use_dictionary=False, row_group_size=2)
    check(meta, row_groups=3, codec="SNAPPY", dictionary=False)
    meta = write("gsm8k_page_v2.parquet", table, data_page_version="2.0")
    check(meta, row_groups=1, codec="SNAPPY", dictionary=True)
    # Brotli is not compiled in: the reader must say so, not panic.
    meta = write("gsm8k_brotli.parquet", table, compression="brotli")
    check(meta, row_groups=1, codec="BROTLI", dictionary=True)
    # `datasets` stores some string columns as arrow large_string.
    meta = write("gsm8k_large_string.parquet", gsm8k_table(pa.large_string()))
    check(meta, row_groups=1, codec="SNAPPY", dictionary=True)
    assert pq.read_schema(OUT / "gsm8k_large_string.parquet").field("question").type == pa.large_string()

    # No rows at all.
    write("empty.parquet", gsm8k_table().slice(0, 0))

    # Non-string scalars, converted to text by the reader.
    numbers = pa.table(
        {
            "question": pa.array(["one", "two", "three"]),
            "answer": pa.array([72, -3, 1_000_000_000_000], type=pa.int64()),
            "small": pa.array([1, 2, 3], type=pa.int8()),
            "unsigned": pa.array([7, 0, 4_000_000_000], type=pa.uint32()),
            "score": pa.array([0.5, 72.0, -1.25], type=pa.float64()),
            "ratio": pa.array([0.1, 2.0, 3.5], type=pa.float32()),
            "correct": pa.array([True, False, True]),
            "blob": pa.array([b"bytes 0", b"\xff\xfe", b"bytes 2"], type=pa.binary()),
        }
    )
    write("numbers.parquet", numbers)

    # Nulls: `question` is null in row 1, `answer` in row 2; `prompt` has none.
    nulls = pa.table(
        {
            "prompt": pa.array(["p0", "p1", "p2"]),
            "question": pa.array(["q0", None, "q2"]),
            "answer": pa.array(["#### 0", "#### 1", None]),
        }
    )
    write("nulls.parquet", nulls)

    # A struct column (addressed as "meta.question") next to a list column.
    nested = pa.table(
        {
            "id": pa.array([10, 11]),
            "meta": pa.array(
                [
                    {"question": "What is 6 * 7?", "answer": "#### 42"},
                    {"question": "What is 9 + 10?", "answer": "#### 19"},
                ]
            ),
            "tags": pa.array([["arith", "easy"], ["arith"]]),
        }
    )
    write("nested.parquet", nested)

    # The same prompts as jsonl (with an extra field and a blank line, as people write
    # them) and as json in the {"data": [...]} layout of some exports.
    rows = [{"id": i, "question": q, "answer": a} for i, (q, a) in enumerate(GSM8K_LIKE)]
    with open(OUT / "gsm8k.jsonl", "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if i == 1:
                f.write("\n")
    with open(OUT / "gsm8k.json", "w", encoding="utf-8") as f:
        json.dump({"data": rows}, f, ensure_ascii=False, indent=1)
        f.write("\n")

    expected = [{"input": q, "output": a} for q, a in GSM8K_LIKE]
    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")

    for path in sorted(OUT.glob("*.parquet")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")
    print(f"pyarrow {pa.__version__}")


if __name__ == "__main__":
    main()

//! Parquet files through the `parquet` crate's row API (no arrow): only the columns that hold
//! the input and output fields are decoded, one row group after another.
//!
//! Text columns (UTF8 / large_string, plain or dictionary encoded) are taken as they are,
//! binary columns when they hold UTF-8; integers, floats, decimals and booleans become their
//! text (`72`, `0.5`, `true`; floats with no fractional part lose it, `72.0` → `72`).
//! Nested fields of struct columns are addressed as `struct.field`.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use parquet::basic::{ConvertedType, LogicalType, Repetition};
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::{Type, TypePtr};

use crate::error::{DataError, Location};
use crate::field::{Fields, Node, Text, field_names, follow, resolve};
use crate::source::Record;

/// The first `limit` rows of a parquet file as records.
///
/// The `parquet` crate asserts on some kinds of damaged pages (a length running past the end
/// of its buffer) instead of returning an error; such a panic is caught here and reported as
/// a [`DataError::Parquet`] naming the file. (The panic message is still printed by the
/// panic hook, and nothing is caught in a build with `panic = "abort"`.)
pub(crate) fn read_parquet(fields: &Fields<'_>, limit: usize) -> Result<Vec<Record>, DataError> {
    // Nothing outlives a panic but the message: the reader and the partial records are dropped.
    std::panic::catch_unwind(AssertUnwindSafe(|| read_rows(fields, limit))).unwrap_or_else(
        |panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(parquet_error(
                fields.path,
                ParquetError::General(format!(
                    "damaged file: the parquet reader panicked ({message})"
                )),
            ))
        },
    )
}

fn read_rows(fields: &Fields<'_>, limit: usize) -> Result<Vec<Record>, DataError> {
    let path = fields.path;
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(path, e))?;
    let schema = reader.metadata().file_metadata().schema();

    let input_keys = column(fields, schema, fields.input)?;
    let output_keys = fields
        .output
        .map(|name| column(fields, schema, name))
        .transpose()?;
    let mut top_level = vec![input_keys[0]];
    top_level.extend(output_keys.as_ref().map(|keys| keys[0]));
    let projection = projection(schema, &top_level).map_err(|e| parquet_error(path, e))?;

    let mut records = Vec::new();
    // Row groups are opened here rather than by `FileReader::get_row_iter`, which panics when
    // a row group cannot be read.
    for group_index in 0..reader.num_row_groups() {
        if records.len() >= limit {
            break;
        }
        let group = reader
            .get_row_group(group_index)
            .map_err(|e| parquet_error(path, e))?;
        let rows = group
            .get_row_iter(Some(projection.clone()))
            .map_err(|e| parquet_error(path, e))?;
        for row in rows {
            if records.len() >= limit {
                break;
            }
            let row = Field::Group(row.map_err(|e| parquet_error(path, e))?);
            let location = Location::Row(records.len());
            let input = value_text(&row, &input_keys);
            let output = output_keys.as_ref().map(|keys| value_text(&row, keys));
            records.push(fields.record(location, input, output)?);
        }
    }
    Ok(records)
}

/// The keys leading to the column `name` in the file's schema.
fn column<'a>(
    fields: &Fields<'_>,
    schema: &Type,
    name: &'a str,
) -> Result<Vec<&'a str>, DataError> {
    resolve(schema, name).ok_or_else(|| fields.missing(None, name, field_names(schema)))
}

/// The schema with only the top-level fields named in `names` (in file order).
fn projection(schema: &Type, names: &[&str]) -> Result<Type, ParquetError> {
    let selected: Vec<TypePtr> = schema
        .get_fields()
        .iter()
        .filter(|field| names.contains(&field.name()))
        .cloned()
        .collect();
    Type::group_type_builder(schema.name())
        .with_fields(selected)
        .build()
}

/// The text of the field at `keys` in `row`. A null struct on the way makes the field null.
fn value_text(row: &Field, keys: &[&str]) -> Text {
    match follow(row, keys) {
        Some(field) => text(field),
        None => Ok(None),
    }
}

/// A scalar as text; see the module doc.
fn text(field: &Field) -> Text {
    let text = match field {
        Field::Null => return Ok(None),
        Field::Str(s) => s.clone(),
        Field::Bytes(bytes) => match std::str::from_utf8(bytes.data()) {
            Ok(s) => s.to_owned(),
            Err(_) => return Err("binary data that is not valid UTF-8".into()),
        },
        Field::Bool(b) => b.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float16(v) => v.to_f32().to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        // The row API prints decimals as plain numbers ("12.50").
        Field::Decimal(_) => field.to_string(),
        Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => return Err("a date or time".into()),
        Field::Group(_) => return Err("a struct".into()),
        Field::ListInternal(_) => return Err("a list".into()),
        Field::MapInternal(_) => return Err("a map".into()),
    };
    Ok(Some(text))
}

fn parquet_error(path: &Path, source: ParquetError) -> DataError {
    DataError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// A group one can address fields of: the schema root or a struct column, not a list or map
/// (their inner groups are encoding detail) nor a repeated group.
fn is_struct(ty: &Type) -> bool {
    let info = ty.get_basic_info();
    let list_or_map = matches!(
        info.converted_type(),
        ConvertedType::LIST | ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE
    ) || matches!(
        info.logical_type_ref(),
        Some(LogicalType::List | LogicalType::Map)
    );
    let repeated = info.has_repetition() && info.repetition() == Repetition::REPEATED;
    ty.is_group() && !list_or_map && !repeated
}

impl Node for Type {
    fn child(&self, key: &str) -> Option<&Type> {
        self.children()
            .into_iter()
            .find(|(name, _)| *name == key)
            .map(|(_, ty)| ty)
    }

    fn children(&self) -> Vec<(&str, &Type)> {
        if !is_struct(self) {
            return Vec::new();
        }
        self.get_fields()
            .iter()
            .map(|field| (field.name(), field.as_ref()))
            .collect()
    }
}

impl Node for Field {
    fn child(&self, key: &str) -> Option<&Field> {
        match self {
            Field::Group(row) => row
                .get_column_iter()
                .find(|(name, _)| name.as_str() == key)
                .map(|(_, field)| field),
            _ => None,
        }
    }

    fn children(&self) -> Vec<(&str, &Field)> {
        match self {
            Field::Group(row) => row
                .get_column_iter()
                .map(|(name, field)| (name.as_str(), field))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::data_type::ByteArray;
    use parquet::record::Row;

    #[test]
    fn scalars_become_text() {
        let t = |field: Field| text(&field);
        assert_eq!(t(Field::Str("a b\n".into())), Ok(Some("a b\n".into())));
        assert_eq!(t(Field::Long(-72)), Ok(Some("-72".into())));
        assert_eq!(
            t(Field::ULong(u64::MAX)),
            Ok(Some("18446744073709551615".into()))
        );
        assert_eq!(t(Field::Double(72.0)), Ok(Some("72".into())));
        assert_eq!(t(Field::Double(0.1)), Ok(Some("0.1".into())));
        assert_eq!(t(Field::Float(0.1)), Ok(Some("0.1".into())));
        assert_eq!(t(Field::Bool(false)), Ok(Some("false".into())));
        assert_eq!(
            t(Field::Bytes(ByteArray::from("ok"))),
            Ok(Some("ok".into()))
        );
        assert_eq!(
            t(Field::Bytes(ByteArray::from(vec![0xff, 0xfe]))),
            Err("binary data that is not valid UTF-8".into())
        );
        assert_eq!(t(Field::Null), Ok(None));
        assert_eq!(t(Field::Date(3)), Err("a date or time".into()));
    }

    #[test]
    fn a_null_struct_makes_its_fields_null() {
        let row = Field::Group(Row::new(vec![("meta".into(), Field::Null)]));
        assert_eq!(value_text(&row, &["meta", "question"]), Ok(None));
        assert_eq!(value_text(&row, &["meta"]), Ok(None));
        let row = Field::Group(Row::new(vec![(
            "meta".into(),
            Field::Group(Row::new(vec![("q".into(), Field::Int(4))])),
        )]));
        assert_eq!(value_text(&row, &["meta", "q"]), Ok(Some("4".into())));
        assert_eq!(value_text(&row, &["meta"]), Err("a struct".into()));
    }
}

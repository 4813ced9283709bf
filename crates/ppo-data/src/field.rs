//! Finding the configured fields in a record (by name, or by dotted path into nested
//! objects) and turning what was found into a [`Record`], with the errors that name them.
//!
//! The same lookup serves JSON values, parquet schemas and parquet rows through [`Node`].

use std::path::Path;

use crate::error::{DataError, Location};
use crate::source::Record;

/// A tree of named fields: a JSON object, a parquet group type, a parquet struct value.
pub(crate) trait Node {
    /// The field called exactly `key`, if this node has named fields and one is so called.
    fn child(&self, key: &str) -> Option<&Self>;
    /// The named fields one can descend into (empty for scalars, arrays and lists).
    fn children(&self) -> Vec<(&str, &Self)>;
}

/// The keys leading from `node` to the field `path`.
///
/// A key spelled exactly like `path` wins (so a column named "meta.question" is found as is);
/// otherwise `path` is split at its first dot that leads to a nested field holding the rest.
pub(crate) fn resolve<'p, N: Node>(node: &N, path: &'p str) -> Option<Vec<&'p str>> {
    if node.child(path).is_some() {
        return Some(vec![path]);
    }
    for (dot, _) in path.match_indices('.') {
        let (head, rest) = (&path[..dot], &path[dot + 1..]);
        if let Some(inner) = node.child(head)
            && let Some(mut keys) = resolve(inner, rest)
        {
            keys.insert(0, head);
            return Some(keys);
        }
    }
    None
}

/// The field at `keys` below `node` (as returned by [`resolve`]).
pub(crate) fn follow<'a, N: Node>(node: &'a N, keys: &[&str]) -> Option<&'a N> {
    keys.iter().try_fold(node, |node, key| node.child(key))
}

/// The field `path` below `node`, see [`resolve`].
pub(crate) fn find<'a, N: Node>(node: &'a N, path: &str) -> Option<&'a N> {
    follow(node, &resolve(node, path)?)
}

/// Every field below `node`, nested ones in dotted form, for "available: ..." in errors.
pub(crate) fn field_names<N: Node>(node: &N) -> Vec<String> {
    let mut names = Vec::new();
    collect_names(node, "", &mut names);
    names
}

fn collect_names<N: Node>(node: &N, prefix: &str, names: &mut Vec<String>) {
    for (key, child) in node.children() {
        let name = format!("{prefix}{key}");
        if child.children().is_empty() {
            names.push(name);
        } else {
            collect_names(child, &format!("{name}."), names);
        }
    }
}

/// A field's value as text: `Ok(Some(text))`, `Ok(None)` for null, or `Err(what it is)` for
/// values that are not scalars ("an array", "a struct", ...).
pub(crate) type Text = Result<Option<String>, String>;

/// The configured field names of one source, and the file they are read from.
pub(crate) struct Fields<'a> {
    /// The file, for errors.
    pub path: &'a Path,
    /// Field holding the prompt.
    pub input: &'a str,
    /// Field holding the reference answer, if any.
    pub output: Option<&'a str>,
}

impl Fields<'_> {
    /// The record at `location` from the text of its input and output fields. A null or
    /// non-scalar input is an error; a null output is no reference, a non-scalar one an error.
    pub(crate) fn record(
        &self,
        location: Location,
        input: Text,
        output: Option<Text>,
    ) -> Result<Record, DataError> {
        let input = match input {
            Ok(Some(text)) => text,
            Ok(None) => return Err(self.wrong_type(location, self.input, "null".into())),
            Err(found) => return Err(self.wrong_type(location, self.input, found)),
        };
        let output = match output {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(text))) => Some(text),
            Some(Err(found)) => {
                let field = self.output.unwrap_or_default();
                return Err(self.wrong_type(location, field, found));
            }
        };
        Ok(Record { input, output })
    }

    /// `field` is missing; `available` lists what the record or file has instead.
    pub(crate) fn missing(
        &self,
        location: Option<Location>,
        field: &str,
        available: Vec<String>,
    ) -> DataError {
        DataError::MissingField {
            path: self.path.to_path_buf(),
            location,
            field: field.to_owned(),
            available,
        }
    }

    fn wrong_type(&self, location: Location, field: &str, found: String) -> DataError {
        DataError::WrongType {
            path: self.path.to_path_buf(),
            location,
            field: field.to_owned(),
            found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny tree: leaves are `None`, groups map names to subtrees.
    struct Tree(Option<Vec<(&'static str, Tree)>>);

    impl Node for Tree {
        fn child(&self, key: &str) -> Option<&Self> {
            self.0
                .as_ref()?
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, t)| t)
        }
        fn children(&self) -> Vec<(&str, &Self)> {
            self.0.iter().flatten().map(|(k, t)| (*k, t)).collect()
        }
    }

    fn leaf() -> Tree {
        Tree(None)
    }

    fn group(fields: Vec<(&'static str, Tree)>) -> Tree {
        Tree(Some(fields))
    }

    #[test]
    fn exact_keys_win_then_dots_descend() {
        let tree = group(vec![
            ("a.b", leaf()),
            (
                "a",
                group(vec![("b", leaf()), ("c", group(vec![("d", leaf())]))]),
            ),
            ("x.y", group(vec![("z", leaf())])),
        ]);
        assert_eq!(resolve(&tree, "a.b"), Some(vec!["a.b"]));
        assert_eq!(resolve(&tree, "a.c.d"), Some(vec!["a", "c", "d"]));
        // The first dot leads nowhere ("x" is not a field); the second does.
        assert_eq!(resolve(&tree, "x.y.z"), Some(vec!["x.y", "z"]));
        assert_eq!(resolve(&tree, "a.e"), None);
        assert_eq!(resolve(&tree, "a.b.c"), None);
        assert_eq!(resolve(&tree, ""), None);
        assert!(find(&tree, "a.c").is_some_and(|t| t.0.is_some()));
        assert_eq!(
            field_names(&tree),
            ["a.b", "a.b", "a.c.d", "x.y.z"].map(String::from)
        );
    }

    #[test]
    fn null_output_is_no_reference_and_null_input_an_error() {
        let fields = Fields {
            path: Path::new("f.jsonl"),
            input: "q",
            output: Some("a"),
        };
        let record = fields
            .record(Location::Line(1), Ok(Some("hi".into())), Some(Ok(None)))
            .unwrap();
        assert_eq!(
            record,
            Record {
                input: "hi".into(),
                output: None
            }
        );
        let err = fields
            .record(Location::Line(2), Ok(None), Some(Ok(Some("x".into()))))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.jsonl: line 2: field `q` is null, expected a string, number or boolean"
        );
        let err = fields
            .record(
                Location::Row(4),
                Ok(Some("q".into())),
                Some(Err("an array".into())),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.jsonl: row 4: field `a` is an array, expected a string, number or boolean"
        );
    }
}

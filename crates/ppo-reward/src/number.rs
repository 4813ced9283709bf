//! Numbers in free text: finding them, and writing each in one canonical decimal form so
//! that `1,234.50`, `$1234.5` and `1234.500` compare equal exactly, with no floating point.
//!
//! A number is a run of ASCII digits with an optional fraction (`.` then digits), with
//! commas allowed as thousands separators (`1,234,567`). A run whose commas are not
//! thousands separators (`1,2,3`) is a list: each comma-separated piece is its own number.
//! A `$` right before the digits is ignored. A minus sign (`-` or `−`) right before the
//! digits or the `$` makes the number negative unless a letter or digit stands right before
//! the sign (`3-5` is a range, not `3` and `-5`). A trailing `.` with no digit after it
//! (end of sentence) and a trailing `%` are not part of the number. Leading `.5` (no integer
//! part) and exponents are not recognised.

use std::sync::LazyLock;

use regex::Regex;

/// Digits with commas inside, then an optional fraction.
static DIGITS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9](?:[0-9,]*[0-9])?(?:\.[0-9]+)?").expect("the number pattern compiles")
});

/// One number found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Number {
    /// Byte offset where its text starts (the sign or `$` when there is one).
    pub start: usize,
    /// Byte offset just past its last digit.
    pub end: usize,
    /// Canonical form: see [`canonical`].
    pub value: String,
}

/// The numbers of `text`, in order.
pub(crate) fn numbers(text: &str) -> Vec<Number> {
    let mut out = Vec::new();
    for m in DIGITS.find_iter(text) {
        let (negative, prefix_start) = sign_and_prefix(text, m.start());
        let digits = m.as_str();
        let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if has_thousands_grouping(integer) {
            out.push(Number {
                start: prefix_start,
                end: m.end(),
                value: canonical(negative, &integer.replace(',', ""), fraction),
            });
            continue;
        }
        // A list such as `1,2,3`: each piece is a number; the sign belongs to the first and
        // the fraction to the last.
        let pieces: Vec<&str> = integer.split(',').collect();
        let mut offset = m.start();
        for (idx, piece) in pieces.iter().enumerate() {
            let first = idx == 0;
            let last = idx + 1 == pieces.len();
            let end = if last { m.end() } else { offset + piece.len() };
            out.push(Number {
                start: if first { prefix_start } else { offset },
                end,
                value: canonical(first && negative, piece, if last { fraction } else { "" }),
            });
            offset += piece.len() + 1;
        }
    }
    out
}

/// The only number in `text`, when it has exactly one.
pub(crate) fn only_number(text: &str) -> Option<String> {
    let mut found = numbers(text);
    match found.len() {
        1 => found.pop().map(|n| n.value),
        _ => None,
    }
}

/// Whether the digits-and-commas `integer` uses commas as thousands separators (or has
/// none): a first group of 1 to 3 digits, then groups of exactly 3.
fn has_thousands_grouping(integer: &str) -> bool {
    let mut groups = integer.split(',');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) || !integer.contains(','));
    first_ok && groups.all(|g| g.len() == 3)
}

/// Whether the number whose digits start at byte `digits_start` is negative, and where its
/// text starts (at its sign or `$`, else at the digits).
fn sign_and_prefix(text: &str, digits_start: usize) -> (bool, usize) {
    let mut start = digits_start;
    let mut dollar = false;
    let mut minus = false;
    for c in text[..digits_start].chars().rev() {
        match c {
            '$' if !dollar => dollar = true,
            '-' | '−' if !minus => minus = true,
            _ => break,
        }
        start -= c.len_utf8();
    }
    if minus {
        let attached = text[..start]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        if attached {
            // `3-5`, `x-2`: a hyphen, not a sign. Keep only a `$` that sits by the digits.
            start = if text[..digits_start].ends_with('$') {
                digits_start - 1
            } else {
                digits_start
            };
            minus = false;
        }
    }
    (minus, start)
}

/// Canonical decimal text: no leading zeros in the integer part, no trailing zeros in the
/// fraction, no `.` when the fraction is empty, and no sign on zero.
fn canonical(negative: bool, integer: &str, fraction: &str) -> String {
    let integer = integer.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let zero = integer == "0" && fraction.is_empty();
    let mut out = String::new();
    if negative && !zero {
        out.push('-');
    }
    out.push_str(integer);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<String> {
        numbers(text).into_iter().map(|n| n.value).collect()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(values("1,234"), ["1234"]);
        assert_eq!(values("$1,234.50"), ["1234.5"]);
        assert_eq!(values("18.00"), ["18"]);
        assert_eq!(values("007"), ["7"]);
        assert_eq!(values("0.0"), ["0"]);
        assert_eq!(values("-0"), ["0"]);
        assert_eq!(values("0.250"), ["0.25"]);
        assert_eq!(values("1,234,567.0"), ["1234567"]);
    }

    #[test]
    fn signs_dollars_and_hyphens() {
        assert_eq!(values("-5"), ["-5"]);
        assert_eq!(values("−5"), ["-5"]);
        assert_eq!(values("-$5 and $-6"), ["-5", "-6"]);
        assert_eq!(values("(-3)"), ["-3"]);
        assert_eq!(values("pages 3-5"), ["3", "5"]);
        assert_eq!(values("10-3=7"), ["10", "3", "7"]);
        assert_eq!(values("x-2"), ["2"]);
        assert_eq!(values("a-$2"), ["2"]);
    }

    #[test]
    fn sentence_punctuation_and_percent() {
        assert_eq!(values("It is 18."), ["18"]);
        assert_eq!(values("It is 18.5."), ["18.5"]);
        assert_eq!(values("50%"), ["50"]);
        assert_eq!(values("3, 4 and 5"), ["3", "4", "5"]);
        assert_eq!(values("no digits here"), Vec::<String>::new());
    }

    #[test]
    fn comma_lists_split_into_numbers() {
        assert_eq!(values("1,2,3"), ["1", "2", "3"]);
        assert_eq!(values("-1,2.5"), ["-1", "2.5"]);
        assert_eq!(values("12,3456"), ["12", "3456"]);
        let found = numbers("a 1,2");
        assert_eq!((found[0].start, found[0].end), (2, 3));
        assert_eq!((found[1].start, found[1].end), (4, 5));
    }

    #[test]
    fn positions_include_sign_and_dollar() {
        let found = numbers("pay -$12.");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (4, 8));
    }

    #[test]
    fn only_number_needs_exactly_one() {
        assert_eq!(only_number(" $72 "), Some("72".into()));
        assert_eq!(only_number("72 apples"), Some("72".into()));
        assert_eq!(only_number("3 and 4"), None);
        assert_eq!(only_number("seventy"), None);
    }
}

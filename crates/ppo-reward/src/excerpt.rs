//! Short one-line excerpts of user text (prompts, references, reply bodies) for error
//! messages.

/// `text` with runs of whitespace folded to one space, cut to at most `max_chars`
/// characters; `…` marks a cut.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_whitespace_and_cuts_on_characters() {
        assert_eq!(excerpt(" a\n\n b  c ", 10), "a b c");
        assert_eq!(excerpt("咖啡咖啡", 3), "咖啡咖…");
        assert_eq!(excerpt("abc", 3), "abc");
    }
}

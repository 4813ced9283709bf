//! Text pairs as sequence classifiers read them (`tokenizer(question, answer)` in
//! transformers): ids, token type ids, and which text each token came from, with truncation
//! from the right of the second text.

/// One encoded (first, second) pair, special tokens included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairEncoding {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token type ids (segment of each token: 0 for the first text, 1 for the second, as the
    /// post-processor assigns them).
    pub type_ids: Vec<u32>,
    /// Which text each token came from (`Some(0)`, `Some(1)`), `None` for special tokens.
    pub sequence_ids: Vec<Option<usize>>,
}

impl PairEncoding {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Shortens the pair to `max_len` tokens by dropping tokens of the second text from its
    /// right end, then (when the first text alone is too long) of the first text from its
    /// right end; special tokens stay. Returns whether anything was dropped.
    pub fn truncate_second(&mut self, max_len: usize) -> bool {
        let mut excess = self.len().saturating_sub(max_len);
        if excess == 0 {
            return false;
        }
        for sequence in [1, 0] {
            let mut idx = self.len();
            while excess > 0 && idx > 0 {
                idx -= 1;
                if self.sequence_ids[idx] == Some(sequence) {
                    self.ids.remove(idx);
                    self.type_ids.remove(idx);
                    self.sequence_ids.remove(idx);
                    excess -= 1;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [CLS] a1 a2 [SEP] b1 b2 b3 [SEP]
    fn pair() -> PairEncoding {
        PairEncoding {
            ids: vec![1, 10, 11, 2, 20, 21, 22, 2],
            type_ids: vec![0, 0, 0, 0, 1, 1, 1, 1],
            sequence_ids: vec![
                None,
                Some(0),
                Some(0),
                None,
                Some(1),
                Some(1),
                Some(1),
                None,
            ],
        }
    }

    #[test]
    fn truncation_drops_the_end_of_the_response_first() {
        let mut p = pair();
        assert!(!p.truncate_second(8));
        assert_eq!(p, pair());
        assert!(p.truncate_second(6));
        assert_eq!(p.ids, [1, 10, 11, 2, 20, 2]);
        assert_eq!(p.type_ids, [0, 0, 0, 0, 1, 1]);
        // Response gone entirely, then the prompt's end.
        let mut p = pair();
        assert!(p.truncate_second(4));
        assert_eq!(p.ids, [1, 10, 2, 2]);
    }
}

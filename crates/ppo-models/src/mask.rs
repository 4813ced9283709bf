//! Left padding, attention masks and per-row position ids for batched sequences.

/// A left-padded batch of token sequences, flattened row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Token ids, `[batch, seq_len]`.
    pub input_ids: Vec<u32>,
    /// `true` where a real token sits, `[batch, seq_len]`.
    pub attention_mask: Vec<bool>,
    /// Number of rows.
    pub batch_size: usize,
    /// Length of every row after padding.
    pub seq_len: usize,
}

impl Batch {
    /// Position ids as Hugging Face computes them for left padding: the count of real tokens
    /// before each position (`cumsum(mask) - 1`), and 1 on padding. `[batch, seq_len]`.
    pub fn position_ids(&self) -> Vec<i64> {
        position_ids(&self.attention_mask, self.batch_size, self.seq_len)
    }
}

/// Left-pads `rows` with `pad_id` to the longest row.
pub fn left_pad(rows: &[Vec<u32>], pad_id: u32) -> Batch {
    let seq_len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut input_ids = Vec::with_capacity(rows.len() * seq_len);
    let mut attention_mask = Vec::with_capacity(rows.len() * seq_len);
    for row in rows {
        let pad = seq_len - row.len();
        input_ids.extend(std::iter::repeat_n(pad_id, pad));
        input_ids.extend_from_slice(row);
        attention_mask.extend(std::iter::repeat_n(false, pad));
        attention_mask.extend(std::iter::repeat_n(true, row.len()));
    }
    Batch {
        input_ids,
        attention_mask,
        batch_size: rows.len(),
        seq_len,
    }
}

/// Position ids from an attention mask `[batch, seq_len]`: `cumsum(mask) - 1`, 1 on padding.
pub(crate) fn position_ids(mask: &[bool], batch_size: usize, seq_len: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(batch_size * seq_len);
    for row in mask.chunks(seq_len.max(1)).take(batch_size) {
        let mut count = 0i64;
        for &m in row {
            if m {
                out.push(count);
                count += 1;
            } else {
                out.push(1);
            }
        }
    }
    out
}

/// Additive attention bias `[batch, 1, q_len, k_len]`: 0 where query `i` (absolute index
/// `k_len - q_len + i`) may attend key `j` (causal and key is real), a large negative value
/// elsewhere. Finite, so fully masked padding rows stay NaN-free.
pub(crate) fn attention_bias(key_mask: &[bool], batch_size: usize, q_len: usize) -> Vec<f32> {
    const MASKED: f32 = -1e9;
    let k_len = key_mask.len() / batch_size.max(1);
    let offset = k_len - q_len;
    let mut out = Vec::with_capacity(batch_size * q_len * k_len);
    for row in key_mask.chunks(k_len.max(1)).take(batch_size) {
        for i in 0..q_len {
            for (j, &real) in row.iter().enumerate() {
                out.push(if real && j <= offset + i { 0.0 } else { MASKED });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_pad_and_positions() {
        let b = left_pad(&[vec![5, 6, 7], vec![9]], 0);
        assert_eq!(b.input_ids, vec![5, 6, 7, 0, 0, 9]);
        assert_eq!(b.attention_mask, vec![true, true, true, false, false, true]);
        assert_eq!(b.position_ids(), vec![0, 1, 2, 1, 1, 0]);
    }

    #[test]
    fn bias_is_causal_and_masks_padding() {
        // one row, keys [pad, a, b], all three as queries
        let bias = attention_bias(&[false, true, true], 1, 3);
        let m = -1e9;
        assert_eq!(bias, vec![m, m, m, m, 0.0, m, m, 0.0, 0.0]);
        // one new query over 3 cached keys: sees all real keys
        let bias = attention_bias(&[false, true, true], 1, 1);
        assert_eq!(bias, vec![m, 0.0, 0.0]);
    }
}

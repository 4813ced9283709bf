//! Generalised advantage estimation and whitening over masked `[batch, R]` response tokens.

/// GAE over response tokens only, per row of `[batch, R]` row-major arrays.
///
/// δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γλ·A_{t+1}, with V and A taken as 0 past the
/// last valid token. Returns `(advantages, returns)` with returns = A + V; both 0 where
/// `mask` is false. Valid tokens must form a prefix of each row (responses are right-padded).
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    mask: &[bool],
    response_len: usize,
    gamma: f64,
    lam: f64,
) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    assert!(
        values.len() == n && mask.len() == n,
        "gae: arrays of different lengths"
    );
    let mut advantages = vec![0.0f32; n];
    let mut returns = vec![0.0f32; n];
    if response_len == 0 {
        return (advantages, returns);
    }
    for row in 0..n / response_len {
        let base = row * response_len;
        let mut next_value = 0.0f64;
        let mut next_advantage = 0.0f64;
        for t in (0..response_len).rev() {
            let i = base + t;
            if !mask[i] {
                next_value = 0.0;
                next_advantage = 0.0;
                continue;
            }
            let value = f64::from(values[i]);
            let delta = f64::from(rewards[i]) + gamma * next_value - value;
            let advantage = delta + gamma * lam * next_advantage;
            advantages[i] = advantage as f32;
            returns[i] = (advantage + value) as f32;
            next_value = value;
            next_advantage = advantage;
        }
    }
    (advantages, returns)
}

/// Mean and biased variance of the valid entries.
pub fn masked_mean_var(values: &[f32], mask: &[bool]) -> (f64, f64) {
    let count = mask.iter().filter(|&&m| m).count();
    if count == 0 {
        return (0.0, 0.0);
    }
    let valid = || {
        values
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(v, _)| f64::from(*v))
    };
    let mean = valid().sum::<f64>() / count as f64;
    let var = valid().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count as f64;
    (mean, var)
}

/// Whitens the valid entries to mean 0 and standard deviation 1 (biased variance, eps 1e-8);
/// invalid entries become 0.
pub fn whiten(values: &[f32], mask: &[bool]) -> Vec<f32> {
    let (mean, var) = masked_mean_var(values, mask);
    whiten_with(values, mask, mean, var)
}

/// (x − mean)/√(var + 1e-8) on the valid entries, 0 on the others.
pub(crate) fn whiten_with(values: &[f32], mask: &[bool], mean: f64, var: f64) -> Vec<f32> {
    let inv_std = 1.0 / (var + 1e-8).sqrt();
    values
        .iter()
        .zip(mask)
        .map(|(&v, &m)| {
            if m {
                ((f64::from(v) - mean) * inv_std) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// 1 − Var(returns − values) / Var(returns) over valid tokens (NaN when returns are constant).
pub fn explained_variance(values: &[f32], returns: &[f32], mask: &[bool]) -> f64 {
    let residual: Vec<f32> = returns.iter().zip(values).map(|(r, v)| r - v).collect();
    let (_, var_returns) = masked_mean_var(returns, mask);
    let (_, var_residual) = masked_mean_var(&residual, mask);
    if var_returns == 0.0 {
        return f64::NAN;
    }
    1.0 - var_residual / var_returns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn gae_hand_computed() {
        // One row of 3 valid tokens then padding; γ = 0.9, λ = 0.5.
        let rewards = [0.0, 0.0, 1.0, 0.0];
        let values = [0.5, 0.4, 0.3, 9.0];
        let mask = [true, true, true, false];
        // δ2 = 1 − 0.3 = 0.7;           A2 = 0.7
        // δ1 = 0 + 0.9·0.3 − 0.4 = −0.13; A1 = −0.13 + 0.45·0.7 = 0.185
        // δ0 = 0 + 0.9·0.4 − 0.5 = −0.14; A0 = −0.14 + 0.45·0.185 = −0.05675
        let (adv, ret) = gae(&rewards, &values, &mask, 4, 0.9, 0.5);
        close(&adv, &[-0.05675, 0.185, 0.7, 0.0]);
        close(&ret, &[0.44325, 0.585, 1.0, 0.0]);
    }

    #[test]
    fn gae_rows_are_independent_and_lambda_one_is_discounted_return() {
        let rewards = [1.0, 2.0, 3.0, 4.0];
        let values = [0.0; 4];
        let mask = [true; 4];
        let (adv, _) = gae(&rewards, &values, &mask, 2, 0.5, 1.0);
        close(&adv, &[2.0, 2.0, 5.0, 4.0]);
    }

    #[test]
    fn whiten_hand_computed() {
        let w = whiten(&[1.0, 2.0, 3.0, 100.0], &[true, true, true, false]);
        // mean 2, biased var 2/3, std 0.816497
        close(&w, &[-1.224745, 0.0, 1.224745, 0.0]);
        let (m, v) = masked_mean_var(&w, &[true, true, true, false]);
        assert!(m.abs() < 1e-7 && (v - 1.0).abs() < 1e-6);
    }

    #[test]
    fn explained_variance_perfect_and_zero() {
        let mask = [true; 3];
        assert!(
            (explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &mask) - 1.0).abs() < 1e-12
        );
        assert!(explained_variance(&[0.0; 3], &[1.0, 2.0, 3.0], &mask).abs() < 1e-12);
    }
}

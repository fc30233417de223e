//! Count-aware surprise: how unlikely is at least `observed` reports when
//! `expected` were due?
//!
//! Counts are over-dispersed (reports cluster), so the tail is a negative
//! binomial with the series' learned dispersion `k` (variance = μ + kμ²);
//! at `k` = 0 it is exactly Poisson, the floor. Surprise is −log10 of the
//! upper-tail probability, capped, so 6 means "one in a million".

use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// Smallest expectation used for scoring: a series that never saw a report
/// still has a tiny chance of one.
pub const MIN_EXPECTED: f64 = 0.05;

/// −log10 P(X ≥ observed) for X ~ NB(mean `expected`, dispersion `k`),
/// Poisson when `k` is ~0; capped at `cap`.
pub fn surprise(observed: u32, expected: f64, k: f64, cap: f64) -> f64 {
    if observed == 0 {
        return 0.0;
    }
    let mu = expected.max(MIN_EXPECTED);
    let x = u64::from(observed - 1);
    let tail = if k < 1e-6 {
        Poisson::new(mu).map(|d| d.sf(x)).unwrap_or(1.0)
    } else {
        let r = 1.0 / k;
        NegativeBinomial::new(r, r / (r + mu))
            .map(|d| d.sf(x))
            .unwrap_or(1.0)
    };
    if tail <= 0.0 || !tail.is_finite() {
        cap
    } else {
        (-tail.log10()).clamp(0.0, cap)
    }
}

/// The most reports ordinary noise plausibly gives in a window expecting
/// `expected` with dispersion `k`: four standard deviations of the negative
/// binomial, plus two for the tiny expectations where the normal
/// approximation is poor.
pub fn noise_ceiling(expected: f64, k: f64) -> f64 {
    let sd = (expected * (1.0 + k * expected)).sqrt();
    expected + 4.0 * sd + 2.0
}

/// observed / expected, with the expectation floored so that quiet series
/// do not produce absurd ratios.
pub fn ratio(observed: u32, expected: f64) -> f64 {
    f64::from(observed) / expected.max(MIN_EXPECTED.max(0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_matches_hand_values() {
        // P(X >= 1 | 1) = 1 - e^-1 = 0.632 → 0.199
        assert!((surprise(1, 1.0, 0.0, 50.0) - 0.1992).abs() < 1e-3);
        // P(X >= 10 | 1) ≈ 1.114e-7 → 6.95
        assert!((surprise(10, 1.0, 0.0, 50.0) - 6.953).abs() < 1e-2);
        assert_eq!(surprise(0, 5.0, 0.0, 50.0), 0.0);
    }

    #[test]
    fn dispersion_makes_the_same_count_less_surprising() {
        let poisson = surprise(200, 100.0, 0.0, 50.0);
        let nb = surprise(200, 100.0, 0.05, 50.0);
        assert!(poisson > nb && nb > 2.0, "{poisson} {nb}");
    }

    #[test]
    fn extreme_counts_hit_the_cap() {
        assert_eq!(surprise(100_000, 10.0, 0.0, 50.0), 50.0);
        assert_eq!(surprise(100_000, 10.0, 0.1, 30.0), 30.0);
    }

    #[test]
    fn ratio_is_floored_for_quiet_series() {
        assert_eq!(ratio(3, 0.01), 6.0);
        assert_eq!(ratio(30, 10.0), 3.0);
    }
}

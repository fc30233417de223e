//! How often the scales page on pure noise, against the budget that set
//! their thresholds (EVALUATION.md, ninth session: counted as `N / n`
//! tests per scale the budget was exceeded 5–17 times on the long sums;
//! counted as `N / √n`, as `scan::Thresholds` does, every scale is within
//! about twice it).
//!
//! ```sh
//! cargo run --release -p outage-detect --example budget_check [BUDGET] [MONTHS] [K]
//! ```
//!
//! Poisson counts (negative binomial of dispersion `K`, when given: each
//! window's count drawn independently) at a known, constant expectation
//! (no baseline to learn, no persistent dispersion, no slot
//! uncertainty): only the scales and
//! their thresholds. A page is counted when some scale passes its
//! threshold after a window that did not; the sums are then settled, as
//! after an incident. Prints pages per series-month and which scale paged.

use outage_detect::scan::{ScaleSums, Thresholds, SCALES, SPANS};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson};

/// Negative binomial of mean `mean` and dispersion `k` (Poisson when `k`
/// is 0): a Poisson count of a gamma-distributed rate, drawn as the
/// simulator draws its counts.
fn count(rng: &mut ChaCha8Rng, mean: f64, k: f64) -> u32 {
    let rate = if k > 0.0 {
        Gamma::new(1.0 / k, mean * k).map_or(mean, |g| g.sample(rng))
    } else {
        mean
    };
    Poisson::new(rate).map_or(0.0, |p| p.sample(rng)) as u32
}

fn main() {
    let mut args = std::env::args().skip(1);
    let budget: f64 = args
        .next()
        .map_or(0.01, |a| a.parse().expect("BUDGET: a number"));
    let months: u32 = args
        .next()
        .map_or(400, |a| a.parse().expect("MONTHS: a count"));
    let k: f64 = args
        .next()
        .map_or(0.0, |a| a.parse().expect("K: a dispersion"));
    let windows_per_month = 43_200.0;
    let t = Thresholds::new(budget, windows_per_month, 10);
    println!(
        "budget {budget} per series-month; 1-minute windows; dispersion {k}; {months} series-months per row"
    );
    println!("thresholds (surprise) at spans {SPANS:?}: {:.2?}", t.page);
    for mean in [0.5, 2.5, 10.0, 50.0] {
        let mut rng = ChaCha8Rng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        let mut sums = ScaleSums::default();
        let (mut pages, mut by_scale, mut was) = (0u32, [0u32; SCALES], false);
        for _ in 0..u64::from(months) * windows_per_month as u64 {
            let v = sums.push(count(&mut rng, mean, k), mean, 1.0, k, 0.0, &t, 50.0);
            if v.page && !was {
                pages += 1;
                by_scale[ScaleSums::scale_of(v.best.span)] += 1;
                sums.settle();
            }
            was = v.page;
        }
        println!(
            "mean {mean:>5} per window: {:.4} pages per series-month (budget {budget}); by scale {by_scale:?}",
            f64::from(pages) / f64::from(months)
        );
    }
}

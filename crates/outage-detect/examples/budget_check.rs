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

/// xorshift64: enough randomness for counting tails, no dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Gamma of shape `a` ≥ 1 and mean 1 (Marsaglia and Tsang).
    fn gamma_mean_one(&mut self, a: f64) -> f64 {
        let d = a - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.uniform().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v / a;
            }
        }
    }

    /// Negative binomial of mean `mean` and dispersion `k` (Poisson when
    /// `k` is 0): a Poisson count of a gamma-distributed rate.
    fn count(&mut self, mean: f64, k: f64) -> u32 {
        if k > 0.0 {
            let rate = mean * self.gamma_mean_one(1.0 / k);
            self.poisson(rate)
        } else {
            self.poisson(mean)
        }
    }

    /// Poisson by inversion (fine for the means used here).
    fn poisson(&mut self, mean: f64) -> u32 {
        let u = self.uniform();
        let mut p = (-mean).exp();
        let mut cdf = p;
        let mut k = 0;
        while cdf < u && k < 100_000 {
            k += 1;
            p *= mean / f64::from(k);
            cdf += p;
        }
        k
    }
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
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut sums = ScaleSums::default();
        let (mut pages, mut by_scale, mut was) = (0u32, [0u32; SCALES], false);
        for _ in 0..u64::from(months) * windows_per_month as u64 {
            let v = sums.push(rng.count(mean, k), mean, 1.0, k, 0.0, &t, 50.0);
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

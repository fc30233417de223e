//! `replay`'s plots: per service, the global series and its busiest
//! regions, observed against the expected band, incidents shaded.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One closed window of one series, as plotted.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub ts_ms: i64,
    pub observed: f64,
    pub expected: f64,
}

/// Most points drawn per series; longer series are averaged into buckets.
const MAX_POINTS: usize = 1500;

/// A series' points, averaged into ever wider buckets as it grows, so a
/// month-long replay of many series keeps at most `2 × MAX_POINTS` each.
#[derive(Debug, Default)]
pub struct Series {
    points: Vec<Point>,
    /// Windows per stored point.
    bucket: usize,
    /// Windows in the point being filled.
    filling: usize,
}

impl Series {
    pub fn push(&mut self, p: Point) {
        self.bucket = self.bucket.max(1);
        match self.points.last_mut() {
            Some(last) if self.filling < self.bucket => {
                let n = self.filling as f64;
                last.observed = (last.observed * n + p.observed) / (n + 1.0);
                last.expected = (last.expected * n + p.expected) / (n + 1.0);
                self.filling += 1;
            }
            _ => {
                self.points.push(p);
                self.filling = 1;
            }
        }
        if self.points.len() >= 2 * MAX_POINTS && self.filling == self.bucket {
            self.points = self
                .points
                .chunks(2)
                .map(|c| Point {
                    ts_ms: c[0].ts_ms,
                    observed: c.iter().map(|p| p.observed).sum::<f64>() / c.len() as f64,
                    expected: c.iter().map(|p| p.expected).sum::<f64>() / c.len() as f64,
                })
                .collect();
            self.bucket *= 2;
        }
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }
}
/// Regions plotted besides the global series.
const REGIONS: usize = 4;

fn downsample(points: &[Point]) -> Vec<Point> {
    let bucket = points.len().div_ceil(MAX_POINTS).max(1);
    points
        .chunks(bucket)
        .map(|c| Point {
            ts_ms: c[0].ts_ms,
            observed: c.iter().map(|p| p.observed).sum::<f64>() / c.len() as f64,
            expected: c.iter().map(|p| p.expected).sum::<f64>() / c.len() as f64,
        })
        .collect()
}

/// An incident to shade: its scope label (`global` shades every panel, a
/// country code only its own) and its (start, end) span.
pub struct Shade<'a> {
    pub scope: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Writes `dir/<service>.svg`: `series` maps a region label (`global`, `GB`,
/// ...) to its points in time order. Panels: the global series, then the
/// regions with incidents, then the busiest regions, up to four.
pub fn plot_service(
    dir: &Path,
    service: &str,
    series: &BTreeMap<String, Series>,
    incidents: &[Shade<'_>],
) -> anyhow::Result<()> {
    let mut panels: Vec<(&String, &[Point])> = series
        .iter()
        .filter(|(k, _)| *k != "global")
        .map(|(k, v)| (k, v.points()))
        .collect();
    let had_incident = |label: &str| incidents.iter().any(|i| i.scope == label);
    panels.sort_by(|a, b| {
        let total = |v: &[Point]| v.iter().map(|p| p.observed).sum::<f64>();
        had_incident(b.0)
            .cmp(&had_incident(a.0))
            .then(total(b.1).total_cmp(&total(a.1)))
            .then(a.0.cmp(b.0))
    });
    panels.truncate(REGIONS);
    if let Some((k, g)) = series.get_key_value("global") {
        panels.insert(0, (k, g.points()));
    }
    let path = dir.join(format!("{service}.svg"));
    let height = 40 + 200 * panels.len() as u32;
    let root = SVGBackend::new(&path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (title, body) = root.split_vertically(40);
    title
        .draw(&Text::new(
            format!("{service}: observed (blue) vs expected band (grey), incidents shaded"),
            (10, 12),
            ("sans-serif", 18),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (area, (label, points)) in body.split_evenly((panels.len(), 1)).iter().zip(&panels) {
        let points = downsample(points);
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            continue;
        };
        let (x0, x1) = (first.ts_ms, last.ts_ms.max(first.ts_ms + 1));
        let y_max = points
            .iter()
            .map(|p| p.observed.max(p.expected + 3.0 * p.expected.sqrt()))
            .fold(1.0, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(area)
            .margin(6)
            .x_label_area_size(20)
            .y_label_area_size(50)
            .caption(label.as_str(), ("sans-serif", 14))
            .build_cartesian_2d(x0..x1, 0.0..y_max)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .x_labels(8)
            .x_label_formatter(&|ms| {
                chrono::DateTime::from_timestamp_millis(*ms)
                    .map(|t| t.format("%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default()
            })
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for inc in incidents
            .iter()
            .filter(|i| i.scope == "global" || i.scope == label.as_str())
        {
            let (s, e) = (inc.start_ms, inc.end_ms);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s.max(x0), 0.0), (e.min(x1), y_max)],
                    RED.mix(0.15).filled(),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let band: Vec<(i64, f64)> = points
            .iter()
            .map(|p| (p.ts_ms, p.expected + 3.0 * p.expected.sqrt()))
            .collect();
        chart
            .draw_series(AreaSeries::new(band, 0.0, BLACK.mix(0.12)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.ts_ms, p.expected)),
                BLACK.mix(0.5),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.ts_ms, p.observed)),
                BLUE.stroke_width(1),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_series_stay_bounded_and_keep_their_mean() {
        let mut s = Series::default();
        for i in 0..100_000 {
            s.push(Point {
                ts_ms: i * 60_000,
                observed: (i % 10) as f64,
                expected: 4.5,
            });
        }
        assert!(s.points().len() <= 2 * MAX_POINTS, "{}", s.points().len());
        let mean = s.points().iter().map(|p| p.observed).sum::<f64>() / s.points().len() as f64;
        assert!((mean - 4.5).abs() < 0.1, "{mean}");
        assert_eq!(s.points()[0].ts_ms, 0);
    }
}

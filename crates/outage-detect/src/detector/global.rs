//! A service's global incident: opened when its outage has spread to
//! enough regions at once, or when its worldwide series rises and no single
//! region explains it; updated as regions join and resolved when the last
//! one and the worldwide series are back.

use super::*;

impl Detector {
    /// Opens, updates or resolves service `sid`'s global incident after
    /// its series closed the window ending at `window_end`.
    pub(super) fn update_global_incident(
        &mut self,
        sid: usize,
        window_end: i64,
        pos: WeekPos,
        rates: &LearnRates,
        thresholds: &Thresholds,
    ) {
        let cfg = &self.config;
        let span = cfg.global_span.as_millis() as i64;
        let svc = &self.services[sid];
        let global = &self.series[svc.global as usize];
        let global_out = global.state == SeriesState::Outage;
        let mut regions: Vec<SpreadEntry> = svc
            .series
            .iter()
            .map(|&i| &self.series[i as usize])
            .filter(|s| s.scope != Scope::Global)
            .filter_map(|s| s.incident.as_ref().map(|inc| (s, inc)))
            .map(|(s, inc)| SpreadEntry {
                region: match s.scope {
                    Scope::Region(c) => c,
                    Scope::Global => Country::UNKNOWN,
                },
                started_at_ms: inc.started_at_ms,
                peak_ratio: inc.peak_ratio,
            })
            .collect();
        regions.sort_by(|a, b| {
            a.started_at_ms
                .cmp(&b.started_at_ms)
                .then(a.region.cmp(&b.region))
        });
        let recent = regions
            .iter()
            .filter(|r| r.started_at_ms >= window_end - span)
            .count() as u32;
        let name = svc.name.clone();
        let problems = |regions: &[SpreadEntry], series: &[Series], svc: &Service| {
            let mut p = [0u64; 8];
            if let Some(inc) = &series[svc.global as usize].incident {
                p = inc.problems;
            } else {
                for &i in &svc.series {
                    if let Some(inc) = &series[i as usize].incident {
                        if regions
                            .iter()
                            .any(|r| Scope::Region(r.region) == series[i as usize].scope)
                        {
                            for (a, b) in p.iter_mut().zip(inc.problems) {
                                *a += b;
                            }
                        }
                    }
                }
            }
            p
        };
        match &self.services[sid].incident {
            None => {
                // Decided in the window the worldwide series pages, and again
                // in a window in which a second region pages while it stays
                // in outage (a worldwide rise that one region explained has
                // spread since: a problem rising in a big region pages the
                // worldwide series at once, before the next regions show).
                // Not in other windows: later windows of its outage carry
                // the tail of whatever opened it, and a region's excess no
                // longer explains them (a region whose outage flaps pages
                // again with sums that restarted at normal).
                let paged_now = |i: &Incident| i.detected_at_ms == window_end;
                let region_paged = regions.len() >= 2
                    && svc.series.iter().any(|&i| {
                        let s = &self.series[i as usize];
                        s.scope != Scope::Global && s.incident.as_deref().is_some_and(paged_now)
                    });
                let global_rising = global_out
                    && global
                        .incident
                        .as_deref()
                        .is_some_and(|i| paged_now(i) || region_paged);
                // The global series alone opens a global incident when no
                // single region explains it: a diffuse worldwide rise (no
                // region in outage) or a spreading one (several).
                // One region whose excess leaves the rest of the world
                // within its noise (three standard deviations of the
                // worldwide sum) is that region's business: its own series
                // judges it against its own threshold, whether or not it is
                // in outage.
                // Measured on the scale the worldwide series paged on: one
                // window's excess is too noisy to say whose it is. Only
                // worked out in the window it pages.
                let opens_alone = global_rising && {
                    let scale = usize::from(global.best_scale);
                    let excess = |s: &Series| {
                        if scale == 0 {
                            f64::from(s.last_excess)
                        } else {
                            s.sums.excess(scale)
                        }
                    };
                    let b = &global.baseline;
                    let (shape, uncertain) = b.shape_in_use_and_uncertainty_at(pos, None, rates);
                    let (expected, k) = (b.level() * shape, b.dispersion());
                    let sd = global.sums.sd(scale, expected, k, uncertain);
                    let (mut biggest, mut total) = (0.0f64, 0.0);
                    for &i in &svc.series {
                        let s = &self.series[i as usize];
                        if s.scope != Scope::Global {
                            let e = excess(s);
                            biggest = biggest.max(e);
                            total += e;
                        }
                    }
                    let explained_by_one =
                        regions.len() <= 1 && excess(global) - biggest < 3.0 * sd;
                    // The worldwide series keeps UTC, its countries their
                    // local clocks: when a bloc of countries changes to or
                    // from daylight saving time, the worldwide day shifts
                    // and its expectation is off while every country's is
                    // right. A worldwide rise is one the countries see too,
                    // against their own expectations: two of them paged, or
                    // the worldwide series would page on their excesses
                    // alone. (Their sum three standard deviations over, as
                    // before, let a shifted worldwide evening page on
                    // countries a little high in their own noise: altsim
                    // seed 43, the Sunday after the US left daylight saving
                    // time, worldwide excess 75, the countries' 42, 3.6 sd.)
                    let seen_in_regions = regions.len() >= 2
                        || global.sums.surprise_of_excess(
                            scale,
                            total,
                            expected,
                            k,
                            uncertain,
                            cfg.surprise_cap,
                        ) >= thresholds.page[scale];
                    !explained_by_one && seen_in_regions
                };
                if opens_alone || recent >= cfg.global_min_regions {
                    let started = regions
                        .iter()
                        .map(|r| r.started_at_ms)
                        .chain(global.incident.as_ref().map(|i| i.started_at_ms))
                        .min()
                        .unwrap_or(window_end);
                    let incident = Incident {
                        id: stable_id(&[&name, "global", &started.to_string()]),
                        service: name,
                        scope: Scope::Global,
                        problems: problems(&regions, &self.series, &self.services[sid]),
                        peak_ratio: global.incident.as_ref().map_or(0.0, |i| i.peak_ratio),
                        peak_surprise: global.incident.as_ref().map_or(0.0, |i| i.peak_surprise),
                        regions,
                        started_at_ms: started,
                        detected_at_ms: window_end,
                        resolved_at_ms: None,
                    };
                    self.events.push(Event::Opened(incident.clone()));
                    self.services[sid].incident = Some(incident);
                }
            }
            Some(current) => {
                let mut inc = current.clone();
                if let Some(g) = &global.incident {
                    inc.peak_ratio = inc.peak_ratio.max(g.peak_ratio);
                    inc.peak_surprise = inc.peak_surprise.max(g.peak_surprise);
                }
                let mut joined = false;
                for r in &regions {
                    match inc.regions.iter_mut().find(|e| e.region == r.region) {
                        Some(e) => e.peak_ratio = e.peak_ratio.max(r.peak_ratio),
                        None => {
                            inc.regions.push(r.clone());
                            joined = true;
                        }
                    }
                }
                let p = problems(&regions, &self.series, &self.services[sid]);
                for (a, b) in inc.problems.iter_mut().zip(p) {
                    *a = (*a).max(b);
                }
                if !global_out && regions.is_empty() {
                    // Its last series resolved in this window, its end
                    // dated as theirs are: when their calm began.
                    let calm_began = window_end - self.config.resolve_span_ms();
                    inc.resolved_at_ms = Some(calm_began.max(inc.started_at_ms));
                    self.events.push(Event::Resolved(inc));
                    self.services[sid].incident = None;
                } else {
                    if joined {
                        self.events.push(Event::Updated(inc.clone()));
                    }
                    self.services[sid].incident = Some(inc);
                }
            }
        }
    }
}

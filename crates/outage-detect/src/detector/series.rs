//! One series' window: scored at every scale, stepped through normal,
//! pending and outage, and learned from.
//!
//! What [`Detector`](super::Detector) does for each series of a service as
//! a window closes, in that order: [`Series::score`] asks every scale and
//! the problem mix ([`crate::scan`] holds the rule that decides a page),
//! [`Series::step`] moves the state machine and opens or resolves the
//! series' incident, [`Series::learn_window`] teaches the baseline what
//! the window may teach. What is shared by the service's series (its
//! worldwide shape, its region factors, whether another region is down)
//! is worked out once by the caller and passed in [`ServiceWindow`].

use serde::{Deserialize, Serialize};

use super::held::Held;
use super::{stable_id, Acc, CloseParams, DetectorConfig};
use crate::baseline::{Baseline, WeekPos};
use crate::event::{Event, Incident, Scope, SeriesState, WindowScore};
use crate::mix::{Misfit, MixVerdict, Shares};
use crate::recur::Recurrence;
use crate::regional;
use crate::scan::{Evidence, ScaleSums, Verdict, HOLD_SURPRISE, SUSPECT_SURPRISE};
use crate::score;

/// No onset yet (see `Series::onset_at`).
pub(super) const NO_ONSET: u32 = u32::MAX;

/// One series (a service in one country, or worldwide): what it learned,
/// its sums, and where it stands (normal, pending or in an outage).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Series {
    /// Its service's index in the detector.
    pub(super) service: u32,
    /// A country, or worldwide.
    pub(super) scope: Scope,
    /// The learned expectation.
    pub(super) baseline: Baseline,
    /// The weighted sums every scale is scored on.
    pub(super) sums: ScaleSums,
    /// Normal, pending or in an outage.
    pub(super) state: SeriesState,
    /// Pending: windows since the run was last suspect; outage:
    /// consecutive normal windows.
    pub(super) run: u32,
    /// Start of the current pending/outage run.
    pub(super) since_ms: i64,
    /// Start of the first clearly elevated window (its own surprise at
    /// least [`scan::HOLD_SURPRISE`](crate::scan::HOLD_SURPRISE)) of the
    /// current run of windows above expectation (above its median): where
    /// an incident whose run was pending before it paged says it started;
    /// as its index (start / width, wrapping like [`Held`]'s).
    /// [`NO_ONSET`] when the last window was not above expectation.
    pub(super) onset_at: u32,
    /// Boxed: most series never have one, and the box keeps them small.
    pub(super) incident: Option<Box<Incident>>,
    /// What the pending run gathers for its incident; `None` outside a
    /// pending run.
    pub(super) pending: Option<Box<PendingRun>>,
    /// Observed minus expected count of the last closed window.
    pub(super) last_excess: f32,
    /// Scale (index into `scan::SPANS`) with the most evidence in the last
    /// closed window: a global incident is attributed on it.
    pub(super) best_scale: u8,
    /// Consecutive windows far below expectation (see `Verdict::low`),
    /// saturating: with windows under 1.4 s "a day of them" is read as
    /// 65,534.
    pub(super) low_run: u16,
    /// Episodes this series has shown (see [`crate::recur`]).
    pub(super) recur: Recurrence,
    /// Peak size (reports over the level) of the current run once it
    /// reached the paging bar; 0 before, and between runs.
    pub(super) run_size: f32,
    /// The run's largest excess on the longest scale, over the level (a
    /// long rise's size); 0 as `run_size`.
    pub(super) run_long: f32,
    /// Normal windows not learned yet (see [`Held`]).
    pub(super) held: Held,
    /// How far its problem mix is from its service's (`crate::mix`).
    pub(super) mix_misfit: Misfit,
}

/// What a pending run gathers for the incident it may become. Boxed in
/// [`Series`] (most series are never pending, and a box costs a series 8
/// bytes where this costs 24), and dropped when the run ends or pages.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct PendingRun {
    /// Problems, carried into the incident (saturating: a pending run is
    /// short, and the incident counts in `u64`).
    pub(super) problems: [u16; 8],
    /// Peak ratio and surprise.
    pub(super) peak: (f32, f32),
}

impl Series {
    /// What this series tells about its region's common factor (see
    /// [`crate::regional`]), as its sums stand before the window being
    /// closed: nothing from a series in an outage (its rise is not the
    /// region's) or one too young to trust.
    pub(super) fn regional_share(&self, min_history_windows: u32) -> Option<(f64, f64)> {
        if self.state == SeriesState::Outage || self.baseline.windows() < min_history_windows {
            return None;
        }
        let (observed, expected, k_span) = self.sums.regional(self.baseline.dispersion());
        regional::share(observed, expected, k_span)
    }

    /// The run's window of `count` reports counts toward its size: its
    /// peak window and its excess on the longest scale, over `level`.
    pub(super) fn grow_run(&mut self, count: u32, level: f64) {
        let long = self.sums.excess(crate::scan::SCALES - 1) / level;
        self.run_size = self.run_size.max((f64::from(count) / level) as f32);
        self.run_long = self.run_long.max(long as f32);
    }

    /// Hours since the epoch of `ms` in the series' local time (see
    /// [`crate::tz`]; UTC for the worldwide series).
    pub(super) fn local_hour(&self, ms: i64) -> i64 {
        crate::tz::local_ms(ms, self.scope.zone()).div_euclid(3_600_000)
    }

    /// A pending or outage run ended: if it reached the paging bar, it was
    /// an episode of this series. What it gathered while pending goes.
    pub(super) fn end_episode(&mut self) {
        self.pending = None;
        if self.run_size > 0.0 {
            self.recur.record(
                f64::from(self.run_size),
                f64::from(self.run_long),
                self.local_hour(self.since_ms),
            );
            self.run_size = 0.0;
            self.run_long = 0.0;
        }
    }
}

impl Series {
    pub(super) fn new(service: u32, scope: Scope) -> Series {
        Series {
            service,
            scope,
            baseline: Baseline::new(),
            sums: ScaleSums::default(),
            state: SeriesState::Normal,
            run: 0,
            since_ms: 0,
            onset_at: NO_ONSET,
            incident: None,
            pending: None,
            last_excess: 0.0,
            best_scale: 0,
            low_run: 0,
            recur: Recurrence::default(),
            run_size: 0.0,
            run_long: 0.0,
            held: Held::default(),
            mix_misfit: Misfit::default(),
        }
    }
}

/// What every series of one service shares in the window being closed.
pub(super) struct ServiceWindow<'a> {
    /// The detector's configuration.
    pub(super) cfg: &'a DetectorConfig,
    /// What the configuration gives every window (rates, thresholds).
    pub(super) params: &'a CloseParams,
    /// Start of the window being closed.
    pub(super) start_ms: i64,
    /// Its index (start / width, wrapping as [`Held`]'s).
    pub(super) at: u32,
    /// The service's name, for its incidents and window scores.
    pub(super) service: &'a str,
    /// Another region of the service is in an outage (as the window
    /// began): the others page on the spreading bar (`scan` module doc).
    pub(super) spreading: bool,
    /// The service's problem shares, as they stand before this window
    /// teaches them.
    pub(super) shares: Option<&'a Shares>,
    /// The service is not in a data gap or a quiet day (or has been for a
    /// day: a new normal), so its windows may teach.
    pub(super) learn_ok: bool,
    /// Reports arrived since the detector was made dormant: its windows
    /// are reported.
    pub(super) live: bool,
}

/// How one series scored one window (see [`Series::score`]).
struct Scored {
    /// The window's place in the series' own week.
    slot: usize,
    /// The profile's multiplier the window is scored and learned with.
    shape: f64,
    /// What the region's other services share (`crate::regional`).
    common: f64,
    /// What the window is judged against.
    mu: f64,
    /// Its count over `mu` (what incidents and window scores report).
    ratio: f64,
    /// The baseline's over-dispersion, the window's dispersion as scored,
    /// and the uncertainty of the hour's expectation.
    k_disp: f64,
    k_window: f64,
    uncertain: f64,
    /// Every scale and the problem mix.
    verdict: Verdict,
    /// Old enough to be trusted to page.
    trusted: bool,
    /// The total alone makes the window suspect (the mix is learned from
    /// windows it does not).
    count_suspect: bool,
    /// Something makes the window suspect.
    suspect: bool,
}

impl Series {
    /// Closes one window of `acc` reports for this series (index `idx`,
    /// the service's worldwide series when `worldwide`): scores it,
    /// steps the series' state (opening or resolving its incident into
    /// `events`) and learns from it (windows released for learning go to
    /// `to_learn`). Whether the service's mix may learn from the window
    /// (the worldwide series' window teaches it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn close_window(
        &mut self,
        idx: u32,
        worldwide: bool,
        acc: &Acc,
        borrowed: Option<f64>,
        common: f64,
        win: &ServiceWindow<'_>,
        to_learn: &mut Vec<(u32, u32, f32)>,
        events: &mut Vec<Event>,
    ) -> bool {
        let scored = self.score(acc, borrowed, common, win);
        let page = self.step(acc, worldwide, &scored, win, events);
        let mix_ok = self.learn_window(idx, acc, &scored, win, to_learn);
        let c = acc.count;
        let mu = scored.mu;
        if (c > 0 || mu >= 0.5) && win.live {
            events.push(Event::Window(WindowScore {
                window_start_ms: win.start_ms,
                service: win.service.to_string(),
                scope: self.scope,
                observed: c,
                expected: mu,
                surprise: scored.verdict.best.surprise,
                span: scored.verdict.best.span as u32,
                ratio: scored.ratio,
                anomalous: self.state == SeriesState::Outage || page,
                state: self.state,
            }));
        }
        mix_ok
    }

    /// Scores the window at every scale ([`ScaleSums::push`]) and on its
    /// problem mix ([`crate::mix`]): one problem rising is evidence of the
    /// outage the total hides.
    fn score(
        &mut self,
        acc: &Acc,
        borrowed: Option<f64>,
        common: f64,
        win: &ServiceWindow<'_>,
    ) -> Scored {
        let CloseParams {
            rates,
            thresholds,
            min_history_windows,
            ..
        } = *win.params;
        let cap = win.cfg.surprise_cap;
        let c = acc.count;
        // The window's place in the series' own week (local time for a
        // country, UTC for the worldwide series).
        let pos = WeekPos::local(win.start_ms, win.cfg.width_ms(), self.scope.zone());
        // Computed once: the window is scored and learned with it.
        let (shape, uncertain) = self
            .baseline
            .shape_in_use_and_uncertainty_at(pos, borrowed, &rates);
        let own_mu = self.baseline.level() * shape;
        // What the window is judged against: the series' own
        // expectation times what its region's other services share.
        let mu = own_mu * common;
        let k_disp = self.baseline.dispersion();
        let trusted = self.baseline.windows() >= min_history_windows;
        let mut verdict = self
            .sums
            .push(c, own_mu, common, k_disp, uncertain, &thresholds, cap);
        let count_suspect = trusted && verdict.suspect;
        let k_window = self.sums.window_dispersion(k_disp, uncertain);
        let mixed = win.shares.map_or_else(MixVerdict::default, |sh| {
            sh.score(
                &acc.problems,
                mu,
                k_window + self.mix_misfit.get(),
                thresholds.problem_page,
                thresholds.problem_spread,
                thresholds.problem_allowance,
                thresholds.min_count,
                cap,
            )
        });
        verdict.page |= mixed.page;
        verdict.spread |= mixed.spread;
        verdict.suspect |= mixed.surprise >= SUSPECT_SURPRISE;
        verdict.hold |= mixed.surprise >= HOLD_SURPRISE;
        // The window shows the evidence that is furthest over its bar.
        let best_bar = thresholds.page[ScaleSums::scale_of(verdict.best.span)];
        if mixed.surprise - thresholds.page[0] > verdict.best.surprise - best_bar {
            verdict.best = Evidence {
                span: 1.0,
                observed: mixed.observed,
                expected: mixed.expected,
                surprise: mixed.surprise,
            };
        }
        Scored {
            slot: pos.slot,
            shape,
            common,
            mu,
            ratio: score::ratio(c, mu),
            k_disp,
            k_window,
            uncertain,
            suspect: trusted && verdict.suspect,
            verdict,
            trusted,
            count_suspect,
        }
    }

    /// Steps the series through normal, pending and outage on the scored
    /// window, opening and resolving its incident (into `events`, except
    /// the worldwide series', which the service's global incident
    /// reports). Whether the window paged.
    fn step(
        &mut self,
        acc: &Acc,
        worldwide: bool,
        scored: &Scored,
        win: &ServiceWindow<'_>,
        events: &mut Vec<Event>,
    ) -> bool {
        let cfg = win.cfg;
        let width = cfg.width_ms();
        let window_end = win.start_ms + width;
        let &Scored {
            mu,
            ratio,
            k_disp,
            ref verdict,
            trusted,
            suspect,
            ..
        } = scored;
        let c = acc.count;
        // A run that reaches the paging bar is an episode; in a series
        // whose episodes recur daily it pages only if it is bigger than
        // they were (`recur`).
        self.recur.age(win.params.recur_decay);
        let level = self.baseline.level().max(0.5);
        let reached = trusted && (verdict.page || (win.spreading && !worldwide && verdict.spread));
        if reached && self.state != SeriesState::Outage {
            self.grow_run(c, level);
        }
        // Worked out only for a run that reaches the bar: where it
        // began (this window, unless it was pending) in local time.
        let held = reached
            && self.state != SeriesState::Outage
            && self.recur.holds_back(
                f64::from(self.run_size),
                f64::from(self.run_long),
                level,
                k_disp,
                self.local_hour(if self.state == SeriesState::Pending {
                    self.since_ms
                } else {
                    win.start_ms
                }),
            );
        let page = reached && !held;
        let own = verdict.window_surprise;
        let at = win.at;
        // Above expectation means above its median (about the mean
        // plus a third, a Poisson count's; over-dispersion lowers the
        // median, so this errs towards dating later): in a series
        // under one report a window, a single report is above the
        // mean in more than half of all windows, and runs of them
        // dated outages minutes early (altsim seed 26 `roblox` AU:
        // one window of 5 at 0.8, then 2, 1, 1, 2, 3, 3 and the
        // outage six minutes later).
        self.onset_at = if f64::from(c) <= mu + 1.0 / 3.0 {
            NO_ONSET
        } else if self.onset_at == NO_ONSET && own >= HOLD_SURPRISE {
            at
        } else {
            self.onset_at
        };

        match self.state {
            SeriesState::Normal | SeriesState::Pending if page || suspect => {
                if self.state == SeriesState::Normal {
                    self.state = SeriesState::Pending;
                    self.since_ms = win.start_ms;
                    self.pending = None;
                }
                self.run = 0;
                let pending = self.pending.get_or_insert_with(Box::default);
                for (p, n) in pending.problems.iter_mut().zip(acc.problems) {
                    *p = p.saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
                }
                pending.peak = (
                    pending.peak.0.max(ratio as f32),
                    pending.peak.1.max(verdict.best.surprise as f32),
                );
                if page {
                    let pending = self.pending.take().unwrap_or_default();
                    self.state = SeriesState::Outage;
                    self.run = 0;
                    self.held.drop_all();
                    // A run that was already pending began at its
                    // onset, or when it became suspect. One that pages
                    // straight from normal began in this window: the
                    // windows above their mean before it are half of
                    // all windows, and a noisy blip followed by two of
                    // them dated sharp outages minutes before they
                    // began (counted false and missed). `since_ms`
                    // is this window when the run began in it.
                    let started = if self.since_ms == win.start_ms {
                        win.start_ms
                    } else if self.onset_at != NO_ONSET {
                        win.start_ms - i64::from(at.wrapping_sub(self.onset_at)) * width
                    } else {
                        self.since_ms
                    };
                    let region = self.scope.label().to_string();
                    let incident = Incident {
                        id: stable_id(&[win.service, "region", &region, &started.to_string()]),
                        service: win.service.to_string(),
                        scope: self.scope,
                        regions: Vec::new(),
                        started_at_ms: started,
                        detected_at_ms: window_end,
                        resolved_at_ms: None,
                        peak_ratio: f64::from(pending.peak.0),
                        peak_surprise: f64::from(pending.peak.1),
                        problems: pending.problems.map(u64::from),
                    };
                    // The global series' own outage is reported through
                    // the service's global incident, not on its own.
                    if !worldwide {
                        events.push(Event::Opened(incident.clone()));
                    }
                    self.incident = Some(Box::new(incident));
                }
            }
            SeriesState::Pending => {
                self.run += 1;
                if self.run > cfg.pending_tolerance {
                    self.state = SeriesState::Normal;
                    self.run = 0;
                    self.end_episode();
                }
            }
            SeriesState::Normal => {}
            SeriesState::Outage => {
                if verdict.hold {
                    self.run = 0;
                    self.grow_run(c, level);
                    if let Some(inc) = &mut self.incident {
                        inc.peak_ratio = inc.peak_ratio.max(ratio);
                        inc.peak_surprise = inc.peak_surprise.max(verdict.best.surprise);
                        for (p, n) in inc.problems.iter_mut().zip(acc.problems) {
                            *p += u64::from(n);
                        }
                    }
                } else {
                    self.run += 1;
                    if self.run >= cfg.resolve_windows() {
                        self.state = SeriesState::Normal;
                        self.run = 0;
                        // The sums restart as if the span had been
                        // normal: the outage's excess must not linger
                        // in them and page its own tail.
                        self.sums.settle();
                        self.end_episode();
                        if let Some(mut inc) = self.incident.take() {
                            inc.resolved_at_ms = Some(window_end - cfg.resolve_span_ms());
                            if !worldwide {
                                events.push(Event::Resolved(*inc));
                            }
                        }
                    }
                }
            }
        }

        // A rise that lasts a day is the new normal: the baseline moves
        // to it at once, and an outage still open is resolved.
        if self.state != SeriesState::Normal
            && win.start_ms - self.since_ms >= i64::from(win.params.windows_per_day) * width
        {
            let factor = self.sums.long_ratio().clamp(0.05, 20.0);
            self.baseline.rebase(factor);
            self.sums.rebase(factor);
            self.held.drop_all();
            self.state = SeriesState::Normal;
            self.run = 0;
            self.end_episode();
            if let Some(mut inc) = self.incident.take() {
                inc.resolved_at_ms = Some(window_end);
                if !worldwide {
                    events.push(Event::Resolved(*inc));
                }
            }
        }

        self.last_excess = (f64::from(c) - mu) as f32;
        self.best_scale = ScaleSums::scale_of(verdict.best.span) as u8;
        page
    }

    /// Learns from the scored window what it may teach: windows of a
    /// pending or suspected run are not learned, so a slow outage cannot
    /// teach its own hour of the week; nor are windows far below
    /// expectation (a regional holiday), unless that lasts a day: then it
    /// is the new normal. A trusted series' normal windows are held back
    /// a while ([`Held`]); those released go to `to_learn`. Whether the
    /// service's problem mix may learn from the window.
    fn learn_window(
        &mut self,
        idx: u32,
        acc: &Acc,
        scored: &Scored,
        win: &ServiceWindow<'_>,
        to_learn: &mut Vec<(u32, u32, f32)>,
    ) -> bool {
        let CloseParams {
            rates,
            thresholds,
            windows_per_day,
            ..
        } = *win.params;
        let c = acc.count;
        let &Scored {
            slot,
            shape,
            common,
            mu,
            k_disp,
            k_window,
            uncertain,
            ref verdict,
            trusted,
            count_suspect,
            suspect,
            ..
        } = scored;
        self.low_run = if verdict.low {
            self.low_run.saturating_add(1)
        } else {
            0
        };
        let low_ok = self.low_run == 0
            || u32::from(self.low_run) > windows_per_day.min(u32::from(u16::MAX) - 1);
        // The mix is learned from every window whose total is not
        // suspect, whatever its problems say and whatever the state:
        // learned only where they say nothing, a mix that changed for
        // good (a new client labelling problems otherwise) would page
        // every region every day; at the level's half-life, an
        // outage's problem moves the shares a few hundredths an hour.
        let mix_ok = !count_suspect && win.learn_ok && low_ok;
        if mix_ok {
            if let Some(sh) = win.shares {
                sh.learn_misfit(
                    &mut self.mix_misfit,
                    &acc.problems,
                    (mu, k_window),
                    self.baseline.dispersion_rate(&rates),
                );
            }
        }
        let mut release = |i: u32, count: f64| to_learn.push((idx, i, count as f32));
        if self.state == SeriesState::Normal && !suspect && win.learn_ok && low_ok {
            if trusted {
                let learned = f64::from(c).min(score::noise_ceiling(mu, k_disp));
                self.held.push(win.at, learned, &mut release);
            } else {
                self.baseline
                    .learn_with_shape(slot, f64::from(c), shape, &rates);
            }
            self.sums
                .learn(k_disp, thresholds.persistent_rate, common, uncertain);
        }
        mix_ok
    }
}

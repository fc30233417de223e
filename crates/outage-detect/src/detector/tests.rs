//! Behaviour of the detector as a user sees it: reports in, incidents out.

use super::*;
use crate::region::Region;
use crate::report::Problem;
use std::borrow::Cow;
use std::time::Duration;

const MIN: i64 = 60_000;
const T0: i64 = 1_537_747_200_000; // Monday 2018-09-24 00:00 UTC

fn report(service: &str, region: &str, ts_ms: i64, reporter: Option<String>) -> Report<'static> {
    Report {
        service: Cow::Owned(service.into()),
        region: Region::parse(region).unwrap(),
        ts_ms,
        problem: Problem::Voice,
        reporter: reporter.map(Cow::Owned),
        source: None,
    }
}

/// Deterministic pseudo-random count around `mean` (±30 %).
fn noisy(mean: f64, seed: u64) -> u32 {
    let x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let u = ((x >> 33) as f64) / f64::from(u32::MAX >> 1);
    (mean * (0.7 + 0.6 * u)).round() as u32
}

/// Feeds `minutes` of traffic: `rate(region, minute)` reports per minute.
fn feed(
    d: &mut Detector,
    from: i64,
    minutes: i64,
    regions: &[&str],
    rate: impl Fn(&str, i64) -> f64,
) -> Vec<Event> {
    let mut events = Vec::new();
    for m in 0..minutes {
        let t = from + m * MIN;
        for (ri, r) in regions.iter().enumerate() {
            let n = noisy(rate(r, t), (t / MIN) as u64 * 31 + ri as u64);
            for i in 0..n {
                d.observe(&report(
                    "alexa",
                    r,
                    t + i64::from(i) * 50,
                    Some(format!("{r}{t}{i}")),
                ));
            }
        }
        events.extend(d.drain_events());
    }
    events
}

fn diurnal(base: f64, t: i64) -> f64 {
    let h = (t / 3_600_000 % 24) as f64;
    base * (1.0 + 0.6 * ((h - 6.0) / 24.0 * std::f64::consts::TAU).sin())
}

fn opened(events: &[Event]) -> Vec<&Incident> {
    events
        .iter()
        .filter_map(|e| {
            if let Event::Opened(i) = e {
                Some(i)
            } else {
                None
            }
        })
        .collect()
}

/// Feeds `minutes` from `T0` to a default detector, exactly `n(minute)`
/// reports of `alexa` GB in each: the events.
fn exact_counts(minutes: i64, n: impl Fn(i64) -> i64) -> Vec<Event> {
    let mut d = Detector::new(DetectorConfig::default());
    let mut events = Vec::new();
    for m in 0..minutes {
        let t = T0 + m * MIN;
        for i in 0..n(m) {
            d.observe(&report("alexa", "GB", t + i * 50, Some(format!("{t}{i}"))));
        }
        events.extend(d.drain_events());
    }
    events
}

#[test]
fn a_noisy_blip_before_an_outage_does_not_date_it() {
    // 20 reports a minute for three days; then one window of 34 (a
    // blip, 1 in 500), two of 22 (above the mean, within its noise),
    // and the outage at 120 a minute from minute 10.
    let start = T0 + 3 * 1440 * MIN;
    let events = exact_counts(3 * 1440 + 15, |m| match m - 3 * 1440 {
        7 => 34,
        8 | 9 => 22,
        10.. => 120,
        _ => 20,
    });
    let inc = opened(&events);
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].started_at_ms, start + 10 * MIN, "{inc:?}");
}

#[test]
fn single_reports_in_a_quiet_series_do_not_date_an_outage_early() {
    // One report in four minutes of five (0.8 a minute) for a week; then
    // a window of 5 (1 in 700), four single reports (above the mean,
    // not above its median: as common as ever) and the outage at 8 a
    // minute from minute 10.
    let start = T0 + 7 * 1440 * MIN;
    let events = exact_counts(7 * 1440 + 20, |m| match m - 7 * 1440 {
        5 => 5,
        6..=9 => 1,
        10.. => 8,
        _ => i64::from(m % 5 != 0),
    });
    let inc = opened(&events);
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].started_at_ms, start + 10 * MIN, "{inc:?}");
}

#[test]
fn quiet_on_normal_traffic_then_detects_an_outage_and_resolves() {
    let mut d = Detector::new(DetectorConfig::default());
    let regions = ["GB", "DE", "FR", "US"];
    let warm = feed(&mut d, T0, 3 * 1440, &regions, |_, t| diurnal(20.0, t));
    assert!(
        opened(&warm).is_empty(),
        "false incidents: {:?}",
        opened(&warm)
    );
    let start = T0 + 3 * 1440 * MIN;
    let outage = feed(&mut d, start, 30, &regions, |r, t| {
        let base = diurnal(20.0, t);
        if r == "GB" && t >= start + 10 * MIN {
            base * 6.0
        } else {
            base
        }
    });
    let inc = opened(&outage);
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].scope, Scope::Region(Country::parse("GB").unwrap()));
    assert_eq!(inc[0].started_at_ms, start + 10 * MIN);
    assert!(
        inc[0].detected_at_ms <= start + 12 * MIN,
        "detected within 2 windows"
    );
    let after = feed(&mut d, start + 30 * MIN, 30, &regions, |_, t| {
        diurnal(20.0, t)
    });
    assert!(after
        .iter()
        .any(|e| matches!(e, Event::Resolved(i) if i.id == inc[0].id)));
}

#[test]
fn an_outage_flapping_on_and_off_is_one_incident() {
    // GB at 6× for 5 minutes, then 12 minutes normal, for an hour; then
    // calm. One incident, resolved after the last flap.
    let mut d = Detector::new(DetectorConfig::default());
    let regions = ["GB", "DE", "FR", "US"];
    feed(&mut d, T0, 3 * 1440, &regions, |_, t| diurnal(20.0, t));
    let start = T0 + 3 * 1440 * MIN;
    let on = |t: i64| t < start + 60 * MIN && (t - start) / MIN % 17 < 5;
    let events = feed(&mut d, start, 90, &regions, |r, t| {
        diurnal(20.0, t) * if r == "GB" && on(t) { 6.0 } else { 1.0 }
    });
    let inc = opened(&events);
    assert_eq!(inc.len(), 1, "{inc:?}");
    let resolved: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Resolved(i) => Some(i.resolved_at_ms),
            _ => None,
        })
        .collect();
    // The last flap is minutes 51–55; the calm begins once the short
    // scales have let it go.
    let end = start + 56 * MIN;
    assert!(
        matches!(resolved[..], [Some(at)] if at >= end && at <= end + 10 * MIN),
        "resolved {resolved:?}, last flap ended {end}"
    );
}

#[test]
fn bursts_that_come_back_daily_stop_paging_but_a_bigger_one_pages() {
    let mut d = Detector::new(DetectorConfig::default());
    // Two 20-minute bursts of 10× a day, at hours that move, for three
    // weeks; then one of 30×.
    let burst_at = |day: i64, k: i64| T0 + day * 1440 * MIN + (3 + 11 * k + day % 5) * 60 * MIN;
    let days = 21;
    let rate = |t: i64| {
        let day = (t - T0) / (1440 * MIN);
        let in_burst = (0..2).any(|k| {
            let b = burst_at(day, k);
            t >= b && t < b + 20 * MIN
        });
        let big = t >= T0 + days * 1440 * MIN + 600 * MIN;
        5.0 * if big {
            30.0
        } else if in_burst && day >= 2 {
            10.0
        } else {
            1.0
        }
    };
    let events = feed(&mut d, T0, days * 1440, &["GB"], |_, t| rate(t));
    let per_week = |w: i64| {
        opened(&events)
            .iter()
            .filter(|i| (i.started_at_ms - T0) / (7 * 1440 * MIN) == w)
            .count()
    };
    // Week 1 pages on its bursts; by week 3 they are behaviour.
    assert!(per_week(0) >= 8, "week 1: {}", per_week(0));
    assert_eq!(
        per_week(2),
        0,
        "week 3 still pages: {:?}",
        opened(&events)
            .iter()
            .map(|i| (
                (i.started_at_ms - T0) as f64 / (1440 * MIN) as f64,
                i.peak_ratio
            ))
            .collect::<Vec<_>>()
    );
    let big = feed(&mut d, T0 + days * 1440 * MIN, 620, &["GB"], |_, t| rate(t));
    assert_eq!(opened(&big).len(), 1, "{:?}", opened(&big));
}

#[test]
fn an_hour_that_stays_off_is_relearned_not_suspected_every_week() {
    // From day 8 the hour 10:00-11:00 UTC runs 40 % above what the
    // first week taught (a region's clock moved). Its windows are
    // suspect at first; its windows that are not suspect are learned
    // (eight windows late), so three weeks on the hour is no longer
    // surprising and it never paged.
    let mut d = Detector::new(DetectorConfig::default());
    let rate = |t: i64| {
        let day = (t - T0) / (1440 * MIN);
        let hour = (t - T0) % (1440 * MIN) / (60 * MIN);
        40.0 * if day >= 7 && hour == 10 { 1.4 } else { 1.0 }
    };
    let events = feed(&mut d, T0, 28 * 1440, &["GB"], |_, t| rate(t));
    let hour_surprise = |day: i64| {
        let from = T0 + day * 1440 * MIN + 600 * MIN;
        let s: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Window(w)
                    if w.scope != Scope::Global
                        && (from..from + 60 * MIN).contains(&w.window_start_ms) =>
                {
                    Some(w.surprise)
                }
                _ => None,
            })
            .collect();
        s.iter().sum::<f64>() / s.len() as f64
    };
    let first = hour_surprise(7);
    let last = hour_surprise(27);
    assert!(first > 2.0, "the shift is visible at first: {first}");
    assert!(
        last < first / 2.0,
        "still surprising after three weeks: {first} -> {last}"
    );
    assert!(opened(&events).is_empty(), "{:?}", opened(&events));
}

#[test]
fn a_first_day_that_falls_fourfold_learns_its_evening() {
    // 40 reports a minute until 14:00 UTC, 10 after, from the first day.
    // The evening's first windows are expected at the level the morning
    // taught, so the service looked far below it (a data gap) and
    // nothing was learned; the evening stayed unseen, expected at the
    // morning's level every day, and an outage that tripled it never
    // paged. Its guess is only as sure as the day has shown: the evening
    // is learned on the first day, and the outage on the third pages.
    let mut d = Detector::new(DetectorConfig::default());
    let outage = |t: i64| (T0 + 2 * 1440 * MIN + 18 * 60 * MIN..).contains(&t);
    let rate = |t: i64| {
        let hour = (t - T0) % (1440 * MIN) / (60 * MIN);
        match (hour < 14, outage(t)) {
            (true, _) => 40.0,
            (false, false) => 10.0,
            (false, true) => 35.0,
        }
    };
    let events = feed(&mut d, T0, 2 * 1440 + 18 * 60 + 30, &["GB"], |_, t| rate(t));
    let found = opened(&events);
    assert!(
        found
            .iter()
            .any(|i| i.scope == Scope::Region(Country::parse("GB").unwrap())
                && outage(i.detected_at_ms)
                && i.detected_at_ms < T0 + 2 * 1440 * MIN + 18 * 60 * MIN + 10 * MIN),
        "{found:?}"
    );
    assert!(
        found.iter().all(|i| outage(i.detected_at_ms)),
        "paged before the outage: {found:?}"
    );
}

#[test]
fn a_daylight_saving_change_is_not_a_shift_of_the_day() {
    // Great Britain's evenings are busy in local time; on 2018-10-28 at
    // 01:00 UTC its clocks go back an hour, so in UTC the whole day
    // moves an hour later. Its series learns its week in local time:
    // the days after the change are as expected as the days before.
    // The worldwide series keeps UTC and sees the shift, but Britain's
    // own expectation explains it: no global incident either.
    let mut d = Detector::new(DetectorConfig::default());
    let change = 1_540_688_400_000; // 2018-10-28 01:00 UTC
    let rate = |_: &str, t: i64| {
        let local = t + if t < change { 3_600_000 } else { 0 };
        let h = (local / 60_000 % 1440) as f64 / 60.0;
        60.0 * (1.0 + 0.9 * ((h - 12.0) / 24.0 * std::f64::consts::TAU).sin())
    };
    let from = change - 15 * 1440 * MIN;
    let before = feed(&mut d, from, 15 * 1440, &["GB"], rate);
    assert!(opened(&before).is_empty(), "{:?}", opened(&before));
    let after = feed(&mut d, change, 3 * 1440, &["GB"], rate);
    assert!(opened(&after).is_empty(), "{:?}", opened(&after));
    let suspect = after
        .iter()
        .filter(|e| matches!(e, Event::Window(w) if w.scope != Scope::Global && w.surprise >= 3.0))
        .count();
    assert!(suspect <= 5, "{suspect} suspect windows after the change");
}

#[test]
fn a_worldwide_day_shifted_by_daylight_saving_is_not_a_global_incident() {
    // Britain's evening is busy from 18:00 to 22:00 local time; on
    // 2018-10-28 at 01:00 UTC its clocks go back, so in UTC its
    // evening ends an hour later and the worldwide series (in UTC)
    // pages on 21:00-22:00, quiet for a fortnight; Britain's own
    // series, in local time, expects it. Twenty small countries
    // without daylight saving time run 40 % high that hour, each
    // within its own noise: their excesses add up to more than three
    // standard deviations of the worldwide sum (which opened a global
    // incident before), but the worldwide series would not page on
    // them, so they do not confirm its rise.
    let change = 1_540_688_400_000; // 2018-10-28 01:00 UTC
    let small = [
        "JP", "KR", "CN", "IN", "SG", "TH", "ID", "VN", "PH", "MY", "TW", "HK", "PK", "BD", "LK",
        "KE", "NG", "EG", "SA", "AE",
    ];
    let mut regions = vec!["GB"];
    regions.extend(small);
    let rate = |r: &str, t: i64| {
        let hour = |t: i64| t / 3_600_000 % 24;
        if r == "GB" {
            let local = t + if t < change { 3_600_000 } else { 0 };
            if (18..22).contains(&hour(local)) {
                60.0
            } else {
                5.0
            }
        } else if t > change && hour(t) == 21 && t < change + 86_400_000 {
            5.6
        } else {
            4.0
        }
    };
    let mut d = Detector::new(DetectorConfig::default());
    let from = change - 15 * 1440 * MIN;
    feed(&mut d, from, 15 * 1440, &regions, rate);
    let after = feed(&mut d, change, 1440, &regions, rate);
    let global: Vec<_> = opened(&after)
        .into_iter()
        .filter(|i| i.scope == Scope::Global)
        .collect();
    assert!(global.is_empty(), "{global:?}");
}

#[test]
fn a_worldwide_rise_too_small_for_any_country_opens_a_global_incident() {
    // Ten countries at 10 reports a minute each rise 1.6× together:
    // too little for any one of them within the half hour, plain in
    // the worldwide sum, and seen in the countries' own expectations
    // (their excesses add up), so the worldwide series pages alone.
    let regions = ["GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "IE", "JP"];
    let mut d = Detector::new(DetectorConfig::default());
    // Eight days of history: the hour of the rise has been seen once
    // (an hour never seen is a guess, trusted to ±20 %).
    let rise = T0 + 8 * 1440 * MIN;
    let rate = |_: &str, t: i64| if t >= rise { 16.0 } else { 10.0 };
    let history = feed(&mut d, T0, 8 * 1440, &regions, rate);
    assert!(opened(&history).is_empty(), "{:?}", opened(&history));
    let events = feed(&mut d, rise, 30, &regions, rate);
    let opened = opened(&events);
    let global = opened
        .iter()
        .find(|i| i.scope == Scope::Global)
        .unwrap_or_else(|| panic!("no global incident: {opened:?}"));
    // Paged by the worldwide series alone: no country is in outage.
    assert!(global.regions.is_empty(), "{global:?}");
    assert_eq!(opened.len(), 1, "{opened:?}");
}

#[test]
fn a_slow_rise_does_not_teach_its_own_hour_before_it_pages() {
    // A day of history, then a ramp to 3x over 20 minutes, held for
    // 40: its first windows are unsurprising, and learning them at once
    // raised the hour's expectation under the rise. (With one day of
    // history the hour is a guess to about ±28 %: a 2.5x ramp there
    // takes more than the hour to page at the default budget.)
    let mut d = Detector::new(DetectorConfig::default());
    let regions = ["US", "GB"];
    feed(&mut d, T0, 1440 + 14 * 60, &regions, |_, _| 4.0);
    let start = T0 + (1440 + 14 * 60) * MIN;
    let events = feed(&mut d, start, 60, &regions, |r, t| {
        let m = ((t - start) / MIN) as f64;
        if r == "US" {
            4.0 * (1.0 + 2.0 * (m / 20.0).min(1.0))
        } else {
            4.0
        }
    });
    let us = Scope::Region(Country::parse("US").unwrap());
    let opened: Vec<_> = opened(&events)
        .into_iter()
        .filter(|i| i.scope == us)
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
}

/// Feeds `minutes` from `T0` to a default detector: `count(region,
/// minute)` reports of `alexa` in each region, the `i`-th naming
/// `problem(region, minute, i)`. The incidents opened.
fn feed_problems(
    minutes: i64,
    regions: &[&str],
    count: impl Fn(&str, i64) -> u32,
    problem: impl Fn(&str, i64, u32) -> Problem,
) -> Vec<Incident> {
    let mut d = Detector::new(DetectorConfig::default());
    let mut opened = Vec::new();
    for m in 0..minutes {
        let t = T0 + m * MIN;
        for &region in regions {
            for i in 0..count(region, m) {
                d.observe(&Report {
                    problem: problem(region, m, i),
                    ..report(
                        "alexa",
                        region,
                        t + i64::from(i) * 5,
                        Some(format!("{region}{t}-{i}")),
                    )
                });
            }
        }
        for e in d.drain_events() {
            if let Event::Opened(i) = e {
                opened.push(i);
            }
        }
    }
    opened
}

/// An even mix of problems: the `i`-th report of a minute.
fn even(i: u32) -> Problem {
    Problem::ALL[i as usize % 8]
}

/// Minutes from `from` to when `i` was detected.
fn detected(i: &Incident, from: i64) -> i64 {
    (i.detected_at_ms - T0) / MIN - from
}

/// Three days of `alexa` GB at 40 reports a minute in an even mix of
/// problems, then half as many again for half an hour, the extra
/// reports naming `extra` (or the usual mix): the minutes after the
/// rise began in which incidents opened.
fn problem_rise(extra: Option<Problem>) -> Vec<i64> {
    let rise = 3 * 1440;
    let usual = |m: i64| noisy(40.0, m as u64);
    let more = |m: i64| {
        if m >= rise {
            noisy(20.0, m as u64 + 7)
        } else {
            0
        }
    };
    let opened = feed_problems(
        rise + 30,
        &["GB"],
        |_, m| usual(m) + more(m),
        |_, m, i| match extra {
            Some(p) if i >= usual(m) => p,
            _ => even(i),
        },
    );
    opened.iter().map(|i| detected(i, rise)).collect()
}

#[test]
fn a_rise_of_one_problem_pages_where_the_total_alone_would_not() {
    // 1.5× in all, and the extra reports name login: login goes from
    // 5 a minute to about 25.
    let named = problem_rise(Some(Problem::Login));
    assert!(
        named.first().is_some_and(|&m| m <= 2),
        "the login rise pages within two windows: {named:?}"
    );
    // The same rise in the usual mix: the total alone does not page
    // in half an hour (±30 % noise a window).
    assert_eq!(problem_rise(None), Vec::<i64>::new());
}

#[test]
fn a_region_whose_people_name_other_problems_does_not_page_on_its_mix() {
    // GB (240 a minute) in an even mix; every JP report (60 a minute)
    // says `app`: against the service's mix (three in ten `app`) each
    // JP window holds three times the `app` reports due, 60 where 18
    // are, as an outage of its app would.
    let rate = |region: &str| if region == "JP" { 60.0 } else { 240.0 };
    let opened = feed_problems(
        3 * 1440,
        &["GB", "JP"],
        |r, m| noisy(rate(r), m as u64 * 2 + u64::from(r == "JP")),
        |r, _, i| if r == "JP" { Problem::App } else { even(i) },
    );
    assert_eq!(opened, Vec::new());
}

#[test]
fn a_mix_that_changes_for_good_is_learned_within_about_a_day() {
    // GB and DE (60 a minute each) in an even mix for three days; then
    // a new client has every other report of both say `app`, for good.
    let change = 3 * 1440;
    let opened: Vec<i64> = feed_problems(
        change + 3 * 1440,
        &["GB", "DE"],
        |r, m| noisy(60.0, m as u64 * 2 + u64::from(r == "DE")),
        |_, m, i| {
            if m >= change && i % 2 == 0 {
                Problem::App
            } else {
                even(i)
            }
        },
    )
    .iter()
    .map(|i| detected(i, change))
    .collect();
    // It may page as it happens (it is news); not from the next day on.
    assert!(opened.iter().all(|&m| (0..1440).contains(&m)), "{opened:?}");
}

#[test]
fn a_worldwide_rise_one_region_explained_opens_a_global_incident_when_a_second_pages() {
    // GB (40 a minute) and DE, FR (15 each) in an even mix of
    // problems; at minute 0 of the rise GB's login reports go up 20 a
    // minute (the worldwide series pages on them at once, explained by
    // GB alone), from minute 6 DE's go up 30 a minute. FR never rises,
    // so the third region a global incident otherwise waits for never
    // comes.
    let rise = 3 * 1440;
    let regions = [("GB", 40.0), ("DE", 15.0), ("FR", 15.0)];
    let at = |r: &str| regions.iter().position(|x| x.0 == r).unwrap();
    let usual = |r: &str, m: i64| noisy(regions[at(r)].1, m as u64 * 3 + at(r) as u64);
    let more = |r: &str, m: i64| match r {
        "GB" if m >= rise => 20,
        "DE" if m >= rise + 6 => 30,
        _ => 0,
    };
    let global: Vec<(i64, usize)> = feed_problems(
        rise + 30,
        &["GB", "DE", "FR"],
        |r, m| usual(r, m) + more(r, m),
        |r, m, i| {
            if i >= usual(r, m) {
                Problem::Login
            } else {
                even(i)
            }
        },
    )
    .iter()
    .filter(|i| i.scope == Scope::Global)
    .map(|i| (detected(i, rise), i.regions.len()))
    .collect();
    // Opened when DE pages (a minute or two after its rise), with both.
    assert!(
        global
            .first()
            .is_some_and(|&(m, n)| (6..=9).contains(&m) && n == 2),
        "{global:?}"
    );
}

#[test]
fn the_same_outage_twice_in_a_week_pages_twice() {
    let mut d = Detector::new(DetectorConfig::default());
    let outage = |t: i64| {
        let m = (t - T0) / MIN;
        [2 * 1440 + 600, 5 * 1440 + 900]
            .iter()
            .any(|&s| m >= s && m < s + 45)
    };
    let events = feed(&mut d, T0, 7 * 1440, &["GB"], |_, t| {
        diurnal(20.0, t) * if outage(t) { 5.0 } else { 1.0 }
    });
    assert_eq!(opened(&events).len(), 2, "{:?}", opened(&events));
}

#[test]
fn spam_from_few_reporters_is_not_an_outage() {
    let mut d = Detector::new(DetectorConfig::default());
    feed(&mut d, T0, 2 * 1440, &["GB", "DE"], |_, t| diurnal(20.0, t));
    let start = T0 + 2 * 1440 * MIN;
    for m in 0..10 {
        for i in 0..500 {
            d.observe(&report(
                "alexa",
                "GB",
                start + m * MIN + i,
                Some(format!("spammer{}", i % 4)),
            ));
        }
        feed(&mut d, start + m * MIN, 1, &["GB", "DE"], |_, t| {
            diurnal(20.0, t)
        });
    }
    let events = feed(&mut d, start + 10 * MIN, 5, &["GB", "DE"], |_, t| {
        diurnal(20.0, t)
    });
    assert!(opened(&events).is_empty());
    assert!(d.counters().duplicates >= 4_900);
}

/// 10-minute bursts of ×factor in GB at 09:00 on the given days: the
/// days on which a GB region incident opens.
#[test]
fn a_budget_that_is_not_a_positive_number_is_refused() {
    for budget in [0.0, -1.0, f64::NAN, 1e6] {
        let config = DetectorConfig {
            false_alarms_per_month: budget,
            ..DetectorConfig::default()
        };
        let e = config.validate().unwrap_err();
        assert_eq!(e.field, "detect.false_alarms_per_month", "{e}");
    }
    assert!(DetectorConfig::default().validate().is_ok());
}

#[test]
fn windows_start_at_the_configured_offset() {
    let config = DetectorConfig {
        window: Duration::from_secs(300),
        window_offset: Duration::from_secs(173),
        ..DetectorConfig::default()
    };
    assert!(config.validate().is_ok());
    let mut d = Detector::new(config.clone());
    // 10:02:53 opens a window; 10:07:52 is still in it, 10:07:53 is not.
    let t = T0 + 10 * 3_600_000 + 173_000;
    for ts in [t, t + 299_999, t + 300_000, t + 600_000 + 29_000] {
        d.observe(&report("alexa", "GB", ts, None));
    }
    let starts: Vec<i64> = d
        .drain_events()
        .filter_map(|e| match e {
            Event::Window(w) if w.scope == Scope::Global => Some(w.window_start_ms),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [t]);
    let w = d.open.iter().map(|w| w.start_ms).collect::<Vec<_>>();
    assert_eq!(w, [t + 300_000, t + 600_000]);
    let too_far = DetectorConfig {
        window_offset: Duration::from_secs(300),
        ..config
    };
    assert_eq!(
        too_far.validate().unwrap_err().field,
        "detect.window_offset"
    );
}

#[test]
fn a_slow_burn_under_min_count_pages_on_a_longer_scale() {
    let mut d = Detector::new(DetectorConfig::default());
    let regions = ["GB", "LU"];
    let rate = |r: &str, t: i64| if r == "LU" { 1.0 } else { diurnal(20.0, t) };
    let warm = feed(&mut d, T0, 3 * 1440, &regions, rate);
    assert!(opened(&warm).is_empty(), "{:?}", opened(&warm));
    let start = T0 + 3 * 1440 * MIN;
    // LU at seven times its usual report a minute: at most 9 with the
    // noise, under min_count in every window.
    let burn = feed(&mut d, start, 90, &regions, |r, t| {
        rate(r, t) * if r == "LU" { 7.0 } else { 1.0 }
    });
    let after = feed(&mut d, start + 90 * MIN, 30, &regions, rate);
    let lu = opened(&burn)
        .into_iter()
        .filter(|i| i.scope == Scope::Region(Country::parse("LU").unwrap()))
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(lu.len(), 1, "{lu:?}");
    assert!(lu[0].detected_at_ms <= start + 5 * MIN, "{lu:?}");
    assert!(lu[0].started_at_ms >= start - MIN, "{lu:?}");
    assert!(after
        .iter()
        .any(|e| matches!(e, Event::Resolved(i) if i.id == lu[0].id)));
}

/// Feeds `minutes` of traffic of several services:
/// `rate(service, region, minute)` reports per minute.
fn feed_services(
    d: &mut Detector,
    from: i64,
    minutes: i64,
    services: &[&str],
    regions: &[&str],
    rate: impl Fn(&str, &str, i64) -> f64,
) -> Vec<Event> {
    let mut events = Vec::new();
    for m in 0..minutes {
        let t = from + m * MIN;
        for (si, svc) in services.iter().enumerate() {
            for (ri, r) in regions.iter().enumerate() {
                let seed = (t / MIN) as u64 * 97 + si as u64 * 13 + ri as u64;
                for i in 0..noisy(rate(svc, r, t), seed) {
                    d.observe(&report(
                        svc,
                        r,
                        t + i64::from(i) * 20,
                        Some(format!("{svc}{r}{t}{i}")),
                    ));
                }
            }
        }
        events.extend(d.drain_events());
    }
    events
}

#[test]
fn what_a_region_shares_is_not_an_outage_of_one_service() {
    // Three services in GB and DE, five weekdays of history. On the
    // first Saturday every GB service runs 2.2× its weekdays from
    // midnight (the region's calendar: a national event, a first
    // weekend), which no series has seen before; scored alone, each
    // pages. Then one GB service has an outage of its own, and later
    // all three DE services fail at once (4×, sharp: they page before
    // what they share can excuse them).
    let mut d = Detector::new(DetectorConfig::default());
    let services = ["alexa", "steam", "psn"];
    let regions = ["GB", "DE"];
    let base = |svc: &str| match svc {
        "alexa" => 40.0,
        "steam" => 25.0,
        _ => 15.0,
    };
    let week = feed_services(&mut d, T0, 5 * 1440, &services, &regions, |s, _, t| {
        diurnal(base(s), t)
    });
    assert!(opened(&week).is_empty(), "{:?}", opened(&week));
    let sat = T0 + 5 * 1440 * MIN;
    let outage = sat + 12 * 60 * MIN;
    let de_down = sat + 16 * 60 * MIN;
    let events = feed_services(&mut d, sat, 1440, &services, &regions, |s, r, t| {
        let mut rate = diurnal(base(s), t);
        if r == "GB" {
            rate *= 2.2;
            if s == "steam" && (outage..outage + 30 * MIN).contains(&t) {
                rate *= 3.0;
            }
        } else if (de_down..de_down + 30 * MIN).contains(&t) {
            rate *= 4.0;
        }
        rate
    });
    let found: Vec<_> = opened(&events)
        .iter()
        .map(|i| {
            (
                i.service.as_str(),
                i.scope.label().to_string(),
                i.started_at_ms,
            )
        })
        .collect();
    let gb = |svc: &str| found.iter().filter(|f| f.0 == svc && f.1 == "GB").count();
    assert_eq!(
        (gb("alexa"), gb("psn")),
        (0, 0),
        "the weekend paged: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.0 == "steam" && f.1 == "GB" && f.2 >= outage && f.2 < outage + 5 * MIN),
        "steam's own outage: {found:?}"
    );
    for svc in services {
        assert!(
            found
                .iter()
                .any(|f| f.0 == svc && f.1 == "DE" && f.2 >= de_down && f.2 < de_down + 5 * MIN),
            "{svc} in DE, failing with its neighbours: {found:?}"
        );
    }
}

#[test]
fn a_rise_that_lasts_a_day_becomes_the_new_normal() {
    let mut d = Detector::new(DetectorConfig::default());
    let regions = ["GB", "DE"];
    feed(&mut d, T0, 3 * 1440, &regions, |_, t| diurnal(20.0, t));
    let start = T0 + 3 * 1440 * MIN;
    let rate = |r: &str, t: i64| diurnal(20.0, t) * if r == "GB" { 3.0 } else { 1.0 };
    let day = feed(&mut d, start, 1440 + 60, &regions, rate);
    let gb = Scope::Region(Country::parse("GB").unwrap());
    let opened_gb: Vec<_> = opened(&day).into_iter().filter(|i| i.scope == gb).collect();
    assert_eq!(opened_gb.len(), 1, "{opened_gb:?}");
    assert!(day
        .iter()
        .any(|e| matches!(e, Event::Resolved(i) if i.id == opened_gb[0].id)));
    // The next day at three times is normal: nothing opens.
    let next = feed(&mut d, start + (1440 + 60) * MIN, 1440, &regions, rate);
    assert!(opened(&next).is_empty(), "{:?}", opened(&next));
}

#[test]
fn a_reporter_counts_once_over_consecutive_windows() {
    let mut d = Detector::new(DetectorConfig::default());
    let r = |ts: i64, who: &str| report("alexa", "GB", ts, Some(who.into()));
    assert_eq!(d.observe(&r(T0, "a")), Observed::Counted);
    assert_eq!(d.observe(&r(T0 + 10, "a")), Observed::Duplicate);
    assert_eq!(d.observe(&r(T0 + MIN, "a")), Observed::Duplicate);
    assert_eq!(d.observe(&r(T0 + MIN, "b")), Observed::Counted);
    // After a window without it, the reporter counts again.
    assert_eq!(d.observe(&r(T0 + 3 * MIN, "a")), Observed::Counted);
    assert_eq!(d.observe(&r(T0 + 3 * MIN, "b")), Observed::Counted);
}

#[test]
fn a_global_incident_follows_the_spread() {
    let mut d = Detector::new(DetectorConfig::default());
    let regions = ["GB", "DE", "FR", "US", "JP", "AU"];
    feed(&mut d, T0, 2 * 1440, &regions, |_, t| diurnal(15.0, t));
    let start = T0 + 2 * 1440 * MIN;
    let events = feed(&mut d, start, 60, &regions, |r, t| {
        let i = regions.iter().position(|x| *x == r).unwrap() as i64;
        let base = diurnal(15.0, t);
        let joins = if i < 3 { i * 2 } else { i * 6 };
        if t >= start + 5 * MIN + joins * MIN {
            base * 8.0
        } else {
            base
        }
    });
    let global: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Opened(i) | Event::Updated(i) if i.scope == Scope::Global))
        .collect();
    let Event::Opened(first) = global[0] else {
        panic!("{global:?}")
    };
    assert!(
        first.detected_at_ms <= start + 5 * MIN + 5 * MIN,
        "global within 5 min of the first region"
    );
    let last = match global.last().unwrap() {
        Event::Opened(i) | Event::Updated(i) => i,
        _ => unreachable!(),
    };
    let order: Vec<&str> = last.regions.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(order, regions.to_vec());
}

#[test]
fn an_outage_that_spreads_over_hours_is_one_global_incident() {
    // GB fails at 10:05 and stays down; DE and FR follow at 11:20, while
    // US, fifty times busier, carries on. Three regions are in outage at
    // once from about 11:21: one global incident then, though GB's began
    // more than an hour before. With the span at an hour, it waited for
    // the worldwide series, if it came at all.
    let spread = |span: Option<Duration>| {
        let mut cfg = DetectorConfig::default();
        if let Some(span) = span {
            cfg.global_span = span;
        }
        let mut d = Detector::new(cfg);
        let regions = ["GB", "DE", "FR", "US"];
        let base = |r: &str| if r == "US" { 250.0 } else { 5.0 };
        feed(&mut d, T0, 2 * 1440, &regions, |r, _| base(r));
        let start = T0 + 2 * 1440 * MIN + 600 * MIN;
        let events = feed(&mut d, start, 100, &regions, |r, t| {
            let from = match r {
                "GB" => 5,
                "DE" | "FR" => 80,
                _ => i64::MAX,
            };
            if (t - start) / MIN >= from {
                base(r) * 5.0
            } else {
                base(r)
            }
        });
        let regional: Vec<i64> = opened(&events)
            .iter()
            .filter(|i| i.scope != Scope::Global)
            .map(|i| (i.detected_at_ms - start) / MIN)
            .collect();
        let global = opened(&events)
            .iter()
            .find(|i| i.scope == Scope::Global)
            .map(|i| (i.detected_at_ms - start) / MIN);
        (regional, global)
    };
    let (regional, global) = spread(None);
    assert_eq!(regional.len(), 3, "{regional:?}");
    assert!(
        regional[0] < 15 && regional[1..].iter().all(|&m| m >= 80),
        "{regional:?}"
    );
    let third = *regional.iter().max().unwrap();
    assert!(
        global.is_some_and(|g| (third..=third + 1).contains(&g)),
        "{global:?} {regional:?}"
    );
    let (regional, within_an_hour) = spread(Some(Duration::from_secs(3600)));
    let third = *regional.iter().max().unwrap();
    assert!(
        within_an_hour.is_none_or(|g| g > third + 5),
        "{within_an_hour:?} {regional:?}"
    );
}

#[test]
fn a_region_pages_sooner_while_its_service_is_down_elsewhere() {
    // DE rises 2× from minute 10; GB either stays normal or has an
    // 8× outage from minute 5. The same DE reports page sooner while
    // GB is down: a rise in a second region of a service already in
    // an outage is likely the same outage (the spreading bar; at the
    // default budget 20 windows in instead of 33).
    let regions = ["GB", "DE"];
    let start = T0 + 2 * 1440 * MIN;
    let de_paged_after = |gb_down: bool| {
        let mut d = Detector::new(DetectorConfig::default());
        feed(&mut d, T0, 2 * 1440, &regions, |_, t| diurnal(15.0, t));
        let events = feed(&mut d, start, 60, &regions, |r, t| {
            let m = (t - start) / MIN;
            let x = match r {
                "GB" if gb_down && m >= 5 => 8.0,
                "DE" if m >= 10 => 2.0,
                _ => 1.0,
            };
            diurnal(15.0, t) * x
        });
        let de = opened(&events)
            .into_iter()
            .find(|i| i.scope.label() == "DE")
            .map(|i| (i.detected_at_ms - start) / MIN - 10);
        de.expect("the rise pages either way")
    };
    let (alone, spreading) = (de_paged_after(false), de_paged_after(true));
    assert!(
        spreading + 2 <= alone,
        "DE paged {spreading} windows in while GB was down, {alone} alone"
    );
}

#[test]
fn dormant_services_stay_quiet_until_their_next_report() {
    let windows = |d: &mut Detector| -> Vec<String> {
        d.drain_events()
            .filter_map(|e| match e {
                Event::Window(w) => Some(w.service),
                _ => None,
            })
            .collect()
    };
    let mut d = Detector::new(DetectorConfig::default());
    for m in 0..10 {
        d.observe(&report("a", "GB", T0 + m * MIN, None));
        d.observe(&report("b", "GB", T0 + m * MIN, None));
    }
    assert!(windows(&mut d).contains(&"a".to_string()));
    d.dormant();
    for m in 10..20 {
        d.observe(&report("b", "GB", T0 + m * MIN, None));
    }
    let w = windows(&mut d);
    assert!(
        w.contains(&"b".to_string()) && !w.contains(&"a".to_string()),
        "{w:?}"
    );
    d.observe(&report("a", "GB", T0 + 20 * MIN, None));
    d.observe(&report("b", "GB", T0 + 22 * MIN, None));
    assert!(windows(&mut d).contains(&"a".to_string()), "live again");
}

#[test]
fn late_reports_are_counted_as_late() {
    let mut d = Detector::new(DetectorConfig::default());
    d.observe(&report("s", "GB", T0 + 10 * MIN, None));
    assert_eq!(
        d.observe(&report("s", "GB", T0 + 8 * MIN, None)),
        Observed::Late
    );
    assert_eq!(
        d.observe(&report("s", "GB", T0 + 10 * MIN - 20_000, None)),
        Observed::Late,
        "window closed at T0+10m - 30s"
    );
    assert_eq!(
        d.observe(&report("s", "GB", T0 + 10 * MIN + 5, None)),
        Observed::Counted
    );
    assert_eq!(d.counters().late, 2);
}

#[test]
fn idle_partitions_close_windows_by_the_wall_clock() {
    let mut d = Detector::new(DetectorConfig::default());
    d.observe(&report("s", "GB", T0, None));
    d.tick(T0);
    assert!(d.drain_events().next().is_none());
    d.tick(T0 + 20_000);
    d.tick(T0 + 95_000);
    let rows: Vec<Event> = d.drain_events().collect();
    assert!(rows
        .iter()
        .any(|e| matches!(e, Event::Window(w) if w.observed == 1 && w.window_start_ms == T0)));
}

#[test]
fn snapshot_restore_continue_is_identical() {
    let regions = ["GB", "DE", "FR"];
    let rate = |r: &str, t: i64| {
        let base = diurnal(10.0, t);
        if r == "DE" && (T0 + 1500 * MIN..T0 + 1530 * MIN).contains(&t) {
            base * 7.0
        } else {
            base
        }
    };
    let mut a = Detector::new(DetectorConfig::default());
    let mut whole = feed(&mut a, T0, 1600, &regions, rate);
    let mut b = Detector::new(DetectorConfig::default());
    let mut split = feed(&mut b, T0, 1000, &regions, rate);
    let mut c = Detector::from_snapshot(&b.to_snapshot()).unwrap();
    split.extend(feed(&mut c, T0 + 1000 * MIN, 600, &regions, rate));
    a.flush();
    c.flush();
    whole.extend(a.drain_events());
    split.extend(c.drain_events());
    assert_eq!(whole.len(), split.len());
    assert!(whole == split, "restored detector diverged");
    assert!(
        !opened(&whole).is_empty(),
        "the scenario has an outage to compare"
    );
}

#[test]
fn foreign_or_newer_snapshots_are_refused() {
    let d = Detector::new(DetectorConfig::default());
    let mut newer = d.to_snapshot();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        Detector::from_snapshot(&newer),
        Err(SnapshotError::Version { found: 99 })
    ));
    let mut truncated = d.to_snapshot();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        Detector::from_snapshot(&truncated),
        Err(SnapshotError::Malformed(_))
    ));
    // Version 1 (JSON, earlier builds) is refused by its version.
    let v1 = br#"{"format":"outage-radar.detector","version":1,"detector":{}}"#;
    assert!(matches!(
        Detector::from_snapshot(v1),
        Err(SnapshotError::Version { found: 1 })
    ));
    assert!(matches!(
        Detector::from_snapshot(b"{\"format\":\"x\",\"version\":1}"),
        Err(SnapshotError::Format { .. })
    ));
    assert!(matches!(
        Detector::from_snapshot(b"garbage"),
        Err(SnapshotError::Malformed(_))
    ));
}

#[test]
fn incident_ids_are_stable() {
    assert_eq!(
        stable_id(&["alexa", "region", "GB", "1"]),
        stable_id(&["alexa", "region", "GB", "1"])
    );
    assert_ne!(
        stable_id(&["alexa", "region", "GB", "1"]),
        stable_id(&["alexa", "region", "GB1", ""])
    );
}

#[test]
fn idle_services_are_evicted_and_their_slots_reused() {
    let mut d = Detector::new(DetectorConfig {
        max_services: 3,
        service_ttl: Duration::from_secs(600),
        ..DetectorConfig::default()
    });
    for s in ["a", "b", "c"] {
        assert_eq!(d.observe(&report(s, "GB", T0, None)), Observed::Counted);
    }
    // At the cap a fourth service is overflow, not a new series.
    assert_eq!(d.observe(&report("d", "GB", T0, None)), Observed::Overflow);
    assert_eq!((d.service_count(), d.series_count()), (3, 6));
    let slots = d.series.len();
    // Only `a` reports for 12 minutes: once a window closes ten minutes
    // after their last report, `b` and `c` go.
    for m in 1..=12 {
        d.observe(&report("a", "GB", T0 + m * MIN, None));
    }
    assert_eq!(d.counters().services_evicted, 2);
    assert_eq!(d.services().collect::<Vec<_>>(), ["a"]);
    // Room again: `d` and `e` take the freed slots, nothing grows.
    let t = T0 + 13 * MIN;
    assert_eq!(d.observe(&report("d", "DE", t, None)), Observed::Counted);
    assert_eq!(d.observe(&report("e", "FR", t, None)), Observed::Counted);
    assert_eq!(d.series.len(), slots);
    assert_eq!(d.service_count(), 3);
    // An evicted name is gone, though a lookup cache remembered its
    // slot (now another service's): at the cap it is overflow.
    assert_eq!(d.observe(&report("b", "GB", t, None)), Observed::Overflow);
    assert_eq!(d.observe(&report("d", "DE", t, None)), Observed::Counted);
    // A snapshot keeps all of it, the name index included.
    let mut back = Detector::from_snapshot(&d.to_snapshot()).unwrap();
    assert_eq!(back.observe(&report("e", "FR", t, None)), Observed::Counted);
    assert_eq!(
        back.observe(&report("f", "FR", t, None)),
        Observed::Overflow
    );
    let mut names: Vec<_> = back.services().collect();
    names.sort();
    assert_eq!(names, ["a", "d", "e"]);
}

#[test]
fn a_restored_detector_recognises_the_reporters_it_saw() {
    let mut d = Detector::new(DetectorConfig::default());
    let r = report("alexa", "GB", T0, Some("u1".into()));
    assert_eq!(d.observe(&r), Observed::Counted);
    let mut back = Detector::from_snapshot(&d.to_snapshot()).unwrap();
    assert_eq!(back.observe(&r), Observed::Duplicate);
    // Another detector has another key: the same reporter hashes apart.
    let other = Detector::new(DetectorConfig::default());
    assert_ne!(d.reporter_key, other.reporter_key);
}

#[test]
fn reporter_keys_are_what_hashing_the_pair_gives() {
    // Snapshots keep the keys of reporters already seen: hashing in one
    // call must give what the streaming `Hash` of (service id, reporter)
    // gave, for reporters that fit the buffer and for longer ones.
    let key = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    for reporter in [
        "",
        "u1",
        "user-1234567",
        &"r".repeat(59),
        &"r".repeat(60),
        &"x".repeat(300),
    ] {
        for sid in [0, 7, u32::MAX] {
            let mut h = SipHasher13::new_with_keys(key.0, key.1);
            sid.hash(&mut h);
            reporter.hash(&mut h);
            assert_eq!(
                reporter_hash(key, sid, reporter),
                h.finish(),
                "{sid} {reporter}"
            );
        }
    }
}

#[test]
fn the_reporter_set_of_a_window_is_bounded() {
    let mut d = Detector::new(DetectorConfig::default());
    let n = MAX_REPORTERS_PER_WINDOW + 1000;
    for i in 0..n {
        let r = report("alexa", "GB", T0 + (i % 1000) as i64, Some(format!("u{i}")));
        assert_eq!(d.observe(&r), Observed::Counted);
    }
    assert_eq!(d.counters().unchecked, 1000);
    assert!(d
        .open
        .iter()
        .all(|w| w.seen.len() <= MAX_REPORTERS_PER_WINDOW));
    // Reporters it holds are still checked.
    let again = report("alexa", "GB", T0, Some("u5".into()));
    assert_eq!(d.observe(&again), Observed::Duplicate);
}

/// What the snapshot reproducers in `fuzz/regressions/` were made
/// for, built from a detector of this layout (the binary files keep
/// the layout of the version that found them).
#[test]
fn snapshots_that_do_not_hold_together_are_refused() {
    let mut d = Detector::new(DetectorConfig::default());
    d.observe(&report("alexa", "GB", T0, None));
    let refused = |d: &Detector, what: &str| {
        assert!(
            matches!(
                Detector::from_snapshot(&d.to_snapshot()),
                Err(SnapshotError::Malformed(e)) if e.contains(what)
            ),
            "{what}"
        );
    };
    let mut no_series = d.clone();
    no_series.services[0].series.clear();
    refused(&no_series, "malformed series lists");
    let mut counter = d.clone();
    counter.counters.counted = u64::MAX - 1;
    refused(&counter, "counters out of range");
    let mut held = d.clone();
    held.series[0].held.len = u8::MAX;
    refused(&held, "out of range");
}

#[test]
fn a_snapshot_holding_a_nan_is_refused() {
    let mut d = Detector::new(DetectorConfig::default());
    d.observe(&report("alexa", "GB", T0, None));
    assert!(Detector::from_snapshot(&d.to_snapshot()).is_ok());
    d.series[0].last_excess = f32::NAN;
    assert!(matches!(
        Detector::from_snapshot(&d.to_snapshot()),
        Err(SnapshotError::Malformed(e)) if e.contains("not finite")
    ));
}

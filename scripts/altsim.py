#!/usr/bin/env python3
"""A second scenario generator, written apart from `outage-radar simulate`.

The detector's own families come from the same hands as the detector, so a
habit the two share (a sinusoidal day, noise that is independent from one
minute to the next, weekends that differ by one factor) would never show up
as a failure. This script makes feeds on other assumptions, in the same wire
format and truth format, so that `outage-radar evaluate` scores them:

- a day with two peaks (morning and evening, in local time, shapes drawn per
  service), weekends shifted later and scaled per service;
- noise that is *correlated*: a gamma multiplier per series and quarter
  hour, and a lognormal level per series and day, on top of the Poisson
  count (so a baseline that is right on average is still off for an hour);
- reports that name an ISO 3166-2 subdivision (US-CA, DE-BY ...) of their
  country, a third of the time;
- daylight-saving shifts on the real dates, a holiday, drift, spam from one
  reporter, a data gap, late and out-of-order reports, malformed lines and
  reports dated years ahead or behind.

  scripts/altsim.py outages SEED OUT.jsonl.gz   # 7 days history, then 7 days with outages
  scripts/altsim.py quiet SEED OUT.jsonl.gz     # 30 quiet days
  (writes OUT.truth.json next to it, for `outage-radar evaluate --truth`)

Outages: nine single-region ones of 3-8x lasting 40-90 minutes (steps with a
1-3 minute rise), and one service failing in 13 countries, starting over
15 minutes. Only the standard library is used.
"""
import datetime as dt
import json
import math
import random
import sys

from scenario_common import outage_regions, poisson, quiet_truth, write_feed

MIN = 60_000

# region code, UTC offset in winter, DST rule ("eu", "us", None), weight
REGIONS = [
    ("US", -5, "us", 250.0), ("CA", -5, "us", 20.0),
    ("GB", 0, "eu", 60.0), ("DE", 1, "eu", 37.0),
    ("FR", 1, "eu", 45.0), ("ES", 1, "eu", 30.0), ("IT", 1, "eu", 28.0),
    ("NL", 1, "eu", 14.0), ("SE", 1, "eu", 8.0), ("PL", 1, "eu", 9.0),
    ("BR", -3, None, 40.0), ("MX", -6, None, 18.0), ("JP", 9, None, 35.0),
    ("IN", 5.5, None, 30.0), ("AU", 10, None, 11.0), ("ZA", 2, None, 4.0),
    ("NZ", 12, None, 1.2), ("IS", 0, None, 0.12),
]
SUBDIVISIONS = {"US": ["CA", "NY", "TX", "WA"], "DE": ["BY", "BE", "NW"], "AU": ["NSW", "VIC"],
                "GB": ["ENG", "SCT"], "CA": ["ON", "QC"]}
SERVICES = ["discord", "spotify", "roblox", "gmail"]
PROBLEMS = ["login", "connection", "app", "server", "other"]


def sunday_before(year, month, day):
    d = dt.date(year, month, day)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def utc_offset(rule, base, t):
    """Offset in hours at UTC time t (datetime), with real DST dates."""
    if rule == "eu":
        y = t.year
        start = dt.datetime.combine(sunday_before(y, 3, 31), dt.time(1))
        end = dt.datetime.combine(sunday_before(y, 10, 31), dt.time(1))
        return base + (1 if start <= t < end else 0)
    if rule == "us":
        y = t.year
        march1 = dt.date(y, 3, 1)
        second_sun = march1 + dt.timedelta(days=(6 - march1.weekday()) % 7 + 7)
        nov1 = dt.date(y, 11, 1)
        first_sun = nov1 + dt.timedelta(days=(6 - nov1.weekday()) % 7)
        start = dt.datetime.combine(second_sun, dt.time(2)) - dt.timedelta(hours=base)
        end = dt.datetime.combine(first_sun, dt.time(2)) - dt.timedelta(hours=base + 1)
        return base + (1 if start <= t < end else 0)
    return base


class Series:
    def __init__(self, rng, service, region, rate):
        self.service, self.region, self.rate = service, region, rate
        self.block = None
        self.block_mult = 1.0
        self.day = None
        self.day_mult = 1.0

    def noise(self, rng, minute_index):
        b = minute_index // 15
        if b != self.block:
            self.block = b
            self.block_mult = rng.gammavariate(40.0, 1 / 40.0)  # ~16 % per quarter hour
        d = minute_index // 1440
        if d != self.day:
            self.day = d
            self.day_mult = math.exp(rng.gauss(0.0, 0.06))
        return self.block_mult * self.day_mult


def main():
    kind, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(f"altsim-{kind}-{seed}")
    days = 14 if kind == "outages" else 30
    # Start on a random day of 2019-2023, so DST shifts fall in some runs.
    start = dt.datetime(2019, 1, 1) + dt.timedelta(days=rng.randrange(0, 5 * 365))
    start = start.replace(hour=0, minute=0)
    minutes = days * 1440
    shapes = {}
    for s in SERVICES:
        shapes[s] = dict(
            morning=rng.uniform(7.5, 10.5), evening=rng.uniform(18.5, 22.0),
            m_amp=rng.uniform(0.4, 1.0), e_amp=rng.uniform(0.6, 1.4),
            floor=rng.uniform(0.08, 0.25), weekend=rng.uniform(0.75, 1.3),
            per_minute=rng.uniform(15.0, 60.0),
        )
    total_w = sum(r[3] for r in REGIONS)
    series = {}
    for s in SERVICES:
        for code, off, rule, w in REGIONS:
            series[(s, code)] = Series(rng, s, code, shapes[s]["per_minute"] * w / total_w)
    regions = {r[0]: r for r in REGIONS}

    def shape_at(s, local):
        sh = shapes[s]
        h = local.hour + local.minute / 60.0
        wkend = local.weekday() >= 5
        shift = 1.5 if wkend else 0.0
        g = lambda mu, sd: math.exp(-0.5 * (((h - mu - shift + 12) % 24 - 12) / sd) ** 2)
        v = sh["floor"] + sh["m_amp"] * g(sh["morning"], 2.0) + sh["e_amp"] * g(sh["evening"], 2.5)
        return v * (sh["weekend"] if wkend else 1.0) / 0.9

    events = []
    effects = []  # (service, region, start_min, end_min, fn(minute)->multiplier)
    if kind == "outages":
        # Nine single-region outages in the second week, regions big enough
        # to show 200+ excess reports.
        t = 7 * 1440 + rng.randrange(60, 600)
        for _ in range(9):
            s = rng.choice(SERVICES)
            code = rng.choice([r[0] for r in REGIONS if r[3] >= 25.0])
            mag = rng.uniform(3.0, 8.0)
            dur = rng.randrange(40, 91)
            rise = rng.randrange(1, 4)
            effects.append((s, code, t, t + dur, mag, rise))
            events.append(dict(kind="outage", service=s, start=t, dur=dur, mag=mag, regions=[(code, t)]))
            t += rng.randrange(300, 900)
        # One service down in 13 countries.
        s = rng.choice(SERVICES)
        t0 = 7 * 1440 + rng.randrange(2 * 1440, 6 * 1440)
        codes = rng.sample([r[0] for r in REGIONS if r[3] >= 4.0], 13)
        mag = rng.uniform(4.0, 10.0)
        dur = 60
        regs = []
        for i, code in enumerate(codes):
            rs = t0 + (0 if i == 0 else rng.randrange(0, 16))
            effects.append((s, code, rs, t0 + dur, mag, 2))
            regs.append((code, rs))
        events.append(dict(kind="outage", service=s, start=t0, dur=dur, mag=mag, regions=regs, fan=True))
    # Quirks (both kinds): a holiday, drift, spam, a data gap.
    hol_region = rng.choice(["FR", "ES", "IT", "GB", "JP"])
    hol_day = rng.randrange(3, days - 1)
    drift_service = rng.choice(SERVICES)
    spam = (rng.choice(SERVICES), rng.choice(["GB", "FR", "US-NY"]), rng.randrange(2 * 1440, minutes - 60))
    gap = rng.randrange(2 * 1440, minutes - 60)
    gap_len = rng.randrange(10, 40)
    quiet_events = [
        dict(kind="holiday", service=None, start=hol_day * 1440, dur=1440),
        dict(kind="drift", service=drift_service, start=0, dur=minutes),
        dict(kind="spam", service=spam[0], start=spam[2], dur=20),
        dict(kind="gap", service=None, start=gap, dur=gap_len),
    ]

    lines = []  # (arrival ms, line)
    excess = {}  # (event idx, region) -> [per-minute expected excess]
    reporter_pool = {code: max(50, int(w * 400)) for code, _, _, w in REGIONS}
    for m in range(minutes):
        t = start + dt.timedelta(minutes=m)
        if gap <= m < gap + gap_len:
            continue
        for (s, code), ser in series.items():
            _, off, rule, _w = regions[code]
            local = t + dt.timedelta(hours=utc_offset(rule, off, t))
            lam = ser.rate * shape_at(s, local) * ser.noise(rng, m)
            if s == drift_service:
                lam *= 1.0 + 0.5 * m / minutes
            if code == hol_region and hol_day * 1440 <= m < (hol_day + 1) * 1440:
                lam *= 0.45
            base = lam
            for ei, (es, ec, a, b, mag, rise) in enumerate(effects):
                if es == s and ec == code and a <= m < b:
                    f = min(1.0, (m - a + 1) / rise)
                    lam_o = base * (1 + (mag - 1) * f)
                    excess.setdefault((ei, code), {})[m] = lam_o - base
                    lam = lam_o
            n = poisson(rng, lam)
            for _ in range(n):
                ts = int((t - dt.datetime(1970, 1, 1)).total_seconds() * 1000) + rng.randrange(MIN)
                arrival = ts
                if rng.random() < 0.02:
                    arrival += rng.randrange(5_000, 240_000)  # late, out of order
                rep = f"u{code}-{rng.randrange(reporter_pool[code])}"
                region = code
                if code in SUBDIVISIONS and rng.random() < 0.33:
                    region = f"{code}-{rng.choice(SUBDIVISIONS[code])}"
                lines.append((arrival, json.dumps(dict(
                    service=s, region=region, ts=ts, problem=rng.choice(PROBLEMS),
                    reporter=rep, source=rng.choice(["web", "app"])), separators=(",", ":"))))
        if spam[2] <= m < spam[2] + 20:
            ts = int((t - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
            for i in range(40):
                lines.append((ts + i, json.dumps(dict(service=spam[0], region=spam[1], ts=ts + i * 100,
                                                      problem="other", reporter="spammer-1", source="web"))))
    # Broken clocks and malformed lines.
    year = 365 * 86_400_000
    t_mid = int((start - dt.datetime(1970, 1, 1)).total_seconds() * 1000) + minutes * MIN // 2
    for skew in [80 * year, year, 3_600_000, 240_000, 20 * year, 2 * year, 7_200_000, 300_000, 50 * year, -5 * year, -year]:
        at = t_mid + rng.randrange(-86_400_000, 86_400_000)
        lines.append((at, json.dumps(dict(service=rng.choice(SERVICES), region="GB", ts=at + skew,
                                          problem="other", reporter="clock", source="app"))))
    for _ in range(50):
        at = t_mid + rng.randrange(-86_400_000 * 3, 86_400_000 * 3)
        lines.append((at, rng.choice(['{"service":"discord"', 'not json', '{"service":"x","region":"ZZZ","ts":1}', ''])))
    write_feed(out, lines)

    def iso(m):
        return (start + dt.timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")

    truth_events = quiet_truth(quiet_events, iso)
    ei = 0
    for e in events:
        regs, ei = outage_regions(e["regions"], excess, ei, e["mag"], iso)
        truth_events.append(dict(kind="outage", service=e["service"], regions=regs, start=iso(e["start"]),
                                 end=iso(e["start"] + e["dur"]), expect_incident=True,
                                 expect_global=bool(e.get("fan")),
                                 magnitude=round(e["mag"], 2), shape="step", duration_minutes=float(e["dur"])))
    truth = dict(scenario=f"alt:{kind}:{seed}", start=iso(0), end=iso(minutes),
                 series=len(series), events=truth_events)
    with open(out.replace(".jsonl.gz", ".truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print(f"{len(lines)} lines, {days} days from {iso(0)}", file=sys.stderr)


if __name__ == "__main__":
    main()

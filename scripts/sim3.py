#!/usr/bin/env python3
"""A third scenario generator, on assumptions neither `simulate` nor altsim make.

- each series' day is its own: 24 hourly knots drawn per service and region
  (smoothed, interpolated), with three kinds of day (weekday, Saturday,
  Sunday; the weekend days are the weekday's shape two and three hours
  earlier, scaled 0.7-1.4), in the region's fixed UTC offset;
- noise is an AR(1) lognormal multiplier per minute (correlated over about
  ten minutes), on a level that random-walks from day to day (up and down);
- volumes from 0.02 to a few hundred reports a minute;
- outages shaped as Downdetector's usually are: a spike that decays
  (people give up or it gets fixed), plus steps and slow ramps, 2-15x,
  15 minutes to 4 hours, in regions of every size;
- a user often submits twice: 8 % of reports are repeated by the same
  reporter a few seconds later (reporter de-duplication must absorb it);
- quiet quirks: spam from three reporters, a holiday at half volume, one
  region's feed missing for two hours, a service whose volume doubles over
  the month.

  sim3.py outages SEED OUT.jsonl.gz   # 8 days history, then 6 days with outages
  sim3.py quiet SEED OUT.jsonl.gz     # 30 quiet days
"""
import datetime as dt
import json
import math
import random
import sys

from scenario_common import outage_regions, poisson, quiet_truth, write_feed

MIN = 60_000
# region, fixed UTC offset (hours), share of a service's volume
REGIONS = [("US", -6, 300.0), ("GB", 0, 80.0), ("DE", 1, 50.0), ("FR", 1, 40.0), ("JP", 9, 60.0),
           ("BR", -3, 45.0), ("IN", 5.5, 35.0), ("AU", 10, 15.0), ("CA", -5, 20.0), ("MX", -6, 12.0),
           ("NL", 1, 8.0), ("KR", 9, 6.0), ("NO", 1, 2.0), ("CL", -4, 0.8), ("LU", 1, 0.15)]
SERVICES = ["netflix", "xbox", "slack", "paypal", "zoom"]
PROBLEMS = ["login", "connection", "app", "payments", "other"]


def knots(rng, base):
    """24 hourly multipliers around `base` (a smoothed random day)."""
    raw = [max(0.05, b * math.exp(rng.gauss(0, 0.25))) for b in base]
    return [(raw[h - 1] + 2 * raw[h] + raw[(h + 1) % 24]) / 4 for h in range(24)]


def main():
    kind, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(f"sim3-{kind}-{seed}")
    days = 14 if kind == "outages" else 30
    start = dt.datetime(2020, 1, 6) + dt.timedelta(days=rng.randrange(0, 3 * 365))
    minutes = days * 1440
    total_w = sum(r[2] for r in REGIONS)
    # A typical day: low at night, a broad daytime plateau, an evening peak.
    typical = [0.15, 0.1, 0.08, 0.07, 0.08, 0.15, 0.35, 0.6, 0.8, 0.9, 0.95, 1.0,
               1.0, 0.95, 0.9, 0.9, 0.95, 1.05, 1.2, 1.3, 1.2, 0.9, 0.6, 0.3]
    series = {}
    drift_service = rng.choice(SERVICES)
    for s in SERVICES:
        per_minute = rng.uniform(20.0, 120.0)
        for code, off, w in REGIONS:
            wk = knots(rng, typical)
            sat = knots(rng, [v * rng.uniform(0.7, 1.4) for v in typical[2:] + typical[:2]])
            sun = knots(rng, [v * rng.uniform(0.7, 1.4) for v in typical[3:] + typical[:3]])
            series[(s, code)] = dict(rate=per_minute * w / total_w, off=off, days=[wk, sat, sun],
                                     ar=0.0, level=0.0)

    def shape(ser, m):
        local = start + dt.timedelta(minutes=m, hours=ser["off"])
        wd = local.weekday()
        d = ser["days"][0 if wd < 5 else (1 if wd == 5 else 2)]
        h = local.hour + local.minute / 60.0
        i = int(h) % 24
        f = h - int(h)
        return d[i] * (1 - f) + d[(i + 1) % 24] * f

    effects = []  # (service, region, start, end, kind, mag, tau)
    events = []
    if kind == "outages":
        t = 8 * 1440 + rng.randrange(30, 300)
        while t < minutes - 300:
            s = rng.choice(SERVICES)
            code = rng.choice([r[0] for r in REGIONS])
            shp = rng.choice(["decay", "decay", "step", "ramp"])
            mag = math.exp(rng.uniform(math.log(2.0), math.log(15.0)))
            dur = int(math.exp(rng.uniform(math.log(15), math.log(240))))
            tau = rng.uniform(10, 60) if shp == "decay" else rng.uniform(10, 30)
            regs = [(code, t)]
            if rng.random() < 0.15:  # a fan-out to several countries
                others = rng.sample([r[0] for r in REGIONS if r[0] != code], 5)
                regs += [(c, t + rng.randrange(1, 12)) for c in others]
            for c, rs in regs:
                effects.append((s, c, rs, t + dur, shp, mag, tau))
            events.append(dict(service=s, start=t, dur=dur, mag=mag, shape=shp, regions=regs))
            t += dur + rng.randrange(120, 720)
    spam = (rng.choice(SERVICES), rng.choice(["DE", "NL", "CA"]), rng.randrange(2 * 1440, minutes - 60))
    hol = (rng.choice(["FR", "JP", "BR"]), rng.randrange(3, days - 1))
    gap = (rng.choice([r[0] for r in REGIONS]), rng.randrange(2 * 1440, minutes - 200))
    quiet_events = [
        dict(kind="spam", service=spam[0], start=spam[2], dur=15),
        dict(kind="holiday", service=None, start=hol[1] * 1440, dur=1440),
        dict(kind="gap", service=None, start=gap[1], dur=120),
        dict(kind="drift", service=drift_service, start=0, dur=minutes),
    ]
    lines = []
    excess = {}
    epoch = dt.datetime(1970, 1, 1)
    pools = {code: max(100, int(w * 500)) for code, _, w in REGIONS}
    for m in range(minutes):
        t0 = int((start + dt.timedelta(minutes=m) - epoch).total_seconds() * 1000)
        for (s, code), ser in series.items():
            ser["ar"] = 0.9 * ser["ar"] + rng.gauss(0, 0.15 * math.sqrt(1 - 0.81))
            if m % 1440 == 0:
                ser["level"] += rng.gauss(0, 0.05)
                ser["level"] *= 0.9  # mean-reverting day level
            lam = ser["rate"] * shape(ser, m) * math.exp(ser["ar"] + ser["level"])
            if s == drift_service:
                lam *= 2.0 ** (m / minutes)
            if code == hol[0] and hol[1] * 1440 <= m < (hol[1] + 1) * 1440:
                lam *= 0.5
            if code == gap[0] and gap[1] <= m < gap[1] + 120:
                continue
            base = lam
            for ei, (es, ec, a, b, shp, mag, tau) in enumerate(effects):
                if es == s and ec == code and a <= m < b:
                    x = m - a
                    if shp == "decay":
                        f = min(1.0, (x + 1) / 2) * (0.25 + 0.75 * math.exp(-x / tau))
                    elif shp == "ramp":
                        f = min(1.0, (x + 1) / tau)
                    else:
                        f = 1.0
                    lam = base * (1 + (mag - 1) * f)
                    excess.setdefault((ei, ec), {})[m] = lam - base
            for _ in range(poisson(rng, lam)):
                ts = t0 + rng.randrange(MIN)
                rep = f"{code}-{rng.randrange(pools[code])}"
                line = json.dumps(dict(service=s, region=code, ts=ts, problem=rng.choice(PROBLEMS),
                                       reporter=rep), separators=(",", ":"))
                lines.append((ts, line))
                if rng.random() < 0.08:
                    lines.append((ts + rng.randrange(2000, 20000), line))
        if spam[2] <= m < spam[2] + 15:
            for i in range(60):
                lines.append((t0 + i * 900, json.dumps(dict(
                    service=spam[0], region=spam[1], ts=t0 + i * 900, problem="other",
                    reporter=f"bot-{i % 3}"), separators=(",", ":"))))
    write_feed(out, lines)

    def iso(m):
        return (start + dt.timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")

    truth = quiet_truth(quiet_events, iso)
    ei = 0
    for e in events:
        regs, ei = outage_regions(e["regions"], excess, ei, e["mag"], iso)
        truth.append(dict(kind="outage", service=e["service"], regions=regs, start=iso(e["start"]),
                          end=iso(e["start"] + e["dur"]), expect_incident=True,
                          expect_global=len(e["regions"]) >= 3, magnitude=round(e["mag"], 2),
                          shape="ramp" if e["shape"] == "ramp" else "step", form=e["shape"], duration_minutes=float(e["dur"])))
    with open(out.replace(".jsonl.gz", ".truth.json"), "w") as f:
        json.dump(dict(scenario=f"sim3:{kind}:{seed}", start=iso(0), end=iso(minutes),
                       series=len(series), events=truth), f, indent=1)
    print(f"{len(lines)} lines", file=sys.stderr)


if __name__ == "__main__":
    main()

"""What scripts/altsim.py and scripts/sim3.py share: Poisson draws, writing
the feed, and the truth in the format `outage-radar evaluate` reads (for
each outage region its excess, its peak excess a minute, whether it is
detectable and the minute it reaches the floor of 4 excess reports; the
quirks that must raise nothing)."""
import gzip
import math


def poisson(rng, lam):
    """A Poisson draw (normal above a mean of 30)."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def outage_region(code, start_iso, excess, magnitude, iso):
    """Truth of one region of an outage; `excess` maps each minute of it
    to its expected excess reports, `iso` turns a minute into a time."""
    tot = sum(excess.values())
    peak = max(excess.values(), default=0.0)
    floor = next((m for m in sorted(excess) if excess[m] >= 4.0), None)
    base = (tot / max(1, len(excess))) / (magnitude - 1)
    return dict(region=code, start=start_iso, excess=round(tot, 1), peak_excess=round(peak, 2),
                base_per_minute=round(base, 3), detectable=tot >= 40 and peak >= 4,
                floor_at=iso(floor) if floor is not None else None)


def write_feed(out, lines):
    """Writes (arrival, line) pairs to the gzip file `out` in arrival
    order (a stable sort), leaving out empty lines."""
    lines.sort(key=lambda x: x[0])
    with gzip.open(out, "wt") as f:
        for _, line in lines:
            if line:
                f.write(line + "\n")


def quiet_truth(events, iso):
    """Truth of the quirks that must raise nothing (holiday, drift, spam,
    gap): dicts of kind, service, start and dur (minutes)."""
    return [dict(kind=e["kind"], service=e["service"], regions=[], start=iso(e["start"]),
                 end=iso(e["start"] + e["dur"]), expect_incident=False, expect_global=False)
            for e in events]


def outage_regions(regions, excess, first, magnitude, iso):
    """Truth of an outage's regions ((code, start minute) pairs), whose
    excess is kept under (index, code) from index `first` on; the regions
    and the next free index."""
    regs = [outage_region(code, iso(rs), excess.get((first + i, code), {}), magnitude, iso)
            for i, (code, rs) in enumerate(regions)]
    return regs, first + len(regions)

"""What scripts/altsim.py and scripts/sim3.py share: Poisson draws and the
truth of one outage region, in the truth format `outage-radar evaluate`
reads (its excess, its peak excess a minute, whether it is detectable and
the minute it reaches the floor of 4 excess reports)."""
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

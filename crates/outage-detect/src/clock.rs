//! Stream time that a handful of bad device clocks cannot move.
//!
//! A report's `ts` comes from the reporter's device. In `run` the stream
//! time is the Kafka record timestamp (see the ingester); a replay of a
//! file has only the reports' own times, so [`StreamClock`] advances only
//! to what many recent reports agree on: the upper quartile of the last 64
//! accepted timestamps. A report dated further ahead of it than the allowed
//! skew, plus three interquartile ranges (Tukey's "far out" fence, so that a
//! sparse stream, whose reports are minutes apart, is not cut), is refused
//! as `future_timestamp`; one far behind is simply late.
//!
//! Must not: read the wall clock or allocate after construction.

/// Recent timestamps the clock looks at.
const RING: usize = 64;
/// The clock is recomputed every this many accepted reports.
const EVERY: u32 = 8;

/// What the clock says of one report's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the fence: count it (it may still be late).
    Accept,
    /// Further ahead of stream time than the fence allows.
    Future,
}

/// A robust stream clock over report timestamps.
#[derive(Clone, Debug)]
pub struct StreamClock {
    /// The last `RING` timestamps, in arrival order (`pos` is the oldest
    /// once full).
    ring: [i64; RING],
    /// The same timestamps, kept sorted as they come and go: each push
    /// moves only the values between the one leaving and the one coming,
    /// where sorting the sample at every look cost a tenth of a replay.
    sorted: [i64; RING],
    len: usize,
    pos: usize,
    since: u32,
    now: Option<i64>,
    spread: i64,
    max_skew_ms: i64,
}

impl StreamClock {
    /// A clock that refuses reports more than `max_skew_ms` (plus the
    /// stream's own spread) ahead of it.
    pub fn new(max_skew_ms: i64) -> StreamClock {
        StreamClock {
            ring: [0; RING],
            sorted: [0; RING],
            len: 0,
            pos: 0,
            since: 0,
            now: None,
            spread: 0,
            max_skew_ms,
        }
    }

    /// Stream time: `None` until the clock has seen enough reports to agree
    /// on one (see [`StreamClock::warm`]).
    pub fn now(&self) -> Option<i64> {
        self.now
    }

    /// Whether the clock has its first full sample.
    pub fn warm(&self) -> bool {
        self.len == RING
    }

    /// Judges `ts_ms` against the clock (always [`Verdict::Accept`] until
    /// it has a time).
    pub fn judge(&self, ts_ms: i64) -> Verdict {
        match self.now {
            Some(now)
                if ts_ms
                    > now
                        .saturating_add(self.max_skew_ms)
                        .saturating_add(3 * self.spread) =>
            {
                Verdict::Future
            }
            _ => Verdict::Accept,
        }
    }

    /// Takes a refused report's time into the sample too, and looks again
    /// at once: after a real data gap every report is ahead of the old
    /// clock, and once a quarter of the sample agrees the clock moves on
    /// (the first ~16 reports after a gap longer than the fence are refused
    /// until then; `replay` holds refused reports and judges them again, so
    /// they are counted once the clock has moved).
    pub fn push_refused(&mut self, ts_ms: i64) {
        self.push(ts_ms);
        if self.len == RING {
            self.since = 0;
            self.recompute();
        }
    }

    /// Takes one accepted report's time into the sample.
    #[inline]
    pub fn push(&mut self, ts_ms: i64) {
        let leaving = (self.len == RING).then(|| self.ring[self.pos]);
        self.ring[self.pos] = ts_ms;
        self.pos = (self.pos + 1) % RING;
        self.keep_sorted(leaving, ts_ms);
        self.len = (self.len + 1).min(RING);
        self.since += 1;
        if self.since >= EVERY && self.len == RING {
            self.since = 0;
            self.recompute();
        }
    }

    /// Takes `leaving` (the ring's oldest, when it is full) out of the
    /// sorted sample of `len` timestamps and puts `coming` in.
    fn keep_sorted(&mut self, leaving: Option<i64>, coming: i64) {
        let mut len = self.len;
        if let Some(old) = leaving {
            let i = self.sorted[..len].partition_point(|&x| x < old);
            self.sorted.copy_within(i + 1..len, i);
            len -= 1;
        }
        let j = self.sorted[..len].partition_point(|&x| x <= coming);
        self.sorted.copy_within(j..len, j + 1);
        self.sorted[j] = coming;
    }

    /// Settles the clock on whatever sample it has (a stream shorter than
    /// the ring, or the start of one).
    pub fn settle(&mut self) {
        if self.len > 0 {
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        if let Some((q1, q3)) = quartiles(&self.sorted[..self.len]) {
            self.spread = q3 - q1;
            self.now = Some(self.now.map_or(q3, |n| n.max(q3)));
        }
    }
}

/// Lower and upper quartiles of a sorted sample.
fn quartiles(sorted: &[i64]) -> Option<(i64, i64)> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some((sorted[n / 4], sorted[(3 * n) / 4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn the_sorted_sample_is_the_ring_sorted() {
        let mut c = StreamClock::new(5 * MIN);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly rising with jitter, repeats and the odd far outlier.
            let ts = match x % 50 {
                0 => (x % 7) as i64 * 1_000_000_000,
                1 => 0,
                _ => i * 100 + (x % 300) as i64,
            };
            c.push(ts);
            let mut ring = c.ring[..c.len].to_vec();
            ring.sort_unstable();
            assert_eq!(&c.sorted[..c.len], &ring[..], "after {} pushes", i + 1);
        }
    }

    #[test]
    fn a_few_outliers_do_not_move_the_clock() {
        let mut c = StreamClock::new(5 * MIN);
        let t0 = 1_537_747_200_000;
        for i in 0..1000 {
            let ts = t0 + i * 100;
            if i % 100 == 80 {
                // 80 years ahead, 5 years behind.
                assert_eq!(c.judge(ts + 80 * 365 * 86_400_000), Verdict::Future);
                c.push(ts - 5 * 365 * 86_400_000);
            }
            assert_eq!(c.judge(ts), Verdict::Accept);
            c.push(ts);
        }
        let now = c.now().unwrap();
        assert!(now <= t0 + 1000 * 100 && now > t0 + 900 * 100, "{now}");
        assert_eq!(c.judge(now + 4 * MIN), Verdict::Accept);
        assert_eq!(c.judge(now + 60 * MIN), Verdict::Future);
    }

    #[test]
    fn a_far_past_first_report_does_not_hold_the_clock_back() {
        let mut c = StreamClock::new(5 * MIN);
        let t0 = 1_537_747_200_000;
        c.push(t0 - 5 * 365 * 86_400_000);
        for i in 0..30 {
            c.push(t0 + i * 1000);
        }
        c.settle();
        assert!(c.now().unwrap() >= t0);
    }

    #[test]
    fn the_clock_crosses_a_real_gap() {
        let mut c = StreamClock::new(5 * MIN);
        let t0 = 1_537_747_200_000;
        for i in 0..100 {
            c.push(t0 + i * 100);
        }
        let after = t0 + 2 * 60 * MIN;
        let mut refused = 0;
        for i in 0..100 {
            let ts = after + i * 100;
            if c.judge(ts) == Verdict::Future {
                refused += 1;
                c.push_refused(ts);
            } else {
                c.push(ts);
            }
        }
        assert!(refused <= 20, "{refused}");
        assert!(c.now().unwrap() >= after);
    }

    #[test]
    fn a_sparse_stream_is_not_cut_by_the_fence() {
        // Reports ten minutes apart: the next one is never "future".
        let mut c = StreamClock::new(5 * MIN);
        let t0 = 1_537_747_200_000;
        for i in 0..200 {
            let ts = t0 + i * 10 * MIN;
            assert_eq!(c.judge(ts), Verdict::Accept, "report {i}");
            c.push(ts);
        }
    }
}

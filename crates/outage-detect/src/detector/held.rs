//! Normal windows held back a few windows before they are learned.

use serde::{Deserialize, Serialize};

/// Windows a normal window is held back before it is learned.
pub(super) const HELD: usize = 8;

/// The last few normal windows of a series, learned only once [`HELD`]
/// windows after them show that they were not the start of something.
/// Without it the first minutes of a slow rise, before any scale is
/// suspicious, are learned as normal and raise the expectation the rise
/// is judged against (a 3× ramp over 20 minutes in a young series raised
/// its hour's expectation from 2.4 to 4.5 and was never paged). When a run
/// pages, the windows held before it are dropped (they were its onset);
/// when it ends without paging, they are learned once normal windows
/// follow (the run's own windows never are).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Held {
    /// Learned counts (already clipped), oldest first.
    counts: [u16; HELD],
    /// Windows held.
    pub(super) len: u8,
    /// Index (start / width, wrapping) of the newest held window.
    last: u32,
}

impl Held {
    /// Holds the window with index `at`; `learn(index, count)` gets the
    /// windows to learn now, oldest first: the one pushed out, or all of
    /// them when `at` does not follow the newest (a gap in the windows).
    pub(super) fn push(&mut self, at: u32, count: f64, mut learn: impl FnMut(u32, f64)) {
        if self.len > 0 && at != self.last.wrapping_add(1) {
            self.drain(&mut learn);
        }
        if count >= f64::from(u16::MAX) {
            // Too big to hold: learned at once (and with it what is held,
            // to keep the order).
            self.drain(&mut learn);
            learn(at, count);
            return;
        }
        if usize::from(self.len) == HELD {
            learn(at.wrapping_sub(HELD as u32), f64::from(self.counts[0]));
            self.counts.copy_within(1.., 0);
            self.len -= 1;
        }
        self.counts[usize::from(self.len)] = count.round() as u16;
        self.len += 1;
        self.last = at;
    }

    /// Everything held, oldest first, to learn now.
    pub(super) fn drain(&mut self, mut learn: impl FnMut(u32, f64)) {
        let n = u32::from(self.len);
        for (i, &c) in self.counts[..usize::from(self.len)].iter().enumerate() {
            learn(self.last.wrapping_sub(n - 1 - i as u32), f64::from(c));
        }
        self.len = 0;
    }

    /// Forgets what is held (a run paged: it was the run's onset).
    pub(super) fn drop_all(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_windows_are_released_in_order_and_at_gaps() {
        let mut h = Held::default();
        let mut out = Vec::new();
        for i in 0..HELD as u32 {
            h.push(100 + i, f64::from(i), |at, c| out.push((at, c)));
        }
        assert!(out.is_empty(), "nothing learned before {HELD} windows");
        h.push(108, 8.0, |at, c| out.push((at, c)));
        assert_eq!(out, [(100, 0.0)], "the oldest goes first");
        // Window 110 does not follow 108: what is held is learned now.
        out.clear();
        h.push(110, 1e6, |at, c| out.push((at, c)));
        let released: Vec<u32> = out.iter().map(|&(at, _)| at).collect();
        assert_eq!(released, (101..=108).chain([110]).collect::<Vec<_>>());
        assert_eq!(out.last(), Some(&(110, 1e6)), "too big to hold");
        h.push(111, 3.0, |_, _| {});
        h.drop_all();
        out.clear();
        h.drain(|at, c| out.push((at, c)));
        assert!(out.is_empty());
    }
}

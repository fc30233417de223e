//! A window not closed yet: what each series counted in it, and the
//! reporters it has seen (a reporter counts once per service).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::FxBuild;
use crate::report::Problem;

/// What one series counted in one window.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(super) struct Acc {
    /// Reports counted.
    pub(super) count: u32,
    /// Reports per problem.
    pub(super) problems: [u32; 8],
}

/// One window of event time still taking reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct OpenWindow {
    /// Start of the window (ms since the epoch).
    pub(super) start_ms: i64,
    /// Position in `accs` per series, `u32::MAX` when untouched.
    slot: Vec<u32>,
    /// (series, what it counted) for every series touched.
    accs: Vec<(u32, Acc)>,
    /// (service, reporter) hashes counted in this window.
    pub(super) seen: HashSet<u64, FxBuild>,
}

impl OpenWindow {
    /// An empty window starting at `start_ms`.
    pub(super) fn new(start_ms: i64) -> OpenWindow {
        OpenWindow::with_capacity(start_ms, 0, 0)
    }

    /// An empty window with room for `series` series and `reporters`
    /// reporters (sized on the last closed window: no growth per report).
    pub(super) fn with_capacity(start_ms: i64, series: usize, reporters: usize) -> OpenWindow {
        OpenWindow {
            start_ms,
            slot: Vec::with_capacity(series),
            accs: Vec::new(),
            seen: HashSet::with_capacity_and_hasher(reporters, FxBuild::default()),
        }
    }

    /// Counts one report of `problem` for series `series`.
    #[inline(always)]
    pub(super) fn add(&mut self, series: u32, problem: Problem) {
        let pos = match self.slot.get(series as usize) {
            Some(&p) if p != u32::MAX => p as usize,
            _ => self.touch(series),
        };
        let acc = &mut self.accs[pos].1;
        acc.count += 1;
        acc.problems[problem as usize] += 1;
    }

    /// A series' first report in this window: its place in `accs`.
    #[inline(never)]
    fn touch(&mut self, series: u32) -> usize {
        let i = series as usize;
        if i >= self.slot.len() {
            self.slot.resize(i + 1, u32::MAX);
        }
        self.slot[i] = self.accs.len() as u32;
        self.accs.push((series, Acc::default()));
        self.accs.len() - 1
    }

    /// What series `series` counted (nothing if it was never touched).
    pub(super) fn get(&self, series: u32) -> Acc {
        match self.slot.get(series as usize) {
            Some(&p) if p != u32::MAX => self.accs[p as usize].1,
            _ => Acc::default(),
        }
    }

    /// Whether the counts and their index agree and stay within
    /// `n_series` series (a restored snapshot is checked with it).
    pub(super) fn check_structure(&self, n_series: usize) -> Result<(), String> {
        for (pos, (series, _)) in self.accs.iter().enumerate() {
            if self.slot.get(*series as usize) != Some(&(pos as u32)) {
                return Err(format!(
                    "window {}: slots do not match counts",
                    self.start_ms
                ));
            }
        }
        if self
            .slot
            .iter()
            .any(|&p| p != u32::MAX && p as usize >= self.accs.len())
            || self.slot.len() > n_series
        {
            return Err(format!("window {}: slot out of range", self.start_ms));
        }
        Ok(())
    }
}

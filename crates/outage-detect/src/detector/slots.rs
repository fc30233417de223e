//! Where a detector's services and series live once they are many or come
//! from a snapshot: idle services evicted and their slots reused, and the
//! check that a restored state holds together before it is used.

use super::*;

impl Detector {
    /// Evicts every service without a report since `before_ms` and without
    /// an open incident: its series go (what they learned with them), its
    /// slots are reused. Only services no open window counted are taken,
    /// so window slots never point at a reused series.
    pub(super) fn evict_idle(&mut self, before_ms: i64) {
        for sid in 0..self.services.len() {
            let svc = &self.services[sid];
            if svc.is_free()
                || svc.last_report_ms >= before_ms
                || svc.incident.is_some()
                || svc
                    .series
                    .iter()
                    .any(|&i| self.series[i as usize].incident.is_some())
                || self.open.iter().any(|w| w.get(svc.global).count > 0)
            {
                continue;
            }
            let svc = std::mem::replace(&mut self.services[sid], Service::free());
            self.service_ids.remove(&svc.name);
            for i in svc.series {
                // A small placeholder, so the learned state's memory goes.
                self.series[i as usize] = Series::new(u32::MAX, Scope::Global);
                self.free_series.push(i);
            }
            self.free_services.push(sid as u32);
            self.counters.services_evicted += 1;
        }
        self.last_service = 0;
    }

    /// Checks that a restored state holds together (every index in range,
    /// every series owned by the service that lists it, windows' slots
    /// pointing at their own entries): a snapshot is checked by its CRC
    /// against corruption, this is against a crafted or buggy one, which
    /// must be refused rather than panic later.
    pub(crate) fn check_structure(&self) -> Result<(), String> {
        self.config.validate().map_err(|e| e.to_string())?;
        let n_series = self.series.len();
        let mut owner = vec![u32::MAX; n_series];
        for (sid, svc) in self.services.iter().enumerate() {
            if svc.is_free() {
                if !svc.series.is_empty() {
                    return Err(format!("free service slot {sid} lists series"));
                }
                continue;
            }
            if svc.regions.len() != Country::COUNT || svc.series.first() != Some(&svc.global) {
                return Err(format!("service {sid}: malformed series lists"));
            }
            if !svc.mix.is_sane() {
                return Err(format!("service {sid}: a problem count is not finite"));
            }
            for &i in &svc.series {
                let series = self
                    .series
                    .get(i as usize)
                    .ok_or_else(|| format!("service {sid}: series {i} out of range"))?;
                if owner[i as usize] != u32::MAX || series.service != sid as u32 {
                    return Err(format!("series {i} is not service {sid}'s alone"));
                }
                owner[i as usize] = sid as u32;
                let expected = match series.scope {
                    Scope::Global => svc.global,
                    Scope::Region(c) => svc.regions[c.index()],
                };
                if expected != i {
                    return Err(format!("series {i}: scope does not match service {sid}"));
                }
            }
            if svc
                .regions
                .iter()
                .any(|&r| r != u32::MAX && owner.get(r as usize) != Some(&(sid as u32)))
            {
                return Err(format!("service {sid}: a region points at another series"));
            }
        }
        for s in &self.series {
            if usize::from(s.held.len) > HELD || usize::from(s.best_scale) >= crate::scan::SCALES {
                return Err("a series' held windows or scale is out of range".into());
            }
            // No NaN or infinity: they would score every window against
            // nothing (and page on it).
            let peak = s.pending.as_ref().map_or((0.0, 0.0), |p| p.peak);
            let finite = [peak.0, peak.1, s.last_excess, s.run_size]
                .iter()
                .all(|x| x.is_finite());
            if !finite
                || !s.baseline.is_sane()
                || !s.sums.is_sane()
                || !s.recur.is_sane()
                || !s.mix_misfit.is_sane()
            {
                return Err("a series holds a number that is not finite or out of range".into());
            }
        }
        // Each free slot once, and only slots no one uses.
        let mut free_services = vec![false; self.services.len()];
        for &i in &self.free_services {
            match self.services.get(i as usize) {
                Some(svc) if svc.is_free() && !free_services[i as usize] => {
                    free_services[i as usize] = true
                }
                _ => return Err("the free services list is inconsistent".into()),
            }
        }
        for &i in &self.free_series {
            match owner.get_mut(i as usize) {
                Some(o) if *o == u32::MAX => *o = u32::MAX - 1,
                _ => return Err("the free series list is inconsistent".into()),
            }
        }
        // Counters a stream could reach (they are added to, never checked).
        let c = &self.counters;
        if [
            c.counted,
            c.duplicates,
            c.late,
            c.overflow,
            c.windows_closed,
            c.windows_skipped,
            c.unchecked,
            c.services_evicted,
        ]
        .iter()
        .any(|&n| n > 1 << 60)
        {
            return Err("counters out of range".into());
        }
        // Times a report could carry (or not set yet): the window loops
        // step through them.
        let sane = |t: i64| (0..=1_i64 << 50).contains(&t);
        if self.next_close_ms.is_some_and(|t| !sane(t))
            || (self.stream_ms != i64::MIN && !sane(self.stream_ms))
            || self.open.iter().any(|w| !sane(w.start_ms))
            || self
                .open
                .iter()
                .zip(self.open.iter().skip(1))
                .any(|(a, b)| a.start_ms >= b.start_ms)
        {
            return Err("times out of range or windows out of order".into());
        }
        for w in &self.open {
            w.check_structure(n_series)?;
        }
        Ok(())
    }

    /// Rebuilds what the snapshot leaves out (the name index).
    pub(crate) fn rebuild_index(&mut self) {
        self.service_ids = self
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_free())
            .map(|(i, s)| (s.name.clone(), i as u32))
            .collect();
    }
}

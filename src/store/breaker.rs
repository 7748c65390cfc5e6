//! The database circuit breaker: one probe per interval per engine while the database is
//! unavailable, instead of every actor hammering it (and the log) on its own schedule.
//!
//! Up: every call goes through. A call failing with a topology error (connection lost,
//! read-only, shutting down, timeout) trips it Down. Down: calls fail fast without
//! touching the network, except one probe per backoff interval (capped, jittered); the
//! first probe that succeeds closes it again. Pure logic with the clock passed in, so it
//! is unit tested without a database.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;

/// Whether a call may go to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The breaker is closed: a normal call.
    Normal,
    /// The breaker is open and this call is the interval's probe.
    Probe,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    backoff: Backoff,
    down: Option<Down>,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    failures: u32,
    next_probe: Instant,
    probing: bool,
    reason: String,
}

/// What changed after a call, for logging transitions exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    /// Up → Down: retire pooled connections and say so once.
    WentDown,
    /// Down → Up after this long.
    CameBack(Duration),
}

impl Breaker {
    pub(crate) fn new(backoff: Backoff) -> Self {
        Breaker {
            backoff,
            down: None,
        }
    }

    /// Whether a call may proceed now; `Err(reason)` means fail fast.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<Admission, String> {
        match &mut self.down {
            None => Ok(Admission::Normal),
            Some(d) if !d.probing && now >= d.next_probe => {
                d.probing = true;
                Ok(Admission::Probe)
            }
            Some(d) => Err(d.reason.clone()),
        }
    }

    /// Records a call's result: `Some(reason)` for a topology failure, `None` for a
    /// call the database answered (success or an ordinary SQL error).
    pub(crate) fn record(
        &mut self,
        admission: Admission,
        failure: Option<String>,
        now: Instant,
        unit: f64,
    ) -> Transition {
        match (failure, self.down.as_mut()) {
            (None, None) => Transition::None,
            (None, Some(d)) => {
                let since = d.since;
                self.down = None;
                Transition::CameBack(now.saturating_duration_since(since))
            }
            (Some(reason), None) => {
                let delay = self.backoff.delay_with(1, unit);
                self.down = Some(Down {
                    since: now,
                    failures: 1,
                    next_probe: now + delay,
                    probing: false,
                    reason,
                });
                Transition::WentDown
            }
            (Some(reason), Some(d)) => {
                // Only the probe advances the backoff; calls already in flight when the
                // breaker tripped just report what they saw.
                if admission == Admission::Probe {
                    d.failures += 1;
                    d.next_probe = now + self.backoff.delay_with(d.failures, unit);
                    d.probing = false;
                }
                d.reason = reason;
                Transition::None
            }
        }
    }

    /// Why the breaker is open, if it is.
    pub(crate) fn down_reason(&self) -> Option<&str> {
        self.down.as_ref().map(|d| d.reason.as_str())
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(400),
        jitter: 0.0,
    };

    #[test]
    fn trips_probes_once_per_interval_and_recovers() {
        let t0 = Instant::now();
        let mut b = Breaker::new(B);
        assert_eq!(b.admit(t0), Ok(Admission::Normal));
        assert_eq!(
            b.record(Admission::Normal, Some("gone".into()), t0, 0.5),
            Transition::WentDown
        );
        assert!(b.is_down());
        assert_eq!(
            b.admit(t0 + Duration::from_millis(50)),
            Err("gone".into()),
            "fails fast before the probe"
        );
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.admit(t1), Ok(Admission::Probe));
        assert!(b.admit(t1).is_err(), "one probe at a time");
        assert_eq!(
            b.record(Admission::Probe, Some("still gone".into()), t1, 0.5),
            Transition::None
        );
        assert!(
            b.admit(t1 + Duration::from_millis(150)).is_err(),
            "backoff doubled to 200ms"
        );
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!(b.admit(t2), Ok(Admission::Probe));
        assert_eq!(
            b.record(Admission::Probe, None, t2, 0.5),
            Transition::CameBack(Duration::from_millis(300))
        );
        assert_eq!(b.admit(t2), Ok(Admission::Normal));
    }

    #[test]
    fn backoff_is_capped() {
        let t0 = Instant::now();
        let mut b = Breaker::new(B);
        b.record(Admission::Normal, Some("x".into()), t0, 0.5);
        let mut t = t0;
        for _ in 0..10 {
            t += Duration::from_secs(1);
            assert_eq!(b.admit(t), Ok(Admission::Probe));
            b.record(Admission::Probe, Some("x".into()), t, 0.5);
        }
        assert!(b.admit(t + Duration::from_millis(399)).is_err());
        assert_eq!(
            b.admit(t + Duration::from_millis(400)),
            Ok(Admission::Probe)
        );
    }

    #[test]
    fn stragglers_do_not_advance_the_backoff() {
        let t0 = Instant::now();
        let mut b = Breaker::new(B);
        b.record(Admission::Normal, Some("x".into()), t0, 0.5);
        b.record(Admission::Normal, Some("y".into()), t0, 0.5);
        assert_eq!(
            b.admit(t0 + Duration::from_millis(100)),
            Ok(Admission::Probe)
        );
    }
}

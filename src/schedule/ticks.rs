//! Tick arithmetic for periodic jobs: when a cron expression fires in its time zone, and
//! which due ticks a pass enqueues under a schedule's missed-tick policy. Pure functions
//! (no clock, no database): the scheduler passes the database's `now()` in.
//!
//! Cron parsing and daylight-saving rules are croner's: a fixed-time tick that falls in
//! a spring-forward gap runs at the first valid time after it, and one that falls in the
//! repeated hour of a fall-back runs once, at its first occurrence.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::error::{Error, Result};

/// How many due ticks a pass counts when working out what it missed: past this many the
/// count says "at least" (after a long outage of a per-second schedule, counting every
/// tick would take a pass as long as the outage).
pub(crate) const MAX_COUNTED: u64 = 100_000;

/// What a schedule does with ticks that went by while no engine could enqueue them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Missed {
    /// Run none of them; the schedule goes on at its next tick. A tick an engine reaches
    /// within the schedule's [`grace`](crate::Schedule::grace) is not missed, only late.
    /// The default.
    Skip,
    /// One run now for all of them (enqueued for the newest missed tick).
    Coalesce,
    /// One run for each, up to this many (the newest ones; older ones are skipped).
    CatchUp(u32),
}

impl Missed {
    /// The policy's name as stored and shown: `skip`, `coalesce` or `catch_up`.
    pub fn name(&self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::Coalesce => "coalesce",
            Missed::CatchUp(_) => "catch_up",
        }
    }

    /// The policy's catch-up bound (0 unless [`CatchUp`](Missed::CatchUp)).
    pub(crate) fn max(&self) -> u32 {
        match self {
            Missed::CatchUp(n) => *n,
            _ => 0,
        }
    }

    /// The policy from its stored name and bound.
    pub(crate) fn from_stored(name: &str, max: i32) -> Option<Missed> {
        match name {
            "skip" => Some(Missed::Skip),
            "coalesce" => Some(Missed::Coalesce),
            "catch_up" => Some(Missed::CatchUp(u32::try_from(max).ok()?)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missed::CatchUp(n) => write!(f, "catch_up({n})"),
            other => f.write_str(other.name()),
        }
    }
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub(crate) struct CronTicks {
    cron: Cron,
    tz: Tz,
}

impl CronTicks {
    /// Parses `expr` (5 fields, or 6 with seconds first, or an alias such as `@hourly`)
    /// in the IANA time zone `zone`. `schedule` names the schedule in errors.
    pub(crate) fn parse(schedule: &str, expr: &str, zone: &str) -> Result<CronTicks> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| Error::InvalidCron {
                schedule: schedule.to_string(),
                expression: expr.to_string(),
                reason: e.to_string(),
            })?;
        let tz = Tz::from_str(zone).map_err(|_| Error::UnknownTimeZone {
            schedule: schedule.to_string(),
            zone: zone.to_string(),
        })?;
        Ok(CronTicks { cron, tz })
    }

    /// The first tick strictly after `t`.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last tick at or before `t`.
    fn at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last tick strictly before `t`.
    fn before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

/// What one pass does for one schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    /// Ticks to enqueue a job for, oldest first (each job's `run_at` is its tick).
    pub(crate) fire: Vec<DateTime<Utc>>,
    /// The schedule's new last tick, when some tick came due (fired or skipped).
    pub(crate) advance_to: Option<DateTime<Utc>>,
    /// Due ticks not enqueued (at most [`MAX_COUNTED`]).
    pub(crate) skipped: u64,
    /// The first tick after `now`, when the schedule has one.
    pub(crate) next: Option<DateTime<Utc>>,
}

/// Which of the ticks in `(last, now]` to enqueue under `missed`.
///
/// In normal operation one tick is due and it is a few milliseconds late: every policy
/// fires it. After an outage several may be due, or one long overdue: `Skip` fires only
/// a newest tick that is at most `grace` late, `Coalesce` fires the newest one whatever
/// its lateness, and `CatchUp(max)` fires the newest `max`.
pub(crate) fn plan(
    ticks: &CronTicks,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    missed: Missed,
    grace: Duration,
) -> Plan {
    let next = ticks.next_after(now.max(last));
    let Some(newest) = ticks.at_or_before(now).filter(|t| *t > last) else {
        return Plan {
            next,
            ..Plan::default()
        };
    };
    // Walk back from the newest due tick: keep as many as the policy may fire, count the
    // rest (bounded).
    let keep = match missed {
        Missed::Skip | Missed::Coalesce => 1,
        Missed::CatchUp(max) => max as usize,
    };
    let mut due = Vec::new();
    let mut count: u64 = 0;
    let mut t = Some(newest);
    while let Some(tick) = t.filter(|t| *t > last) {
        count += 1;
        if due.len() < keep {
            due.push(tick);
        }
        if count >= MAX_COUNTED {
            break;
        }
        t = ticks.before(tick);
    }
    due.reverse();
    if missed == Missed::Skip {
        let late = now - newest;
        let within = TimeDelta::from_std(grace).map_or(true, |g| late <= g);
        if !within {
            due.clear();
        }
    }
    Plan {
        skipped: count - due.len() as u64,
        fire: due,
        advance_to: Some(newest),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn ticks(expr: &str, zone: &str) -> CronTicks {
        CronTicks::parse("t", expr, zone).expect("valid")
    }

    fn run(ticks: &CronTicks, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = ticks.next_after(t).expect("a next tick");
            out.push(t);
        }
        out
    }

    /// `0 2 * * *` in America/Vancouver across the March change (2026-03-08: 02:00 PST
    /// does not exist, clocks jump to 03:00 PDT): the day of the change runs at 03:00 PDT,
    /// the first valid time after the gap, and the days around it at 02:00 local.
    #[test]
    fn vancouver_spring_forward() {
        let t = ticks("0 2 * * *", "America/Vancouver");
        assert_eq!(
            run(&t, utc(2026, 3, 7, 0, 0, 0), 3),
            vec![
                utc(2026, 3, 7, 10, 0, 0), // 02:00 PST (UTC-8)
                utc(2026, 3, 8, 10, 0, 0), // 03:00 PDT: 02:00 does not exist
                utc(2026, 3, 9, 9, 0, 0),  // 02:00 PDT (UTC-7)
            ]
        );
    }

    /// The November change (2026-11-01: 02:00 PDT becomes 01:00 PST): 02:00 local
    /// happens once, one hour later in UTC than the day before.
    #[test]
    fn vancouver_fall_back() {
        let t = ticks("0 2 * * *", "America/Vancouver");
        assert_eq!(
            run(&t, utc(2026, 10, 31, 0, 0, 0), 3),
            vec![
                utc(2026, 10, 31, 9, 0, 0), // 02:00 PDT
                utc(2026, 11, 1, 10, 0, 0), // 02:00 PST
                utc(2026, 11, 2, 10, 0, 0),
            ]
        );
    }

    /// 01:30 happens twice on the fall-back night; a fixed-time schedule runs once.
    #[test]
    fn repeated_hour_runs_once() {
        let t = ticks("30 1 * * *", "America/Vancouver");
        assert_eq!(
            run(&t, utc(2026, 10, 31, 12, 0, 0), 2),
            vec![
                utc(2026, 11, 1, 8, 30, 0), // 01:30 PDT
                utc(2026, 11, 2, 9, 30, 0), // 01:30 PST the next day
            ]
        );
    }

    #[test]
    fn seconds_and_aliases() {
        let every = ticks("* * * * * *", "UTC");
        assert_eq!(
            run(&every, utc(2026, 1, 1, 0, 0, 0), 2),
            vec![utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 1, 0, 0, 2)]
        );
        let hourly = ticks("@hourly", "UTC");
        assert_eq!(
            hourly.next_after(utc(2026, 1, 1, 0, 10, 0)),
            Some(utc(2026, 1, 1, 1, 0, 0))
        );
        let daily = ticks("@daily", "Europe/Paris");
        assert_eq!(
            daily.next_after(utc(2026, 1, 1, 0, 10, 0)),
            Some(utc(2026, 1, 1, 23, 0, 0))
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_typed_errors() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * *",
            "@fortnightly",
            "0 0 30 2 x",
        ] {
            let e = CronTicks::parse("s", bad, "UTC").unwrap_err();
            assert!(matches!(e, Error::InvalidCron { .. }), "{bad}: {e}");
        }
        let e = CronTicks::parse("s", "0 2 * * *", "Mars/Olympus").unwrap_err();
        assert!(matches!(e, Error::UnknownTimeZone { .. }), "{e}");
    }

    fn secs(ticks: &[DateTime<Utc>]) -> Vec<u32> {
        use chrono::Timelike;
        ticks.iter().map(|t| t.second()).collect()
    }

    #[test]
    fn one_due_tick_fires_under_every_policy() {
        let t = ticks("* * * * * *", "UTC");
        let last = utc(2026, 1, 1, 0, 0, 10);
        let now = last + TimeDelta::milliseconds(1_020);
        for m in [Missed::Skip, Missed::Coalesce, Missed::CatchUp(3)] {
            let p = plan(&t, last, now, m, Duration::from_secs(2));
            assert_eq!(secs(&p.fire), vec![11], "{m}");
            assert_eq!(p.advance_to, Some(utc(2026, 1, 1, 0, 0, 11)));
            assert_eq!(p.skipped, 0);
            assert_eq!(p.next, Some(utc(2026, 1, 1, 0, 0, 12)));
        }
    }

    #[test]
    fn nothing_due() {
        let t = ticks("* * * * * *", "UTC");
        let last = utc(2026, 1, 1, 0, 0, 10);
        let p = plan(
            &t,
            last,
            last + TimeDelta::milliseconds(500),
            Missed::Skip,
            Duration::ZERO,
        );
        assert!(p.fire.is_empty());
        assert_eq!(p.advance_to, None);
        assert_eq!(p.next, Some(utc(2026, 1, 1, 0, 0, 11)));
    }

    /// Ten ticks went by during an outage of every engine (last tick :10, now :20.5).
    #[test]
    fn outage_under_each_policy() {
        let t = ticks("* * * * * *", "UTC");
        let last = utc(2026, 1, 1, 0, 0, 10);
        let now = utc(2026, 1, 1, 0, 0, 20) + TimeDelta::milliseconds(500);
        let grace = Duration::from_secs(2);
        let skip = plan(&t, last, now, Missed::Skip, grace);
        // The newest tick (:20) is only 0.5 s late: late, not missed.
        assert_eq!((secs(&skip.fire), skip.skipped), (vec![20], 9));
        let skip_late = plan(&t, last, now, Missed::Skip, Duration::from_millis(100));
        assert_eq!(
            (secs(&skip_late.fire), skip_late.skipped),
            (Vec::<u32>::new(), 10)
        );
        let coalesce = plan(&t, last, now, Missed::Coalesce, Duration::ZERO);
        assert_eq!((secs(&coalesce.fire), coalesce.skipped), (vec![20], 9));
        let catch_up = plan(&t, last, now, Missed::CatchUp(3), Duration::ZERO);
        assert_eq!(
            (secs(&catch_up.fire), catch_up.skipped),
            (vec![18, 19, 20], 7)
        );
        let all = plan(&t, last, now, Missed::CatchUp(50), Duration::ZERO);
        assert_eq!(all.fire.len(), 10);
        for p in [skip, skip_late, coalesce, catch_up, all] {
            assert_eq!(p.advance_to, Some(utc(2026, 1, 1, 0, 0, 20)));
        }
    }

    /// A per-second schedule after a day away: the pass stays bounded.
    #[test]
    fn long_outage_is_counted_up_to_a_bound() {
        let t = ticks("* * * * * *", "UTC");
        let last = utc(2026, 1, 1, 0, 0, 0);
        let now = utc(2026, 1, 3, 0, 0, 0);
        let p = plan(&t, last, now, Missed::CatchUp(2), Duration::ZERO);
        assert_eq!(p.fire.len(), 2);
        assert_eq!(p.skipped, MAX_COUNTED - 2);
        assert_eq!(p.advance_to, Some(now));
    }

    #[test]
    fn policies_round_trip_through_storage() {
        for m in [Missed::Skip, Missed::Coalesce, Missed::CatchUp(7)] {
            assert_eq!(Missed::from_stored(m.name(), m.max() as i32), Some(m));
        }
        assert_eq!(Missed::from_stored("later", 0), None);
        assert_eq!(Missed::CatchUp(7).to_string(), "catch_up(7)");
    }
}

//! Calendar rules of a tenant: which slots a subscriber's schedule yields
//! on a local day, whether an instant is inside the calling window, where
//! the next window opens, and when a retry is due. Pure functions of their
//! inputs: time is always passed in (unix milliseconds), so the scheduler
//! runs on virtual time in tests.
//!
//! Depends on: jiff (time zones), genki-storage records, [`crate::checks::holidays`].

use genki_store::{Cause, RetryPolicy, Schedule, Subscriber, Tenant};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::checks::holidays;

/// A rule that cannot be applied: names the field and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        field,
        message: message.into(),
    }
}

/// "HH:MM" (24-hour).
pub fn parse_hhmm(field: &'static str, s: &str) -> Result<Time, RuleError> {
    let bad = || err(field, format!("{s:?} is not a time of day HH:MM"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// Memoised local date + "HH:MM" → instant (unix ms) conversions of one planning pass.
#[derive(Debug, Default)]
pub struct SlotCache(std::collections::HashMap<(Date, Time), Option<u64>>);

/// A tenant's calendar, parsed once.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub tz: TimeZone,
    pub window_start: Time,
    pub window_end: Time,
    pub skip_holidays: bool,
}

impl Calendar {
    pub fn of(t: &Tenant) -> Result<Calendar, RuleError> {
        let tz = TimeZone::get(&t.time_zone)
            .map_err(|_| err("time_zone", format!("unknown time zone {:?}", t.time_zone)))?;
        let window_start = parse_hhmm("window_start", &t.window_start)?;
        let window_end = parse_hhmm("window_end", &t.window_end)?;
        if window_end <= window_start {
            return Err(err("window_end", "must be later than window_start"));
        }
        Ok(Calendar {
            tz,
            window_start,
            window_end,
            skip_holidays: t.skip_holidays,
        })
    }

    fn ts(ms: u64) -> Timestamp {
        Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64).unwrap_or(Timestamp::MAX)
    }

    /// The local date of an instant.
    pub fn local_date(&self, ms: u64) -> Date {
        Self::ts(ms).to_zoned(self.tz.clone()).date()
    }

    /// The local day holding `ms`: its first and its next day's first
    /// millisecond (unix ms).
    pub fn day_of(&self, ms: u64) -> Option<(u64, u64)> {
        let date = self.local_date(ms);
        Some((
            self.at(date, Time::midnight())?,
            self.at(date.tomorrow().ok()?, Time::midnight())?,
        ))
    }

    fn at(&self, date: Date, time: Time) -> Option<u64> {
        let z = date.to_datetime(time).to_zoned(self.tz.clone()).ok()?;
        u64::try_from(z.timestamp().as_millisecond()).ok()
    }

    /// Whether calls may be placed at `ms`.
    pub fn in_window(&self, ms: u64) -> bool {
        let z = Self::ts(ms).to_zoned(self.tz.clone());
        let t = z.time();
        t >= self.window_start
            && t < self.window_end
            && !(self.skip_holidays && holidays::is_holiday(z.date()))
    }

    /// The first instant at or after `ms` inside the window (skipping holidays when asked).
    pub fn next_window_open(&self, ms: u64) -> Option<u64> {
        if self.in_window(ms) {
            return Some(ms);
        }
        let mut date = self.local_date(ms);
        for _ in 0..30 {
            if let Some(open) = self.at(date, self.window_start) {
                if open >= ms && self.in_window(open) {
                    return Some(open);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The scheduled slots (unix seconds) of a subscriber on a local date:
    /// none when the day is not in the schedule, a skipped holiday, or
    /// within the pause; slots outside the calling window are dropped.
    pub fn slots(&self, sub: &Subscriber, date: Date) -> Vec<u64> {
        self.slots_with(
            sub,
            date,
            holidays::is_holiday(date),
            &mut SlotCache::default(),
        )
    }

    /// [`Calendar::slots`] for the planner's inner loop: whether `date` is a
    /// holiday is given, and local time → instant conversions are memoised
    /// in `cache` (a million subscribers share a handful of times of day).
    pub fn slots_with(
        &self,
        sub: &Subscriber,
        date: Date,
        holiday: bool,
        cache: &mut SlotCache,
    ) -> Vec<u64> {
        let Some(Schedule { days, times }) = &sub.schedule else {
            return Vec::new();
        };
        if !days.contains(&(date.weekday().to_monday_one_offset() as u8)) {
            return Vec::new();
        }
        if self.skip_holidays && holiday {
            return Vec::new();
        }
        if let Some(until) = sub
            .paused_until
            .as_deref()
            .and_then(|d| d.parse::<Date>().ok())
        {
            if date <= until {
                return Vec::new();
            }
        }
        let mut out: Vec<u64> = times
            .iter()
            .filter_map(|t| parse_hhmm("times", t).ok())
            .filter(|t| *t >= self.window_start && *t < self.window_end)
            .filter_map(|t| *cache.0.entry((date, t)).or_insert_with(|| self.at(date, t)))
            .map(|ms| ms / 1000)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// When quiet hours `[start, end)` (local, may wrap midnight) that
    /// contain `ms` end; None when `ms` is outside them.
    pub fn quiet_until(&self, ms: u64, start: Time, end: Time) -> Option<u64> {
        if start == end {
            return None;
        }
        let t = Self::ts(ms).to_zoned(self.tz.clone()).time();
        let date = self.local_date(ms);
        let inside = if start < end {
            t >= start && t < end
        } else {
            t >= start || t < end
        };
        if !inside {
            return None;
        }
        // The end is today unless it wrapped past midnight and we are before it.
        let end_date = if start > end && t >= start {
            date.tomorrow().ok()?
        } else {
            date
        };
        self.at(end_date, end).filter(|e| *e > ms)
    }

    /// When the next attempt is due after a failed one at `now_ms`: None
    /// means no more attempts (the check ends as missed).
    pub fn retry_due(
        &self,
        policy: &RetryPolicy,
        attempts_made: u32,
        cause: &Cause,
        now_ms: u64,
    ) -> Option<u64> {
        if attempts_made >= policy.max_attempts {
            return None;
        }
        let allowed = match cause {
            // A machine took the call: the person did not answer.
            Cause::NoAnswer | Cause::Machine => policy.retry_no_answer,
            // The tenant's `on_spoke = retry` asked for it.
            Cause::Spoke => true,
            Cause::Busy => policy.retry_busy,
            Cause::NoInput => policy.retry_no_input,
            _ => policy.retry_failed,
        };
        if !allowed {
            return None;
        }
        let due = now_ms + policy.spacing_minutes as u64 * 60_000;
        if self.in_window(due) {
            return Some(due);
        }
        if policy.carry_to_next_window {
            self.next_window_open(due)
        } else {
            None
        }
    }
}

/// Validate a schedule given through the API.
pub fn validate_schedule(s: &Schedule) -> Result<(), RuleError> {
    if s.days.is_empty() || s.days.iter().any(|d| !(1..=7).contains(d)) {
        return Err(err(
            "schedule.days",
            "days are ISO weekdays 1 (Monday) to 7 (Sunday), at least one",
        ));
    }
    if s.times.is_empty() {
        return Err(err("schedule.times", "at least one time of day HH:MM"));
    }
    for t in &s.times {
        parse_hhmm("schedule.times", t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            id: 1,
            name: "t".into(),
            time_zone: "Asia/Tokyo".into(),
            window_start: "09:00".into(),
            window_end: "12:00".into(),
            skip_holidays: true,
            retry: RetryPolicy::default(),
            cps: None,
            max_calls: None,
            script: None,
            alerts: Default::default(),
            created_at_ms: 0,
            retention_days: None,
            dial_allow: None,
            caller_id: None,
            record_answers_s: 0,
            listen_first: None,
            checkin_by_ringing: false,
        }
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let cal = Calendar::of(&tenant()).unwrap();
        let (q0, q1) = (
            parse_hhmm("q", "21:00").unwrap(),
            parse_hhmm("q", "07:00").unwrap(),
        );
        assert_eq!(cal.quiet_until(jst("2026-11-24T20:59"), q0, q1), None);
        assert_eq!(
            cal.quiet_until(jst("2026-11-24T21:00"), q0, q1),
            Some(jst("2026-11-25T07:00"))
        );
        assert_eq!(
            cal.quiet_until(jst("2026-11-25T03:00"), q0, q1),
            Some(jst("2026-11-25T07:00"))
        );
        assert_eq!(cal.quiet_until(jst("2026-11-25T07:00"), q0, q1), None);
        let (d0, d1) = (
            parse_hhmm("q", "12:00").unwrap(),
            parse_hhmm("q", "13:00").unwrap(),
        );
        assert_eq!(
            cal.quiet_until(jst("2026-11-25T12:30"), d0, d1),
            Some(jst("2026-11-25T13:00"))
        );
        assert_eq!(cal.quiet_until(jst("2026-11-25T13:30"), d0, d1), None);
    }

    fn jst(s: &str) -> u64 {
        let z: jiff::Zoned = format!("{s}[Asia/Tokyo]").parse().unwrap();
        z.timestamp().as_millisecond() as u64
    }

    fn sub(days: Vec<u8>, times: &[&str]) -> Subscriber {
        Subscriber {
            id: 1,
            tenant_id: 1,
            name: "x".into(),
            phone: "sip:1@x".into(),
            schedule: Some(Schedule {
                days,
                times: times.iter().map(|t| t.to_string()).collect(),
            }),
            paused_until: None,
            notes: String::new(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn slots_follow_days_window_holidays_and_pause() {
        let c = Calendar::of(&tenant()).unwrap();
        let s = sub(vec![1, 2, 3, 4, 5], &["09:30", "13:00", "10:15"]);
        // Friday 2026-11-20: 09:30 and 10:15 JST; 13:00 is outside the window.
        let d: Date = "2026-11-20".parse().unwrap();
        assert_eq!(
            c.slots(&s, d),
            vec![
                jst("2026-11-20T09:30") / 1000,
                jst("2026-11-20T10:15") / 1000
            ]
        );
        // Saturday: not in the schedule.
        assert!(c.slots(&s, "2026-11-21".parse().unwrap()).is_empty());
        // Monday 2026-11-23 is 勤労感謝の日.
        assert!(c.slots(&s, "2026-11-23".parse().unwrap()).is_empty());
        let mut t = tenant();
        t.skip_holidays = false;
        assert_eq!(
            Calendar::of(&t)
                .unwrap()
                .slots(&s, "2026-11-23".parse().unwrap())
                .len(),
            2
        );
        let mut paused = s.clone();
        paused.paused_until = Some("2026-11-24".into());
        assert!(c.slots(&paused, "2026-11-24".parse().unwrap()).is_empty());
        assert_eq!(c.slots(&paused, "2026-11-25".parse().unwrap()).len(), 2);
    }

    #[test]
    fn window_and_retries() {
        let c = Calendar::of(&tenant()).unwrap();
        assert!(c.in_window(jst("2026-11-20T09:00")));
        assert!(!c.in_window(jst("2026-11-20T12:00")));
        assert!(!c.in_window(jst("2026-11-23T10:00")), "holiday");
        // Friday after the window → Tuesday 09:00 (weekend is fine to call, Monday is a holiday).
        assert_eq!(
            c.next_window_open(jst("2026-11-20T12:30")),
            Some(jst("2026-11-21T09:00"))
        );
        assert_eq!(
            c.next_window_open(jst("2026-11-22T13:00")),
            Some(jst("2026-11-24T09:00"))
        );
        let p = RetryPolicy::default();
        assert_eq!(
            c.retry_due(&p, 1, &Cause::NoAnswer, jst("2026-11-20T09:30")),
            Some(jst("2026-11-20T09:45"))
        );
        assert_eq!(
            c.retry_due(&p, 3, &Cause::NoAnswer, jst("2026-11-20T09:30")),
            None,
            "3 attempts made"
        );
        assert_eq!(
            c.retry_due(&p, 1, &Cause::NoInput, jst("2026-11-20T09:30")),
            None,
            "no_input not retried by default"
        );
        // A retry that would fall after the window: missed, or carried by policy.
        assert_eq!(
            c.retry_due(&p, 1, &Cause::Busy, jst("2026-11-20T11:50")),
            None
        );
        let carry = RetryPolicy {
            carry_to_next_window: true,
            ..p
        };
        assert_eq!(
            c.retry_due(&carry, 1, &Cause::Busy, jst("2026-11-20T11:50")),
            Some(jst("2026-11-21T09:00"))
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        let mut t = tenant();
        t.time_zone = "Mars/Olympus".into();
        assert_eq!(Calendar::of(&t).unwrap_err().field, "time_zone");
        let mut t = tenant();
        t.window_end = "08:00".into();
        assert_eq!(Calendar::of(&t).unwrap_err().field, "window_end");
        let mut t = tenant();
        t.window_start = "9:00".into();
        assert_eq!(Calendar::of(&t).unwrap_err().field, "window_start");
        assert!(validate_schedule(&Schedule {
            days: vec![8],
            times: vec!["09:00".into()]
        })
        .is_err());
        assert!(validate_schedule(&Schedule {
            days: vec![1],
            times: vec!["25:00".into()]
        })
        .is_err());
        assert!(validate_schedule(&Schedule {
            days: vec![1],
            times: vec![]
        })
        .is_err());
        assert!(validate_schedule(&Schedule {
            days: vec![1, 7],
            times: vec!["09:30".into()]
        })
        .is_ok());
    }
}

//! Service opening hours: a weekly schedule of open intervals per weekday, in an IANA time
//! zone (the tz database is bundled in the binary, so the answer never depends on the host),
//! minus holiday dates.
//!
//! Intervals are local wall-clock minutes, `[start, end)`, written `"08:00-12:00"`; `"24:00"`
//! closes at the end of the day. An interval never crosses midnight: split overnight hours
//! into two days (`"22:00-24:00"` and `"00:00-02:00"`). A holiday closes the whole local day.
//!
//! Routing consults [`BusinessHours::is_open`]; the scheduler uses
//! [`BusinessHours::next_change`] to send a routing `Sweep` when a service opens.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{DomainError, ErrorCode};

/// A calendar date (for holidays), re-exported so callers need not depend on `jiff`.
pub use jiff::civil::Date;

const MINUTES_PER_DAY: u16 = 24 * 60;
/// How far [`BusinessHours::next_change`] looks before concluding the state never changes.
const HORIZON_DAYS: usize = 400;

/// One open interval of a day, in local minutes since midnight, `start < end <= 1440`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OpenInterval {
    pub start: u16,
    pub end: u16,
}

impl OpenInterval {
    pub fn new(start: u16, end: u16) -> Result<Self, DomainError> {
        if start >= end || end > MINUTES_PER_DAY {
            return Err(DomainError::new(
                ErrorCode::InvalidArgument,
                format!("open interval must satisfy start < end <= 24:00 (got {start}..{end} minutes)"),
            ));
        }
        Ok(Self { start, end })
    }

    /// Parses `"HH:MM-HH:MM"`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::new(
                ErrorCode::InvalidArgument,
                format!("open interval {s:?} is not HH:MM-HH:MM"),
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= MINUTES_PER_DAY).then_some(h * 60 + m)
        };
        Self::new(minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?)
    }

    fn contains(&self, minute: u16) -> bool {
        self.start <= minute && minute < self.end
    }
}

impl std::fmt::Display for OpenInterval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl TryFrom<String> for OpenInterval {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OpenInterval> for String {
    fn from(i: OpenInterval) -> String {
        i.to_string()
    }
}

/// Open intervals per weekday; a missing day is closed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyHours {
    #[serde(default)]
    pub monday: Vec<OpenInterval>,
    #[serde(default)]
    pub tuesday: Vec<OpenInterval>,
    #[serde(default)]
    pub wednesday: Vec<OpenInterval>,
    #[serde(default)]
    pub thursday: Vec<OpenInterval>,
    #[serde(default)]
    pub friday: Vec<OpenInterval>,
    #[serde(default)]
    pub saturday: Vec<OpenInterval>,
    #[serde(default)]
    pub sunday: Vec<OpenInterval>,
}

impl WeeklyHours {
    /// The same intervals Monday to Friday, closed at the weekend.
    pub fn weekdays(intervals: &[OpenInterval]) -> Self {
        Self {
            monday: intervals.to_vec(),
            tuesday: intervals.to_vec(),
            wednesday: intervals.to_vec(),
            thursday: intervals.to_vec(),
            friday: intervals.to_vec(),
            ..Self::default()
        }
    }

    pub fn day(&self, weekday: jiff::civil::Weekday) -> &[OpenInterval] {
        use jiff::civil::Weekday::*;
        match weekday {
            Monday => &self.monday,
            Tuesday => &self.tuesday,
            Wednesday => &self.wednesday,
            Thursday => &self.thursday,
            Friday => &self.friday,
            Saturday => &self.saturday,
            Sunday => &self.sunday,
        }
    }
}

/// The serialized form: what a service's configuration stores.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BusinessHoursSpec {
    time_zone: String,
    weekly: WeeklyHours,
    #[serde(default)]
    holidays: Vec<Date>,
}

/// A validated schedule. Built by [`BusinessHours::new`] or deserialized (validation runs
/// then too), so the time zone is resolved once and `is_open` cannot fail.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "BusinessHoursSpec", into = "BusinessHoursSpec")]
pub struct BusinessHours {
    spec: BusinessHoursSpec,
    /// Resolved from `spec.time_zone`; kept so every check does not look the name up again.
    tz: jiff::tz::TimeZone,
}

impl PartialEq for BusinessHours {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl TryFrom<BusinessHoursSpec> for BusinessHours {
    type Error = DomainError;
    fn try_from(spec: BusinessHoursSpec) -> Result<Self, DomainError> {
        Self::new(&spec.time_zone, spec.weekly, spec.holidays)
    }
}

impl From<BusinessHours> for BusinessHoursSpec {
    fn from(h: BusinessHours) -> Self {
        h.spec
    }
}

impl BusinessHours {
    /// `time_zone` is an IANA name such as `America/Sao_Paulo`.
    pub fn new(time_zone: &str, weekly: WeeklyHours, holidays: Vec<Date>) -> Result<Self, DomainError> {
        let tz = jiff::tz::TimeZone::get(time_zone).map_err(|e| {
            DomainError::new(
                ErrorCode::InvalidArgument,
                format!("unknown time zone {time_zone:?}: {e}"),
            )
        })?;
        for weekday in ALL_WEEKDAYS {
            for i in weekly.day(weekday) {
                OpenInterval::new(i.start, i.end)?;
            }
        }
        let spec = BusinessHoursSpec {
            time_zone: time_zone.to_owned(),
            weekly,
            holidays,
        };
        Ok(Self { spec, tz })
    }

    pub fn time_zone(&self) -> &str {
        &self.spec.time_zone
    }
    pub fn weekly(&self) -> &WeeklyHours {
        &self.spec.weekly
    }
    pub fn holidays(&self) -> &[Date] {
        &self.spec.holidays
    }

    /// Whether the service is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let dt = self.tz.to_datetime(to_jiff(at));
        let date = dt.date();
        if self.spec.holidays.contains(&date) {
            return false;
        }
        let minute = dt.hour() as u16 * 60 + dt.minute() as u16;
        self.spec.weekly.day(date.weekday()).iter().any(|i| i.contains(minute))
    }

    /// The first instant after `after` at which `is_open` changes, or `None` if it does not
    /// change within about a year (an always-closed or always-open schedule).
    ///
    /// Candidates are local midnights and interval boundaries; the exact instant is then
    /// found by bisection, which also handles a boundary that falls in a DST gap.
    pub fn next_change(&self, after: Timestamp) -> Option<Timestamp> {
        let state = self.is_open(after);
        let mut date = self.tz.to_datetime(to_jiff(after)).date().yesterday().ok()?;
        let mut last_same = after;
        for _ in 0..HORIZON_DAYS {
            let mut candidates: Vec<Timestamp> = Vec::with_capacity(8);
            candidates.push(self.local(date, 0)?);
            for i in self.spec.weekly.day(date.weekday()) {
                candidates.push(self.local(date, i.start)?);
                candidates.push(self.local(date, i.end)?);
            }
            candidates.sort();
            for c in candidates.into_iter().filter(|c| *c > after) {
                if self.is_open(c) != state {
                    return Some(self.bisect(last_same, c, state));
                }
                last_same = last_same.max(c);
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The instant of local `date` + `minute` (1440 = the next midnight), DST gaps resolved
    /// forward as jiff's "compatible" disambiguation does.
    fn local(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let (date, minute) = if minute >= MINUTES_PER_DAY {
            (date.tomorrow().ok()?, 0)
        } else {
            (date, minute)
        };
        let dt = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let ts = self.tz.to_timestamp(dt).ok()?;
        Some(Timestamp(ts.as_millisecond()))
    }

    /// Smallest t in (lo, hi] with `is_open(t) != state`, given `is_open(lo) == state` and
    /// `is_open(hi) != state`.
    fn bisect(&self, mut lo: Timestamp, mut hi: Timestamp, state: bool) -> Timestamp {
        while hi.0 - lo.0 > 1 {
            let mid = Timestamp(lo.0 + (hi.0 - lo.0) / 2);
            if self.is_open(mid) == state {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

const ALL_WEEKDAYS: [jiff::civil::Weekday; 7] = [
    jiff::civil::Weekday::Monday,
    jiff::civil::Weekday::Tuesday,
    jiff::civil::Weekday::Wednesday,
    jiff::civil::Weekday::Thursday,
    jiff::civil::Weekday::Friday,
    jiff::civil::Weekday::Saturday,
    jiff::civil::Weekday::Sunday,
];

fn to_jiff(at: Timestamp) -> jiff::Timestamp {
    // Out-of-range instants (beyond year ±9999) clamp; no real schedule reaches them.
    jiff::Timestamp::from_millisecond(at.0).unwrap_or(if at.0 < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-02 is a Monday; São Paulo is UTC-3 all year (no DST since 2019).
    fn sp_at(date: &str, hh: i64, mm: i64) -> Timestamp {
        let d: Date = date.parse().unwrap();
        let utc_midnight = d
            .at(0, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond();
        Timestamp(utc_midnight + ((hh + 3) * 60 + mm) * 60_000)
    }

    fn office() -> BusinessHours {
        let day = [
            OpenInterval::parse("08:00-12:00").unwrap(),
            OpenInterval::parse("13:00-18:00").unwrap(),
        ];
        BusinessHours::new(
            "America/Sao_Paulo",
            WeeklyHours::weekdays(&day),
            vec!["2026-03-03".parse().unwrap()],
        )
        .unwrap()
    }

    #[test]
    fn a_weekday_inside_an_interval_is_open_in_the_service_time_zone() {
        // Arrange
        let hours = office();
        // Act / Assert: 08:00 local is 11:00 UTC
        assert!(hours.is_open(sp_at("2026-03-02", 8, 0)));
        assert!(hours.is_open(sp_at("2026-03-02", 17, 59)));
        assert!(!hours.is_open(sp_at("2026-03-02", 7, 59)));
    }

    #[test]
    fn the_end_of_an_interval_and_the_lunch_break_are_closed() {
        let hours = office();
        assert!(!hours.is_open(sp_at("2026-03-02", 12, 0)));
        assert!(!hours.is_open(sp_at("2026-03-02", 18, 0)));
    }

    #[test]
    fn weekends_without_intervals_and_holidays_are_closed() {
        let hours = office();
        assert!(!hours.is_open(sp_at("2026-03-07", 10, 0)), "saturday");
        assert!(!hours.is_open(sp_at("2026-03-03", 10, 0)), "holiday tuesday");
        assert!(hours.is_open(sp_at("2026-03-04", 10, 0)), "wednesday");
    }

    #[test]
    fn next_change_finds_the_lunch_break_then_the_afternoon_opening() {
        let hours = office();
        assert_eq!(
            hours.next_change(sp_at("2026-03-02", 9, 0)),
            Some(sp_at("2026-03-02", 12, 0))
        );
        assert_eq!(
            hours.next_change(sp_at("2026-03-02", 12, 0)),
            Some(sp_at("2026-03-02", 13, 0))
        );
    }

    #[test]
    fn next_change_skips_the_holiday_and_the_night() {
        let hours = office();
        // Monday 18:00 closes; Tuesday is a holiday; Wednesday 08:00 opens.
        assert_eq!(
            hours.next_change(sp_at("2026-03-02", 18, 30)),
            Some(sp_at("2026-03-04", 8, 0))
        );
        // Friday evening to Monday morning.
        assert_eq!(
            hours.next_change(sp_at("2026-03-06", 20, 0)),
            Some(sp_at("2026-03-09", 8, 0))
        );
    }

    #[test]
    fn an_interval_ending_at_24_00_closes_at_midnight_and_a_split_night_stays_open() {
        let weekly = WeeklyHours {
            monday: vec![OpenInterval::parse("22:00-24:00").unwrap()],
            tuesday: vec![OpenInterval::parse("00:00-02:00").unwrap()],
            ..WeeklyHours::default()
        };
        let hours = BusinessHours::new("America/Sao_Paulo", weekly, vec![]).unwrap();
        assert!(hours.is_open(sp_at("2026-03-02", 23, 59)));
        assert!(hours.is_open(sp_at("2026-03-03", 0, 0)));
        assert_eq!(
            hours.next_change(sp_at("2026-03-02", 22, 30)),
            Some(sp_at("2026-03-03", 2, 0))
        );
    }

    #[test]
    fn a_schedule_that_never_opens_has_no_next_change() {
        let hours = BusinessHours::new("America/Sao_Paulo", WeeklyHours::default(), vec![]).unwrap();
        assert_eq!(hours.next_change(sp_at("2026-03-02", 9, 0)), None);
    }

    #[test]
    fn a_boundary_in_a_dst_gap_opens_when_the_clock_jumps() {
        // New York springs forward 2026-03-08 02:00 -> 03:00; an opening at 02:30 happens
        // at the jump itself (07:00 UTC), the first instant whose local time is past 02:30.
        let weekly = WeeklyHours {
            sunday: vec![OpenInterval::parse("02:30-10:00").unwrap()],
            ..WeeklyHours::default()
        };
        let hours = BusinessHours::new("America/New_York", weekly, vec![]).unwrap();
        let sat_night = Timestamp::from_secs(1_772_942_400); // 2026-03-08T04:00Z = 23:00 EST
        let jump = Timestamp::from_secs(1_772_953_200); // 2026-03-08T07:00Z
        assert_eq!(hours.next_change(sat_night), Some(jump));
    }

    #[test]
    fn unknown_time_zones_and_bad_intervals_are_refused() {
        assert!(BusinessHours::new("Mars/Olympus", WeeklyHours::default(), vec![]).is_err());
        assert!(OpenInterval::parse("18:00-08:00").is_err());
        assert!(OpenInterval::parse("8h-9h").is_err());
        assert!(OpenInterval::parse("24:30-25:00").is_err());
    }

    #[test]
    fn the_schedule_round_trips_through_json_and_validates_on_the_way_in() {
        let hours = office();
        let json = serde_json::to_string(&hours).unwrap();
        assert!(json.contains("\"08:00-12:00\"") && json.contains("America/Sao_Paulo"));
        let back: BusinessHours = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hours);
        let bad = json.replace("America/Sao_Paulo", "Nowhere/Land");
        assert!(serde_json::from_str::<BusinessHours>(&bad).is_err());
    }
}

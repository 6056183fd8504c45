//! Time windows of an access policy ("weekdays 08:00-19:00, Asia/Shanghai"), as
//! OneAccess access policies have them. Judged in the policy's time zone, from a
//! clock value the caller passes, so a decision stays a pure function.

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;

/// One window: on these days, from `from` up to (not including) `to`, in minutes
/// since local midnight. `to` may be 1440 (`24:00`). A window whose `to` is before
/// its `from` runs past midnight, and belongs to the day it starts on: `fri
/// 22:00-06:00` covers Friday night and early Saturday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Bit 0 is Monday, bit 6 Sunday.
    pub days: u8,
    pub from: u16,
    pub to: u16,
}

/// All seven days.
pub(crate) const EVERY_DAY: u8 = 0x7f;

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) zone: Tz,
    pub windows: Vec<Window>,
}

impl Schedule {
    /// Whether the instant `unix` (seconds) falls in one of the windows.
    pub(crate) fn contains(&self, unix: u64) -> bool {
        let Ok(secs) = i64::try_from(unix) else {
            return false;
        };
        let Some(local) = self.zone.timestamp_opt(secs, 0).single() else {
            return false;
        };
        let day = local.weekday().num_days_from_monday() as u8;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.windows.iter().any(|w| w.contains(day, minute))
    }
}

impl Window {
    fn contains(&self, day: u8, minute: u16) -> bool {
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.from < self.to {
            on(day) && (self.from..self.to).contains(&minute)
        } else {
            // Past midnight: the evening of a listed day, or the small hours after it.
            let yesterday = (day + 6) % 7;
            (on(day) && minute >= self.from) || (on(yesterday) && minute < self.to)
        }
    }
}

/// `mon`..`sun`, or a range `mon-fri` (which may wrap: `fri-mon`), as a day mask.
pub(crate) fn parse_days(text: &str) -> Option<u8> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let index = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        NAMES.iter().position(|n| s.starts_with(n) && s.len() >= 3)
    };
    match text.split_once('-') {
        None => index(text).map(|d| 1 << d),
        Some((a, b)) => {
            let (a, b) = (index(a)?, index(b)?);
            let mut mask = 0u8;
            let mut d = a;
            loop {
                mask |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
            Some(mask)
        }
    }
}

/// `HH:MM` as minutes since midnight; `24:00` is allowed (the end of a day).
pub(crate) fn parse_clock(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        zone.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("time")
            .timestamp() as u64
    }

    #[test]
    fn days_and_clocks_parse() {
        assert_eq!(parse_days("mon"), Some(1));
        assert_eq!(parse_days("Sunday"), Some(1 << 6));
        assert_eq!(parse_days("mon-fri"), Some(0b001_1111));
        assert_eq!(parse_days("fri-mon"), Some(0b111_0001));
        assert_eq!(parse_days("mo"), None);
        assert_eq!(parse_days("mon-xyz"), None);
        assert_eq!(parse_clock("08:30"), Some(510));
        assert_eq!(parse_clock("24:00"), Some(1440));
        assert_eq!(parse_clock("24:01"), None);
        assert_eq!(parse_clock("8:5"), None);
        assert_eq!(parse_clock("12:60"), None);
        assert_eq!(parse_clock("-1:00"), None);
    }

    #[test]
    fn windows_are_judged_in_their_zone() {
        // 2026-11-23 is a Monday.
        let shanghai = Schedule {
            zone: chrono_tz::Asia::Shanghai,
            windows: vec![Window {
                days: parse_days("mon-fri").expect("days"),
                from: 8 * 60,
                to: 19 * 60,
            }],
        };
        let utc = chrono_tz::UTC;
        let rows = [
            // 09:00 in Shanghai is 01:00 UTC: inside.
            (at(utc, 2026, 11, 23, 1, 0), true),
            // 07:59 local: before.
            (at(chrono_tz::Asia::Shanghai, 2026, 11, 23, 7, 59), false),
            (at(chrono_tz::Asia::Shanghai, 2026, 11, 23, 8, 0), true),
            // `to` is not included.
            (at(chrono_tz::Asia::Shanghai, 2026, 11, 23, 19, 0), false),
            // Saturday.
            (at(chrono_tz::Asia::Shanghai, 2026, 11, 28, 10, 0), false),
            // Friday 23:00 UTC is Saturday 07:00 in Shanghai.
            (at(utc, 2026, 11, 27, 23, 0), false),
        ];
        for (t, want) in rows {
            assert_eq!(shanghai.contains(t), want, "{t}");
        }
    }

    #[test]
    fn a_night_window_belongs_to_the_day_it_starts() {
        let z = chrono_tz::Europe::Berlin;
        let s = Schedule {
            zone: z,
            windows: vec![Window {
                days: parse_days("fri").expect("days"),
                from: 22 * 60,
                to: 6 * 60,
            }],
        };
        assert!(s.contains(at(z, 2026, 11, 27, 23, 0)), "Friday night");
        assert!(s.contains(at(z, 2026, 11, 28, 5, 59)), "early Saturday");
        assert!(!s.contains(at(z, 2026, 11, 28, 6, 0)), "Saturday morning");
        assert!(!s.contains(at(z, 2026, 11, 28, 23, 0)), "Saturday night");
        assert!(!s.contains(at(z, 2026, 11, 27, 5, 0)), "early Friday");
    }

    #[test]
    fn daylight_saving_moves_the_window_with_the_wall_clock() {
        let z = chrono_tz::Europe::Berlin;
        let s = Schedule {
            zone: z,
            windows: vec![Window {
                days: EVERY_DAY,
                from: 9 * 60,
                to: 10 * 60,
            }],
        };
        // 09:30 local is 07:30 UTC in summer and 08:30 UTC in winter.
        assert!(s.contains(at(chrono_tz::UTC, 2026, 7, 1, 7, 30)));
        assert!(!s.contains(at(chrono_tz::UTC, 2026, 12, 1, 7, 30)));
        assert!(s.contains(at(chrono_tz::UTC, 2026, 12, 1, 8, 30)));
    }
}

//! Expiry on the wire: monotonic [`Instant`]s here, wall-clock times between nodes.
//!
//! galaxycache's HTTP protocol sends `Expires: Mon, 02 Jan 2006 15:04:05.000000000 GMT`
//! (an HTTP date with nanoseconds); its gRPC protocol a `google.protobuf.Timestamp`. Both
//! assume the members' clocks agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The wall-clock time of `at`.
pub(crate) fn to_wall(at: Instant) -> SystemTime {
    let now = Instant::now();
    let wall = SystemTime::now();
    if at >= now {
        wall.checked_add(at - now).unwrap_or(wall)
    } else {
        wall.checked_sub(now - at).unwrap_or(UNIX_EPOCH)
    }
}

/// The instant of wall-clock time `at`. A time in the past stays as far in the past (a
/// stale value's expiry counts towards its grace), or "now" when that is before what an
/// `Instant` can hold.
pub(crate) fn from_wall(at: SystemTime) -> Instant {
    let now = Instant::now();
    match at.duration_since(SystemTime::now()) {
        // Too far ahead to represent: treat as "never" would change semantics, so saturate
        // at about a century, which nothing outlives.
        Ok(ahead) => now
            .checked_add(ahead)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

/// Seconds and nanoseconds since the Unix epoch (negative for earlier times).
pub(crate) fn unix_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - n)
            }
        }
    }
}

/// The time `secs` seconds and `nanos` nanoseconds after the Unix epoch.
pub(crate) fn from_unix_parts(secs: i64, nanos: u32) -> Option<SystemTime> {
    if nanos >= 1_000_000_000 {
        return None;
    }
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(nanos.into()))
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// galaxycache's `Expires` layout: `Mon, 02 Jan 2006 15:04:05.000000000 GMT`.
pub(crate) fn format_http_date(t: SystemTime) -> String {
    let (secs, nanos) = unix_parts(t);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02}.{:09} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        nanos
    )
}

/// Parse an HTTP date in IMF-fixdate form, with an optional fraction of a second (Go's
/// parser accepts one, and galaxycache sends nine digits).
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.get(5..)?; // "Mon, "
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let month = MONTHS.iter().position(|&m| m == month)? as u32 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let clock = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 || !(1..=31).contains(&day) {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let days = days_from_civil(year, month, day);
    from_unix_parts(days * 86_400 + h * 3600 + mi * 60 + sec, nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_go_reference_time() {
        // Go's reference time, 2006-01-02T15:04:05Z, is Unix 1136214245 and a Monday.
        let t = UNIX_EPOCH + Duration::new(1_136_214_245, 7);
        assert_eq!(
            format_http_date(t),
            "Mon, 02 Jan 2006 15:04:05.000000007 GMT"
        );
        assert_eq!(
            parse_http_date("Mon, 02 Jan 2006 15:04:05.000000007 GMT"),
            Some(t)
        );
        assert_eq!(
            parse_http_date("Mon, 02 Jan 2006 15:04:05 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_136_214_245))
        );
        assert_eq!(
            parse_http_date("Mon, 02 Jan 2006 15:04:05.5 GMT"),
            Some(UNIX_EPOCH + Duration::new(1_136_214_245, 500_000_000))
        );
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        for secs in [0_u64, 951_782_400, 4_102_444_800, 1_700_000_000] {
            let t = UNIX_EPOCH + Duration::new(secs, 123_456_789);
            let text = format_http_date(t);
            assert_eq!(parse_http_date(&text), Some(t), "{secs} {text}");
        }
        for bad in [
            "",
            "Mon, 02 Jan 2006 15:04:05 UTC",
            "Mon, 02 Foo 2006 15:04:05 GMT",
            "Mon, 32 Jan 2006 15:04:05 GMT",
            "Mon, 02 Jan 2006 25:04:05 GMT",
            "Mon, 02 Jan 2006 15:04:05.1234567890 GMT",
            "Mon, 02 Jan 2006 15:04:05.x GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn unix_parts_round_trip_before_the_epoch() {
        let t = UNIX_EPOCH - Duration::new(5, 250);
        let (s, n) = unix_parts(t);
        assert_eq!((s, n), (-6, 999_999_750));
        assert_eq!(from_unix_parts(s, n), Some(t));
    }

    #[test]
    fn instants_cross_the_wall_clock() {
        let at = Instant::now() + Duration::from_secs(30);
        let back = from_wall(to_wall(at));
        let diff = if back > at { back - at } else { at - back };
        assert!(diff < Duration::from_millis(50), "{diff:?}");
        assert!(from_wall(UNIX_EPOCH) <= Instant::now());
    }
}

//! XEP-0160 offline messages: which messages are kept for a user who has no
//! available resource, and the XEP-0203 delay stamp they carry (XEP-0082 date-time).

use std::time::{SystemTime, UNIX_EPOCH};

use super::MessageType;
use crate::ns;
use crate::xml::Element;

/// XEP-0160 §3: `normal` and `chat` messages are stored, `groupchat`, `headline` and
/// `error` are not. A message without `<body/>` (e.g. only XEP-0085 chat states) is
/// not worth storing either.
pub fn is_storable(message: &Element) -> bool {
    matches!(MessageType::of(message), MessageType::Normal | MessageType::Chat)
        && message.get_child("body", message.ns()).is_some()
}

/// XEP-0160 §3 and XEP-0203 §3: `message` with `<delay xmlns='urn:xmpp:delay'
/// from='domain' stamp='...'/>` appended, marking when the server stored it.
pub fn with_delay(message: &Element, domain: &str, now: SystemTime) -> Element {
    let mut stored = message.clone();
    stored.push_child(
        Element::new("delay", ns::DELAY)
            .with_attr("from", domain)
            .with_attr("stamp", format_datetime(now)),
    );
    stored
}

/// XEP-0082 §3.2 DateTime profile, in UTC with whole seconds:
/// `CCYY-MM-DDThh:mm:ssZ`. Times before 1970 are written as the epoch.
pub fn format_datetime(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01. Counts in 400-year
/// eras (146 097 days each), starting each year on March 1st so that the leap day
/// is the last day of the year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the origin from 1970-01-01 to 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March, ..., 11 = February.
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        format_datetime(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(978_307_199), "2000-12-31T23:59:59Z");
        assert_eq!(at(1_709_208_000), "2024-02-29T12:00:00Z");
        assert_eq!(at(1_795_608_000), "2026-11-25T12:00:00Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(at(1_032_042_505), "2002-09-14T22:28:25Z");
    }

    #[test]
    fn subsecond_part_is_dropped_and_pre_epoch_clamps() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(format_datetime(t), "1970-01-01T00:00:01Z");
        assert_eq!(
            format_datetime(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn every_day_round_trips_month_lengths() {
        // Walk 1970..2401 day by day and check the calendar never skips or repeats.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for d in 1..(431 * 366) {
            let cur = civil_from_days(d);
            let leap = |y: u64| matches!((y % 4, y % 100, y % 400), (0, 1.., _) | (_, _, 0));
            let len = match prev.1 {
                2 if leap(prev.0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if prev.2 < len {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, expected, "day {d}");
            prev = cur;
        }
    }

    #[test]
    fn storable_messages() {
        let body = || Element::new("body", ns::CLIENT).with_text("hi");
        let m = |t: Option<&str>| {
            let mut m = Element::new("message", ns::CLIENT).with_child(body());
            if let Some(t) = t {
                m.set_attr("type", t);
            }
            m
        };
        assert!(is_storable(&m(None)));
        assert!(is_storable(&m(Some("chat"))));
        assert!(is_storable(&m(Some("normal"))));
        assert!(!is_storable(&m(Some("headline"))));
        assert!(!is_storable(&m(Some("groupchat"))));
        assert!(!is_storable(&m(Some("error"))));
        let states_only = Element::new("message", ns::CLIENT)
            .with_attr("type", "chat")
            .with_child(Element::new("active", "http://jabber.org/protocol/chatstates"));
        assert!(!is_storable(&states_only));
    }

    #[test]
    fn delay_is_appended() {
        let m = Element::new("message", ns::CLIENT).with_attr("to", "b@localhost");
        let stored = with_delay(&m, "localhost", UNIX_EPOCH + Duration::from_secs(1_795_608_000));
        assert_eq!(
            stored.to_xml(),
            "<message xmlns='jabber:client' to='b@localhost'><delay xmlns='urn:xmpp:delay' \
             from='localhost' stamp='2026-11-25T12:00:00Z'/></message>"
        );
    }
}

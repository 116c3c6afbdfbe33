//! The time-zone abbreviation in force (`CET`, `CEST`, `UTC`), Salt's
//! `locale_info.timezone`: from a TZif file (RFC 8536, as in
//! `/etc/localtime`) or a POSIX `TZ` rule such as `CET-1CEST,M3.5.0,M10.5.0/3`
//! (the `TZ` variable, and the footer of every version-2 file). The time is
//! an argument, so both are tested at fixed instants.

/// The abbreviation a TZif file gives for `now` (Unix seconds).
pub fn tzif_abbreviation(data: &[u8], now: i64) -> Option<String> {
    let tz = parse_tzif(data)?;
    let type_at = |i: usize| tz.types.get(i).map(|t| t.abbreviation.clone());
    let last = tz.transitions.last();
    if let Some(&(t, _)) = last
        && now >= t
        && !tz.footer.is_empty()
    {
        return posix_abbreviation(&tz.footer, now);
    }
    match tz.transitions.iter().rposition(|&(t, _)| t <= now) {
        Some(i) => type_at(tz.transitions[i].1 as usize),
        None if tz.transitions.is_empty() && !tz.footer.is_empty() => {
            posix_abbreviation(&tz.footer, now)
        }
        None => type_at(0),
    }
}

struct TzInfo {
    abbreviation: String,
}

struct Tzif {
    transitions: Vec<(i64, u8)>,
    types: Vec<TzInfo>,
    footer: String,
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn parse_tzif(d: &[u8]) -> Option<Tzif> {
    let header = |at: usize| -> Option<(u8, [usize; 6])> {
        (d.get(at..at + 4)? == b"TZif").then_some(())?;
        let mut counts = [0usize; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = be32(d, at + 20 + 4 * i)? as usize;
        }
        Some((*d.get(at + 4)?, counts))
    };
    let (version, counts) = header(0)?;
    let block = |c: [usize; 6], time: usize| {
        let [isut, isstd, leap, timecnt, typecnt, charcnt] = c;
        timecnt * time + timecnt + typecnt * 6 + charcnt + leap * (time + 4) + isstd + isut
    };
    let (at, counts, time) = if version >= b'2' {
        let second = 44 + block(counts, 4);
        (second, header(second)?.1, 8)
    } else {
        (0, counts, 4)
    };
    let [_, _, _, timecnt, typecnt, charcnt] = counts;
    let mut p = at + 44;
    let mut transitions = Vec::with_capacity(timecnt);
    for i in 0..timecnt {
        let t = if time == 8 {
            i64::from_be_bytes(d.get(p + 8 * i..p + 8 * i + 8)?.try_into().ok()?)
        } else {
            i64::from(be32(d, p + 4 * i)? as i32)
        };
        transitions.push((t, 0));
    }
    p += timecnt * time;
    for (i, tr) in transitions.iter_mut().enumerate() {
        tr.1 = *d.get(p + i)?;
    }
    p += timecnt;
    let infos = d.get(p..p + typecnt * 6)?;
    let chars = d.get(p + typecnt * 6..p + typecnt * 6 + charcnt)?;
    let mut types = Vec::with_capacity(typecnt);
    for t in infos.chunks_exact(6) {
        let start = t[5] as usize;
        let name = chars.get(start..)?;
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        types.push(TzInfo {
            abbreviation: String::from_utf8_lossy(&name[..end]).into_owned(),
        });
    }
    let footer = if version >= b'2' {
        let rest = d.get(at + 44 + block(counts, 8)..).unwrap_or_default();
        let text = String::from_utf8_lossy(rest);
        text.trim_matches('\n')
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    } else {
        String::new()
    };
    Some(Tzif {
        transitions,
        types,
        footer,
    })
}

/// The abbreviation a POSIX `TZ` rule gives for `now` (Unix seconds).
pub fn posix_abbreviation(rule: &str, now: i64) -> Option<String> {
    let mut s = Scanner(rule.as_bytes());
    let std_name = s.name()?;
    let std_off = -s.offset()?;
    if s.0.is_empty() {
        return Some(std_name);
    }
    let dst_name = s.name()?;
    let dst_off = if s.0.first().is_some_and(|c| *c != b',') {
        -s.offset()?
    } else {
        std_off + 3600
    };
    let (start, end) = if s.0.is_empty() {
        // POSIX leaves the default open; glibc uses the US rules.
        ((Date::Month(3, 2, 0), 7200), (Date::Month(11, 1, 0), 7200))
    } else {
        s.eat(b',')?;
        let start = s.transition()?;
        s.eat(b',')?;
        (start, s.transition()?)
    };
    let year = civil_year((now + std_off) / 86400);
    let at = |(date, time): (Date, i64), off: i64| date.day(year) * 86400 + time - off;
    let (on, off) = (at(start, std_off), at(end, dst_off));
    let dst = if on < off {
        on <= now && now < off
    } else {
        !(off <= now && now < on)
    };
    Some(if dst { dst_name } else { std_name })
}

#[derive(Clone, Copy)]
enum Date {
    /// `Jn`: 1–365, February 29 never counted.
    Julian(i64),
    /// `n`: 0–365, February 29 counted.
    Zero(i64),
    /// `Mm.w.d`: day `d` (0 Sunday) of week `w` (5 the last) of month `m`.
    Month(i64, i64, i64),
}

impl Date {
    /// Days since 1970-01-01 of this date in `year`.
    fn day(self, year: i64) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        match self {
            Date::Julian(n) => jan1 + n - 1 + i64::from(is_leap(year) && n >= 60),
            Date::Zero(n) => jan1 + n,
            Date::Month(m, w, d) => {
                let first = days_from_civil(year, m, 1);
                let next = if m == 12 {
                    days_from_civil(year + 1, 1, 1)
                } else {
                    days_from_civil(year, m + 1, 1)
                };
                let weekday = (first + 4).rem_euclid(7);
                let mut day = first + (d - weekday).rem_euclid(7) + 7 * (w - 1);
                while day >= next {
                    day -= 7;
                }
                day
            }
        }
    }
}

struct Scanner<'a>(&'a [u8]);

impl Scanner<'_> {
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.0.first() == Some(&c)).then(|| self.0 = &self.0[1..])
    }

    fn name(&mut self) -> Option<String> {
        let (name, rest) = if self.0.first() == Some(&b'<') {
            let end = self.0.iter().position(|c| *c == b'>')?;
            (&self.0[1..end], &self.0[end + 1..])
        } else {
            let end = self
                .0
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .unwrap_or(self.0.len());
            (&self.0[..end], &self.0[end..])
        };
        self.0 = rest;
        (name.len() >= 3).then(|| String::from_utf8_lossy(name).into_owned())
    }

    fn number(&mut self) -> Option<i64> {
        let end = self
            .0
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(self.0.len());
        let n = std::str::from_utf8(&self.0[..end]).ok()?.parse().ok()?;
        self.0 = &self.0[end..];
        Some(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.0.first() {
            Some(b'-') => {
                self.0 = &self.0[1..];
                -1
            }
            Some(b'+') => {
                self.0 = &self.0[1..];
                1
            }
            _ => 1,
        };
        let mut secs = self.number()? * 3600;
        for unit in [60, 1] {
            if self.eat(b':').is_none() {
                break;
            }
            secs += self.number()? * unit;
        }
        Some(sign * secs)
    }

    /// `date[/time]`, the time 02:00 when not given.
    fn transition(&mut self) -> Option<(Date, i64)> {
        let date = match self.0.first()? {
            b'J' => {
                self.0 = &self.0[1..];
                Date::Julian(self.number()?)
            }
            b'M' => {
                self.0 = &self.0[1..];
                let m = self.number()?;
                self.eat(b'.')?;
                let w = self.number()?;
                self.eat(b'.')?;
                Date::Month(m, w, self.number()?)
            }
            _ => Date::Zero(self.number()?),
        };
        let time = match self.eat(b'/') {
            Some(()) => self.offset()?,
            None => 7200,
        };
        Some((date, time))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day counted from 1970-01-01.
fn civil_year(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-15T12:00Z and 2024-07-01T12:00Z.
    const WINTER: i64 = 1_705_320_000;
    const SUMMER: i64 = 1_719_835_200;

    #[test]
    fn posix_rules() {
        let cases = [
            ("UTC0", WINTER, "UTC"),
            ("<+03>-3", SUMMER, "+03"),
            ("JST-9", SUMMER, "JST"),
            ("CET-1CEST,M3.5.0,M10.5.0/3", WINTER, "CET"),
            ("CET-1CEST,M3.5.0,M10.5.0/3", SUMMER, "CEST"),
            ("AEST-10AEDT,M10.1.0,M4.1.0/3", WINTER, "AEDT"),
            ("AEST-10AEDT,M10.1.0,M4.1.0/3", SUMMER, "AEST"),
            ("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", SUMMER, "-02"),
            ("EST5EDT", SUMMER, "EDT"),
            // US spring forward, 2024-03-10 at 02:00 EST = 07:00Z.
            ("EST5EDT,M3.2.0,M11.1.0", 1_710_053_999, "EST"),
            ("EST5EDT,M3.2.0,M11.1.0", 1_710_054_000, "EDT"),
            ("XXX3YYY,J60/0,J300/0", SUMMER, "YYY"),
            ("XXX3YYY,59/0,299/0", WINTER, "XXX"),
        ];
        for (rule, now, want) in cases {
            assert_eq!(
                posix_abbreviation(rule, now).as_deref(),
                Some(want),
                "{rule} at {now}"
            );
        }
        assert_eq!(posix_abbreviation("", WINTER), None);
        assert_eq!(posix_abbreviation("X1", WINTER), None);
    }

    /// A TZif file of `version` with these transitions, types and footer.
    fn tzif(
        version: u8,
        transitions: &[(i64, u8)],
        types: &[(i32, bool, &str)],
        footer: &str,
    ) -> Vec<u8> {
        let mut chars = Vec::new();
        let mut infos = Vec::new();
        for (off, dst, name) in types {
            infos.extend(off.to_be_bytes());
            infos.push(u8::from(*dst));
            infos.push(chars.len() as u8);
            chars.extend(name.as_bytes());
            chars.push(0);
        }
        let head = |v: u8, timecnt: usize| {
            let mut h = b"TZif".to_vec();
            h.push(v);
            h.extend([0u8; 15]);
            for c in [0, 0, 0, timecnt, types.len(), chars.len()] {
                h.extend((c as u32).to_be_bytes());
            }
            h
        };
        let body = |time: usize| {
            let mut b = Vec::new();
            for (t, _) in transitions {
                match time {
                    4 => b.extend((*t as i32).to_be_bytes()),
                    _ => b.extend(t.to_be_bytes()),
                }
            }
            b.extend(transitions.iter().map(|(_, i)| *i));
            b.extend(&infos);
            b.extend(&chars);
            b
        };
        let mut out = head(version, transitions.len());
        out.extend(body(4));
        if version >= b'2' {
            out.extend(head(version, transitions.len()));
            out.extend(body(8));
            out.extend(format!("\n{footer}\n").into_bytes());
        }
        out
    }

    #[test]
    fn tzif_files() {
        let ams_types = [(3600, false, "CET"), (7200, true, "CEST")];
        // Slim: transitions stop in 1996, the footer carries on.
        let slim = tzif(
            b'2',
            &[(812_854_800, 1), (828_234_000, 0)],
            &ams_types,
            "CET-1CEST,M3.5.0,M10.5.0/3",
        );
        assert_eq!(tzif_abbreviation(&slim, SUMMER).as_deref(), Some("CEST"));
        assert_eq!(tzif_abbreviation(&slim, WINTER).as_deref(), Some("CET"));
        // Fat, version 1 only: the last transition before now decides.
        let fat = tzif(0, &[(1_711_846_800, 1), (1_729_994_400, 0)], &ams_types, "");
        assert_eq!(tzif_abbreviation(&fat, SUMMER).as_deref(), Some("CEST"));
        // Before the first transition: type 0.
        assert_eq!(tzif_abbreviation(&fat, WINTER).as_deref(), Some("CET"));
        let utc = tzif(b'2', &[], &[(0, false, "UTC")], "UTC0");
        assert_eq!(tzif_abbreviation(&utc, WINTER).as_deref(), Some("UTC"));
        assert_eq!(tzif_abbreviation(b"not a tzif", WINTER), None);
        assert_eq!(tzif_abbreviation(&slim[..60], WINTER), None);
    }

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(civil_year(19_783), 2024);
        assert_eq!(civil_year(-1), 1969);
        // Last Sunday of March 2024 is the 31st; second Sunday the 10th.
        assert_eq!(Date::Month(3, 5, 0).day(2024), days_from_civil(2024, 3, 31));
        assert_eq!(Date::Month(3, 2, 0).day(2024), days_from_civil(2024, 3, 10));
        assert_eq!(Date::Julian(60).day(2024), days_from_civil(2024, 3, 1));
        assert_eq!(Date::Zero(59).day(2024), days_from_civil(2024, 2, 29));
    }
}

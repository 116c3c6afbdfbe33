//! `--batch N|N%`: how many nodes run at once, as a sliding window (Salt's
//! batch mode: a new node starts as soon as one finishes).

/// The window for `spec` over `matched` nodes; `None` when `spec` is empty
/// (all at once).
pub fn window(spec: &str, matched: usize) -> Result<usize, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(matched.max(1));
    }
    let bad = || {
        format!(
            "invalid batch {spec:?}: expected a number of nodes (\"2\") or a percentage (\"25%\")"
        )
    };
    if let Some(pct) = spec.strip_suffix('%') {
        let p: f64 = pct.trim().parse().map_err(|_| bad())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!(
                "invalid batch {spec:?}: a percentage must be above 0 and at most 100"
            ));
        }
        Ok(((matched as f64 * p / 100.0).ceil() as usize).max(1))
    } else {
        let n: usize = spec.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!(
                "invalid batch {spec:?}: at least one node must run"
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn windows() {
        let cases: &[(&str, usize, usize)] = &[
            ("", 7, 7),
            ("1", 7, 1),
            ("10", 7, 10),
            ("25%", 7, 2),
            ("100%", 7, 7),
            ("1%", 7, 1),
            (" 50% ", 4, 2),
        ];
        for (spec, matched, want) in cases {
            assert_eq!(window(spec, *matched), Ok(*want), "{spec:?} of {matched}");
        }
    }

    #[test]
    fn bad_batches_say_why() {
        for (spec, why) in [
            ("0", "at least one"),
            ("x", "expected a number"),
            ("0%", "above 0"),
            ("150%", "at most 100"),
            ("-1", "expected"),
        ] {
            let err = window(spec, 5).unwrap_err();
            assert!(err.contains(why), "{spec}: {err}");
        }
    }
}

//! Prometheus's two text formats. Metrics are encoded as OpenMetrics (the
//! `prometheus-client` crate); a client that does not ask for it (curl,
//! `promtool check metrics`) gets Prometheus's 0.0.4 text, in which a
//! counter's family is named with its `_total` and there are no `# UNIT`
//! or `# EOF` lines.

/// OpenMetrics' content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus's text format's.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` asks for OpenMetrics (Prometheus does).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// What to answer a scrape with: the content type and the body, the
/// exposition as it is or in the 0.0.4 text, by the request's `Accept`.
pub fn negotiate(accept: Option<&str>, openmetrics: String) -> (&'static str, String) {
    if wants_openmetrics(accept) {
        (OPENMETRICS, openmetrics)
    } else {
        (TEXT, classic_text(&openmetrics))
    }
}

/// The 0.0.4 text of an OpenMetrics exposition.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_their_total_and_units_and_eof_go() {
        let open = "# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n\
                    # HELP drains Nodes taken out.\n# TYPE drains counter\ndrains_total{kind=\"drain\"} 2\n\
                    # HELP age How long ago.\n# TYPE age_seconds gauge\n# UNIT age_seconds seconds\nage_seconds 1.5\n# EOF\n";
        assert_eq!(
            classic_text(open),
            "# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n\
             # HELP drains_total Nodes taken out.\n# TYPE drains_total counter\ndrains_total{kind=\"drain\"} 2\n\
             # HELP age How long ago.\n# TYPE age_seconds gauge\nage_seconds 1.5\n"
        );
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")) && !wants_openmetrics(None));
    }
}

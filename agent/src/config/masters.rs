//! `master`: the masters an agent may talk to. One URL, several separated
//! by commas (the form `--master` and `CLUSTERCTL_MASTER` take), or, in
//! the file, an array of either. Every entry becomes `https://` and must
//! name a host; an empty entry or one listed twice is a problem of its own.

use cluster_model::config::Problems;
use serde::{Deserialize, Deserializer, Serialize};

/// `master` as written: each item is one URL or a comma-separated list.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MasterList(pub Vec<String>);

impl From<String> for MasterList {
    fn from(s: String) -> MasterList {
        MasterList(vec![s])
    }
}

impl<'de> Deserialize<'de> for MasterList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MasterList, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MasterList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a URL such as \"https://10.0.0.1:7440\", several separated by commas, or an array of them",
                )
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MasterList, E> {
                Ok(MasterList(vec![s.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<MasterList, A::Error> {
                let mut items = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    items.push(s);
                }
                Ok(MasterList(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The master is always reached over TLS: a bare `host:port` or an
/// `http://` URL becomes `https://`.
pub fn https(master: &str) -> String {
    match master.split_once("://") {
        Some((_, rest)) => format!("https://{rest}"),
        None => format!("https://{master}"),
    }
}

/// The masters, in the order written, each `https://`; every problem goes
/// to `p`, naming the entry.
pub fn masters(raw: MasterList, p: &mut Problems) -> Vec<String> {
    let entries: Vec<&str> = raw.0.iter().flat_map(|s| s.split(',')).collect();
    if entries.is_empty() {
        p.push("master = []: give at least one URL such as \"https://10.0.0.1:7440\"");
    }
    let mut out: Vec<String> = Vec::new();
    let numbered = entries.len() > 1;
    for (i, entry) in entries.iter().enumerate() {
        let entry = entry.trim();
        let which = if numbered {
            format!("master entry {} of {}", i + 1, entries.len())
        } else {
            "master".to_owned()
        };
        if entry.is_empty() {
            p.push(format!(
                "{which} is empty: give URLs such as \"https://10.0.0.1:7440\", separated by commas"
            ));
            continue;
        }
        let url = https(entry);
        if url
            .parse::<http::Uri>()
            .map(|u| u.host().is_none_or(str::is_empty))
            .unwrap_or(true)
        {
            p.push(format!(
                "{which} = {entry:?}: not a URL such as \"https://10.0.0.1:7440\""
            ));
            continue;
        }
        if out.contains(&url) {
            p.push(format!("{which} = {entry:?}: {url} is listed twice"));
            continue;
        }
        out.push(url);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masters read from `items`, or every problem.
    fn check(items: &[&str]) -> Result<Vec<String>, Vec<String>> {
        let mut p = Problems::default();
        let list = masters(
            MasterList(items.iter().map(|s| s.to_string()).collect()),
            &mut p,
        );
        p.finish("test", None, || Some(list)).map_err(|e| match e {
            cluster_model::config::ConfigError::Invalid { problems, .. } => problems,
            other => vec![other.to_string()],
        })
    }

    #[test]
    fn one_url_a_comma_separated_list_or_an_array() {
        let ok = |items: &[&str], want: &[&str]| assert_eq!(check(items).unwrap(), want);
        ok(&["10.0.0.1:7440"], &["https://10.0.0.1:7440"]);
        ok(&["http://m:1"], &["https://m:1"]);
        ok(
            &["https://a:7440, b:7440 ,https://c:7440"],
            &["https://a:7440", "https://b:7440", "https://c:7440"],
        );
        ok(
            &["https://a:7440", "b:7440,c:7440"],
            &["https://a:7440", "https://b:7440", "https://c:7440"],
        );
        ok(&["https://[::1]:7440"], &["https://[::1]:7440"]);
    }

    #[test]
    fn every_bad_entry_is_named() {
        assert_eq!(
            check(&["https://a:7440,,not a url,a:7440"]).unwrap_err(),
            [
                "master entry 2 of 4 is empty: give URLs such as \"https://10.0.0.1:7440\", separated by commas",
                "master entry 3 of 4 = \"not a url\": not a URL such as \"https://10.0.0.1:7440\"",
                "master entry 4 of 4 = \"a:7440\": https://a:7440 is listed twice",
            ]
        );
        assert_eq!(
            check(&[""]).unwrap_err(),
            ["master is empty: give URLs such as \"https://10.0.0.1:7440\", separated by commas"]
        );
        assert_eq!(
            check(&[]).unwrap_err(),
            ["master = []: give at least one URL such as \"https://10.0.0.1:7440\""]
        );
        assert_eq!(
            check(&["https://"]).unwrap_err(),
            ["master = \"https://\": not a URL such as \"https://10.0.0.1:7440\""]
        );
    }

    #[test]
    fn the_file_may_hold_a_string_or_an_array() {
        #[derive(Deserialize)]
        struct File {
            master: MasterList,
        }
        let read = |text: &str| toml::from_str::<File>(text).map(|f| f.master.0);
        assert_eq!(read("master = \"a:1,b:1\"").unwrap(), ["a:1,b:1"]);
        assert_eq!(read("master = [\"a:1\", \"b:1\"]").unwrap(), ["a:1", "b:1"]);
        let err = read("master = 7440").unwrap_err().to_string();
        assert!(err.contains("several separated by commas"), "{err}");
    }
}

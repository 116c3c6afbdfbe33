//! The `[notify]` table of the master's configuration: where alerts are
//! delivered. [`RawNotify`] is what the file says (every key optional,
//! unknown keys refused); [`NotifyConfig::validate`] checks it in the
//! master's [`Problems`] style, each problem named by its key
//! (`notify.email.to`, `notify.webhook[1].url`). Defaults live in
//! [`NotifyConfig::DEFAULTS`] only. Nothing here reads a file: the
//! password file is read when delivery starts.

use cluster_model::config::{Problems, parse_duration};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What the file says under `[notify]`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// `[[notify.alertmanager]]`: each gets every alert.
    pub alertmanager: Option<Vec<RawUrl>>,
    /// `[notify.email]`: one mail per change of state.
    pub email: Option<RawEmail>,
    /// `[[notify.webhook]]`: one POST per change of state.
    pub webhook: Option<Vec<RawUrl>>,
    /// How often the firing alerts are sent to Alertmanager again.
    pub resend: Option<String>,
    /// Notices waiting per destination; past it the oldest is dropped.
    pub queue: Option<usize>,
    /// A notice not delivered for this long is given up.
    pub give_up_after: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrl {
    pub url: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub server: Option<String>,
    pub port: Option<u16>,
    /// `"starttls"` (the default), `"tls"` or `"none"`.
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    /// PEM certificates trusted for the server besides the usual roots.
    pub ca_file: Option<PathBuf>,
}

/// Where alerts go, validated. Empty (the default) delivers nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// Base URLs (`http://host:9093`); alerts are posted to `/api/v2/alerts`.
    pub alertmanagers: Vec<reqwest::Url>,
    pub email: Option<EmailConfig>,
    pub webhooks: Vec<reqwest::Url>,
    /// Alertmanager forgets a firing alert not sent again within its
    /// `endsAt` (4 × this), as it does with Prometheus's.
    pub resend: Duration,
    /// Notices waiting per destination.
    pub queue: usize,
    /// A notice that could not be delivered for this long is given up
    /// (and reported).
    pub give_up_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub server: String,
    pub port: u16,
    pub tls: EmailTls,
    /// With a username the client authenticates; its password is read
    /// from `password_file` when delivery starts.
    pub auth: Option<EmailAuth>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailAuth {
    pub username: String,
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which must be offered.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption at all (a relay on the same host).
    None,
}

impl EmailTls {
    /// The port each mode is usually served on.
    pub fn default_port(self) -> u16 {
        match self {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
            EmailTls::None => 25,
        }
    }
}

pub struct NotifyDefaults {
    pub resend: &'static str,
    pub queue: usize,
    pub give_up_after: &'static str,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        let d = NotifyConfig::DEFAULTS;
        NotifyConfig {
            alertmanagers: Vec::new(),
            email: None,
            webhooks: Vec::new(),
            resend: humantime::parse_duration(d.resend).expect("the default resend parses"),
            queue: d.queue,
            give_up_after: humantime::parse_duration(d.give_up_after)
                .expect("the default give_up_after parses"),
        }
    }
}

impl NotifyConfig {
    pub const DEFAULTS: NotifyDefaults = NotifyDefaults {
        resend: "1m",
        queue: 1000,
        give_up_after: "1h",
    };

    /// No destination configured.
    pub fn is_empty(&self) -> bool {
        self.alertmanagers.is_empty() && self.email.is_none() && self.webhooks.is_empty()
    }

    /// The validated form of `[notify]` (the default when absent), or
    /// `None` with every problem pushed onto `problems`.
    pub fn validate(raw: Option<RawNotify>, problems: &mut Problems) -> Option<NotifyConfig> {
        let Some(raw) = raw else {
            return Some(NotifyConfig::default());
        };
        let d = NotifyConfig::DEFAULTS;
        let at_least = |key: &str, value: &str, least: Duration| {
            parse_duration(key, value).and_then(|v| {
                if v < least {
                    Err(format!("{key} = {value:?}: must be at least {least:?}"))
                } else {
                    Ok(v)
                }
            })
        };
        let resend = problems.check(at_least(
            "notify.resend",
            raw.resend.as_deref().unwrap_or(d.resend),
            Duration::from_secs(1),
        ));
        let give_up_after = problems.check(at_least(
            "notify.give_up_after",
            raw.give_up_after.as_deref().unwrap_or(d.give_up_after),
            Duration::from_secs(1),
        ));
        let queue = raw.queue.unwrap_or(d.queue);
        let queue = problems.check(if queue == 0 {
            Err("notify.queue = 0: must be at least 1".to_owned())
        } else {
            Ok(queue)
        });
        let alertmanagers = urls("notify.alertmanager", raw.alertmanager, problems);
        let webhooks = urls("notify.webhook", raw.webhook, problems);
        let email = match raw.email {
            None => Some(None),
            Some(e) => email(e, problems).map(Some),
        };
        Some(NotifyConfig {
            alertmanagers: alertmanagers?,
            email: email?,
            webhooks: webhooks?,
            resend: resend?,
            queue: queue?,
            give_up_after: give_up_after?,
        })
    }
}

/// Every entry's URL, or `None` when one is missing or wrong.
fn urls(key: &str, raw: Option<Vec<RawUrl>>, problems: &mut Problems) -> Option<Vec<reqwest::Url>> {
    let mut out = Some(Vec::new());
    for (i, r) in raw.unwrap_or_default().into_iter().enumerate() {
        let key = format!("{key}[{i}].url");
        let url = match r.url.as_deref() {
            None | Some("") => {
                problems.push(format!("{key} is missing"));
                None
            }
            Some(u) => problems.check(parse_url(&key, u)),
        };
        out = out.zip(url).map(|(mut v, u)| {
            v.push(u);
            v
        });
    }
    out
}

fn parse_url(key: &str, value: &str) -> Result<reqwest::Url, String> {
    let bad = |why: &str| {
        format!("{key} = {value:?}: {why}; expected a URL such as \"http://127.0.0.1:9093\"")
    };
    let url = reqwest::Url::parse(value.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(url)
}

fn email(raw: RawEmail, problems: &mut Problems) -> Option<EmailConfig> {
    let mut ok = true;
    let mut problem = |p: String| {
        ok = false;
        problems.push(p);
    };
    let tls = match raw.tls.as_deref().unwrap_or("starttls") {
        "starttls" => EmailTls::Starttls,
        "tls" => EmailTls::Tls,
        "none" => EmailTls::None,
        other => {
            problem(format!(
                "notify.email.tls = {other:?}: expected \"starttls\", \"tls\" or \"none\""
            ));
            EmailTls::Starttls
        }
    };
    let server = raw.server.unwrap_or_default();
    if server.trim().is_empty() {
        problem("notify.email.server is missing (such as \"smtp.example.com\")".into());
    }
    if raw.port == Some(0) {
        problem("notify.email.port = 0: not a port".into());
    }
    let auth = match (raw.username.filter(|u| !u.is_empty()), raw.password_file) {
        (Some(username), Some(password_file)) => Some(EmailAuth {
            username,
            password_file,
        }),
        (None, None) => None,
        (Some(_), None) => {
            problem("notify.email.username is set without password_file".into());
            None
        }
        (None, Some(_)) => {
            problem("notify.email.password_file is set without username".into());
            None
        }
    };
    let mailbox = |key: &str, value: &str| -> Result<Mailbox, String> {
        value.trim().parse::<Mailbox>().map_err(|e| {
            format!("{key} = {value:?}: not a mail address such as \"ops@example.com\" ({e})")
        })
    };
    let from = match raw.from.as_deref() {
        None | Some("") => {
            problem(
                "notify.email.from is missing (such as \"clusterctl <alerts@example.com>\")".into(),
            );
            None
        }
        Some(f) => mailbox("notify.email.from", f).map_err(&mut problem).ok(),
    };
    let to_raw = raw.to.unwrap_or_default();
    if to_raw.is_empty() {
        problem("notify.email.to is empty: name at least one address".into());
    }
    let mut to = Vec::new();
    for (i, t) in to_raw.iter().enumerate() {
        if let Ok(m) = mailbox(&format!("notify.email.to[{i}]"), t).map_err(&mut problem) {
            to.push(m);
        }
    }
    let config = EmailConfig {
        port: raw.port.unwrap_or(tls.default_port()),
        server: server.trim().to_owned(),
        tls,
        auth,
        from: from?,
        to,
        ca_file: raw.ca_file,
    };
    ok.then_some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<NotifyConfig, Vec<String>> {
        #[derive(Deserialize)]
        struct File {
            notify: Option<RawNotify>,
        }
        let file: File = toml::from_str(text).expect("TOML parses");
        let mut problems = Problems::default();
        let config = NotifyConfig::validate(file.notify, &mut problems);
        match problems.finish("configuration", None, || config) {
            Ok(c) => Ok(c),
            Err(cluster_model::config::ConfigError::Invalid { problems, .. }) => Err(problems),
            Err(e) => panic!("{e}"),
        }
    }

    fn problems(text: &str) -> Vec<String> {
        check(text).expect_err("refused")
    }

    #[test]
    fn no_table_delivers_nothing() {
        let c = check("").unwrap();
        assert!(c.is_empty());
        assert_eq!(c.resend, Duration::from_secs(60));
        assert_eq!(c.give_up_after, Duration::from_secs(3600));
    }

    #[test]
    fn a_full_table_is_read() {
        let c = check(
            r#"
[notify]
resend = "30s"
queue = 10
[[notify.alertmanager]]
url = "http://127.0.0.1:9093"
[[notify.alertmanager]]
url = "https://am.example.com/prefix"
[[notify.webhook]]
url = "https://hooks.example.com/x"
[notify.email]
server = "smtp.example.com"
tls = "tls"
username = "alerts"
password_file = "/etc/clusterctl/smtp"
from = "clusterctl <alerts@example.com>"
to = ["ops@example.com", "Pager <pager@example.com>"]
"#,
        )
        .unwrap();
        assert_eq!(c.alertmanagers.len(), 2);
        assert_eq!(c.webhooks[0].as_str(), "https://hooks.example.com/x");
        assert_eq!(c.resend, Duration::from_secs(30));
        assert_eq!(c.queue, 10);
        let e = c.email.unwrap();
        assert_eq!((e.tls, e.port), (EmailTls::Tls, 465));
        assert_eq!(e.auth.unwrap().username, "alerts");
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.from.email.to_string(), "alerts@example.com");
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let p = problems(
            r#"
[notify]
resend = "10ms"
queue = 0
give_up_after = "later"
[[notify.alertmanager]]
url = "ftp://x"
[[notify.alertmanager]]
[[notify.webhook]]
url = "not a url"
[notify.email]
tls = "ssl"
username = "alerts"
from = "nobody"
to = ["ok@example.com", "broken"]
"#,
        );
        let expect = [
            "notify.resend = \"10ms\": must be at least 1s",
            "notify.give_up_after = \"later\": not a duration",
            "notify.queue = 0: must be at least 1",
            "notify.alertmanager[0].url = \"ftp://x\": not http or https",
            "notify.alertmanager[1].url is missing",
            "notify.webhook[0].url = \"not a url\"",
            "notify.email.tls = \"ssl\": expected",
            "notify.email.server is missing",
            "notify.email.username is set without password_file",
            "notify.email.from = \"nobody\": not a mail address",
            "notify.email.to[1] = \"broken\": not a mail address",
        ];
        for e in expect {
            assert!(p.iter().any(|p| p.starts_with(e)), "{e:?} not in {p:#?}");
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn an_email_needs_somebody_to_write_to() {
        let p = problems(
            r#"
[notify.email]
server = "smtp.example.com"
from = "alerts@example.com"
password_file = "/x"
"#,
        );
        assert_eq!(
            p,
            [
                "notify.email.password_file is set without username",
                "notify.email.to is empty: name at least one address"
            ]
        );
    }

    #[test]
    fn ports_follow_the_tls_mode() {
        for (tls, port) in [("starttls", 587), ("none", 25)] {
            let c = check(&format!(
                "[notify.email]\nserver = \"s\"\ntls = \"{tls}\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n"
            ))
            .unwrap();
            assert_eq!(c.email.unwrap().port, port);
        }
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("### Alert delivery").expect("the section")..];
        let start = section.find("```toml\n").expect("a TOML block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").unwrap()];
        let c = check(block).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(c.alertmanagers.len(), 1);
        assert_eq!(c.webhooks.len(), 1);
        assert_eq!(c.email.unwrap().port, 587);
    }
}

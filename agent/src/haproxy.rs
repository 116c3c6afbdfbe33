//! HAProxy's stats socket: which servers it has, in what state, with how
//! many connections — what tells the agent that a drained server is idle.
//!
//! [`servers`] sends `show stat` and parses the CSV by column name (the
//! header line, `# pxname,svname,…`), keeping servers only (not the
//! FRONTEND and BACKEND rows); quoted fields are read as CSV quotes them.
//! [`watch()`] polls it and publishes only changes; [`command`] sends any
//! command line.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long one exchange with the socket may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// More than `show stat` says about thousands of servers.
const ANSWER_MAX: usize = 64 << 20;

/// One server of one backend, as `show stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    /// `pxname`.
    pub backend: String,
    /// `svname`.
    pub server: String,
    /// `addr`, `ip:port`.
    pub addr: Option<String>,
    /// "UP", "UP 1/3" (going down), "DOWN", "DOWN (agent)", "DRAIN",
    /// "DRAIN (agent)", "MAINT", "MAINT (via be/s)", "NOLB", "no check"…
    pub status: String,
    /// Current sessions.
    pub scur: u64,
    /// Effective weight.
    pub weight: u64,
    /// The health check's last result ("L4OK", "L7STS"…), without the "* "
    /// HAProxy puts in front while a check runs.
    pub check_status: Option<String>,
}

impl ServerStat {
    /// Whether HAProxy sends it new traffic: UP (even going down) or
    /// unchecked, with a weight.
    pub fn in_rotation(&self) -> bool {
        let up = self.status == "UP" || self.status.starts_with("UP ") || self.status == "no check";
        up && self.weight > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("HAProxy stats socket {}: no such file (is HAProxy running, with a `stats socket` line in its global section?)", .socket.display())]
    NotFound { socket: PathBuf },
    #[error("HAProxy stats socket {}: permission denied (let the agent's user read and write it: `stats socket … mode 660 group …`)", .socket.display())]
    PermissionDenied { socket: PathBuf },
    #[error("HAProxy stats socket {}: not a socket", .socket.display())]
    NotASocket { socket: PathBuf },
    #[error("HAProxy stats socket {}: nothing listens on it (HAProxy stopped?)", .socket.display())]
    NotListening { socket: PathBuf },
    #[error("HAProxy stats socket {}: cannot connect: {source}", .socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("HAProxy stats socket {}: {source}", .socket.display())]
    Exchange {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("HAProxy stats socket {}: no complete answer within {}", .socket.display(), humantime::format_duration(*.after))]
    Timeout { socket: PathBuf, after: Duration },
    #[error("{}: not a HAProxy stats socket? `show stat` was answered with {answer:?}", .socket.display())]
    NotHaproxy { socket: PathBuf, answer: String },
    #[error("HAProxy stats socket {}: unexpected `show stat` output: {reason}", .socket.display())]
    Unexpected { socket: PathBuf, reason: String },
}

/// Sends `line` and returns everything HAProxy answers, until it closes.
pub async fn command(socket: &Path, line: &str) -> Result<String, HaproxyError> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await.map_err(|source| {
            let socket = socket.to_owned();
            match source.kind() {
                std::io::ErrorKind::NotFound => HaproxyError::NotFound { socket },
                std::io::ErrorKind::PermissionDenied => HaproxyError::PermissionDenied { socket },
                std::io::ErrorKind::ConnectionRefused => match std::fs::metadata(&socket) {
                    Ok(m) if !m.file_type().is_socket() => HaproxyError::NotASocket { socket },
                    _ => HaproxyError::NotListening { socket },
                },
                _ => HaproxyError::Connect { socket, source },
            }
        })?;
        let exchange_error = |source| HaproxyError::Exchange {
            socket: socket.to_owned(),
            source,
        };
        stream
            .write_all(format!("{}\n", line.trim_end()).as_bytes())
            .await
            .map_err(exchange_error)?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(ANSWER_MAX as u64)
            .read_to_end(&mut answer)
            .await
            .map_err(exchange_error)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(HaproxyError::Timeout {
                socket: socket.to_owned(),
                after: EXCHANGE_TIMEOUT,
            })
        })
}

/// Every server of every backend, in HAProxy's order.
pub async fn servers(socket: &Path) -> Result<Vec<ServerStat>, HaproxyError> {
    let answer = command(socket, "show stat").await?;
    parse(&answer).map_err(|problem| match problem {
        Problem::NotStat(answer) => HaproxyError::NotHaproxy {
            socket: socket.to_owned(),
            answer,
        },
        Problem::Unexpected(reason) => HaproxyError::Unexpected {
            socket: socket.to_owned(),
            reason,
        },
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Problem {
    /// Not `show stat` output at all: its first line.
    NotStat(String),
    Unexpected(String),
}

/// One CSV line's fields; `"a,""b"""` is `a,"b"`.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut was_quoted) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() && !was_quoted => (quoted, was_quoted) = (true, true),
            ',' if !quoted => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

fn parse(text: &str) -> Result<Vec<ServerStat>, Problem> {
    let mut lines = text.lines().enumerate();
    let first = lines.next().map(|(_, l)| l).unwrap_or_default();
    let Some(header) = first
        .strip_prefix("# ")
        .filter(|h| h.starts_with("pxname,"))
    else {
        let mut answer: String = first.chars().take(100).collect();
        if answer.is_empty() {
            answer = text.chars().take(100).collect();
        }
        return Err(Problem::NotStat(answer));
    };
    let header = fields(header);
    let column = |name: &str| header.iter().position(|h| h == name);
    let required = |name: &str| {
        column(name).ok_or_else(|| Problem::Unexpected(format!("no {name:?} column in the header")))
    };
    let (pxname, svname, scur, status, weight) = (
        required("pxname")?,
        required("svname")?,
        required("scur")?,
        required("status")?,
        required("weight")?,
    );
    let (addr, check_status) = (column("addr"), column("check_status"));
    let needed = [pxname, svname, scur, status, weight]
        .into_iter()
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = Vec::new();
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let row = fields(line);
        let at = |c: usize| row.get(c).map(String::as_str).unwrap_or_default();
        if row.len() < needed {
            return Err(Problem::Unexpected(format!(
                "line {}: {} fields where the header names {}",
                i + 1,
                row.len(),
                header.len()
            )));
        }
        if matches!(at(svname), "FRONTEND" | "BACKEND") {
            continue;
        }
        let number = |c: usize, name: &str| match at(c) {
            "" => Ok(0),
            n => n.parse::<u64>().map_err(|_| {
                Problem::Unexpected(format!("line {}: {name} {n:?} is not a number", i + 1))
            }),
        };
        let optional = |c: Option<usize>| {
            c.map(at)
                .map(|v| v.trim_start_matches("* "))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        out.push(ServerStat {
            backend: at(pxname).to_owned(),
            server: at(svname).to_owned(),
            addr: optional(addr),
            status: at(status).to_owned(),
            scur: number(scur, "scur")?,
            weight: number(weight, "weight")?,
            check_status: optional(check_status),
        });
    }
    Ok(out)
}

/// Polls `socket` every `every` until `shutdown`, sending on `tx` when the
/// list differs from the last one sent. A failure leaves the last list in
/// place and is logged once until it changes or the socket answers again.
pub fn watch(
    socket: PathBuf,
    every: Duration,
    tx: watch::Sender<Vec<ServerStat>>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => tokio::select! {
                    _ = shutdown.cancelled() => return,
                    read = servers(&socket) => read,
                },
            };
            match read {
                Ok(list) => {
                    if failing.take().is_some() {
                        tracing::info!(socket = %socket.display(), "HAProxy's stats are readable again");
                    }
                    tx.send_if_modified(|current| {
                        let changed = *current != list;
                        if changed {
                            *current = list;
                        }
                        changed
                    });
                }
                Err(e) => {
                    let text = e.to_string();
                    if failing.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, "cannot read HAProxy's stats");
                        failing = Some(text);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show stat` from HAProxy 2.6.12, captured: a frontend holding a slow
    /// request (`held/slow-1` has `scur` 1), and servers in every state —
    /// drained by the agent (web-1) and by the CLI (web-2), in maintenance
    /// itself (web-3) and through the server it tracks (web-5), down
    /// (web-4, refused), weight 0 (web-6), unchecked (web-7), and down by
    /// the agent with a reason holding a comma and quotes (web-8), which
    /// HAProxy quotes in the CSV.
    const SHOW_STAT: &str = r##"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
web,FRONTEND,,,0,0,9980,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
slow,FRONTEND,,,1,1,9980,1,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,3,0,,,,0,1,0,1,,,,0,0,0,0,0,0,,1,1,1,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,1,1,1,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,79,0,0,0,
app,web-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN (agent),100,1,0,0,0,2,0,,1,4,1,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,via agent : up,0,0,0,0,L7OK,0,0,Layer4 check passed,Layer7 check passed,2,3,4,1,1,1,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,100,1,0,0,0,1,0,,1,4,2,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,100,1,0,0,1,1,1,,1,4,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-4,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,100,1,0,1,1,2,2,,1,4,4,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:1,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-5,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (via app/web-3),100,1,0,,,1,,,1,4,5,,0,app/web-3,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-6,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,0,1,0,0,0,2,0,,1,4,6,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-7,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,2,,,1,4,7,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,web-8,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN (agent),100,1,0,0,1,2,2,,1,4,8,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,"via agent : down (app: GET http://127.0.0.1:8080/ping: 500 Internal Server Error, ""oops"")",0,0,0,0,L7STS,0,0,Layer4 check passed,Layer7 wrong status,2,3,4,1,1,0,127.0.0.1:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,2,0,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
held,slow-1,0,0,1,1,,1,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,5,1,,1,,2,1,,1,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.2:18082,,http,,,,,,,,0,1,0,,,0,,0,0,0,0,0,0,0,1,2,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
held,BACKEND,0,0,1,1,998,1,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,2,0,,1,5,0,,1,,1,1,,1,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,1,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,0,79,0,0,

"##;

    fn server(
        backend: &str,
        server: &str,
        addr: &str,
        status: &str,
        scur: u64,
        weight: u64,
        check: &str,
    ) -> ServerStat {
        ServerStat {
            backend: backend.into(),
            server: server.into(),
            addr: (!addr.is_empty()).then(|| addr.into()),
            status: status.into(),
            scur,
            weight,
            check_status: (!check.is_empty()).then(|| check.into()),
        }
    }

    #[test]
    fn a_real_show_stat_is_read_by_column_name() {
        let a = "127.0.0.1:18081";
        assert_eq!(
            parse(SHOW_STAT).unwrap(),
            vec![
                server("app", "web-1", a, "DRAIN (agent)", 0, 100, "L4OK"),
                server("app", "web-2", a, "DRAIN", 0, 100, "L4OK"),
                server("app", "web-3", a, "MAINT", 0, 100, ""),
                server("app", "web-4", "127.0.0.1:1", "DOWN", 0, 100, "L4CON"),
                server("app", "web-5", a, "MAINT (via app/web-3)", 0, 100, ""),
                server("app", "web-6", a, "UP", 0, 0, "L4OK"),
                server("app", "web-7", a, "no check", 0, 1, ""),
                server("app", "web-8", a, "DOWN (agent)", 0, 100, "L4OK"),
                server("held", "slow-1", "127.0.0.2:18082", "UP", 1, 1, "L4OK"),
            ]
        );
    }

    #[test]
    fn quoted_fields() {
        for (line, want) in [
            ("a,b,,c,", &["a", "b", "", "c", ""][..]),
            (r#"a,"b, ""c""",d"#, &["a", r#"b, "c""#, "d"]),
            (r#""",x"#, &["", "x"]),
        ] {
            assert_eq!(fields(line), want, "{line}");
        }
    }

    #[test]
    fn in_rotation_only_up_and_weighted() {
        for (status, weight, want) in [
            ("UP", 1, true),
            ("UP 1/3", 1, true),
            ("no check", 1, true),
            ("UP", 0, false),
            ("no check", 0, false),
            ("DRAIN", 1, false),
            ("DRAIN (agent)", 1, false),
            ("DRAIN 1/2", 1, false),
            ("MAINT", 1, false),
            ("MAINT (via app/web-3)", 1, false),
            ("MAINT (resolution)", 1, false),
            ("DOWN", 1, false),
            ("DOWN (agent)", 1, false),
            ("DOWN 1/2", 1, false),
            ("NOLB", 1, false),
            ("NOLB 1/2", 1, false),
        ] {
            let s = server("b", "s", "", status, 0, weight, "");
            assert_eq!(s.in_rotation(), want, "{status} weight {weight}");
        }
    }

    #[test]
    fn other_answers_are_precise_errors() {
        assert_eq!(
            parse("Unknown command: 'show'\n"),
            Err(Problem::NotStat("Unknown command: 'show'".into()))
        );
        assert_eq!(parse(""), Err(Problem::NotStat("".into())));
        assert_eq!(
            parse("# pxname,svname,status\n"),
            Err(Problem::Unexpected(
                "no \"scur\" column in the header".into()
            ))
        );
        assert_eq!(
            parse("# pxname,svname,scur,status,weight\nbe,s1,x,UP,1\n"),
            Err(Problem::Unexpected(
                "line 2: scur \"x\" is not a number".into()
            ))
        );
        assert_eq!(
            parse("# pxname,svname,scur,status,weight\nbe,s1\n"),
            Err(Problem::Unexpected(
                "line 2: 2 fields where the header names 5".into()
            ))
        );
        // Without the optional columns.
        assert_eq!(
            parse("# pxname,svname,scur,status,weight\nbe,s1,2,UP,3\nbe,BACKEND,2,UP,3\n"),
            Ok(vec![server("be", "s1", "", "UP", 2, 3, "")])
        );
    }

    /// A UNIX socket answering every connection with the current `answer`;
    /// `served` counts the answers given.
    fn fake(path: &Path, answer: watch::Receiver<String>) -> watch::Receiver<usize> {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let (served_tx, served) = watch::channel(0);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
                let text = answer.borrow().clone();
                let _ = s.write_all(text.as_bytes()).await;
                drop(s);
                served_tx.send_modify(|n| *n += 1);
            }
        });
        served
    }

    #[tokio::test]
    async fn socket_errors_say_which_socket_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let err = servers(&missing).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "HAProxy stats socket {}: no such file",
                missing.display()
            )),
            "{err}"
        );

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = servers(&file).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("HAProxy stats socket {}: not a socket", file.display())
        );

        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = servers(&stale).await.unwrap_err().to_string();
        assert!(
            err.ends_with("nothing listens on it (HAProxy stopped?)"),
            "{err}"
        );

        let other = dir.path().join("other.sock");
        let (_answer, rx) = watch::channel("hello\n".to_string());
        fake(&other, rx);
        let err = servers(&other).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: not a HAProxy stats socket? `show stat` was answered with \"hello\"",
                other.display()
            )
        );
    }

    #[tokio::test]
    async fn watch_sends_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let (answer, rx) = watch::channel(SHOW_STAT.to_string());
        let mut served = fake(&path, rx);
        let (tx, mut seen) = watch::channel(Vec::new());
        let shutdown = CancellationToken::new();
        let task = watch(path, Duration::from_millis(5), tx, shutdown.clone());
        let patience = Duration::from_secs(10);
        tokio::time::timeout(patience, seen.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.borrow_and_update().len(), 9);
        // Polls that find the same list do not wake anyone.
        let after = *served.borrow_and_update();
        tokio::time::timeout(patience, served.wait_for(|n| *n >= after + 3))
            .await
            .unwrap()
            .unwrap();
        assert!(!seen.has_changed().unwrap());
        answer.send_replace(SHOW_STAT.replace("held,slow-1,0,0,1,", "held,slow-1,0,0,0,"));
        tokio::time::timeout(patience, seen.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.borrow().last().unwrap().scur, 0);
        // A failure keeps the last list.
        answer.send_replace("oops\n".into());
        let after = *served.borrow_and_update();
        tokio::time::timeout(patience, served.wait_for(|n| *n >= after + 3))
            .await
            .unwrap()
            .unwrap();
        assert!(!seen.has_changed().unwrap());
        assert_eq!(seen.borrow().len(), 9);
        shutdown.cancel();
        tokio::time::timeout(patience, task).await.unwrap().unwrap();
    }
}

//! The interactive `top`: the terminal in raw mode on the alternate
//! screen, restored on every way out — `q`, Esc, Ctrl-C, an error, and a
//! panic (ratatui's hook restores it before the message is printed).
//!
//! Three things run at once: a thread reading keys (crossterm's reads
//! block), the fetcher — `ListNodes` every interval, and at once for a
//! target typed at `/`, evaluated by the master — and the loop that
//! draws. A master that cannot be reached is a status line; the fetcher
//! keeps trying at every interval.

use super::app::{Action, App};
use super::rows::{self, COLUMN_LEVELS, COLUMNS, Row};
use crate::Failure;
use crate::client::{Client, NodeView, Patience, Targeting};
use cluster_model::TargetSpec;
use cluster_model::alerts::Level;
use crossterm::event::{self, Event, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Table};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one fetch waits for a master before the screen says so.
const FETCH_PATIENCE: Duration = Duration::from_secs(3);

/// glances' colours.
fn colour(l: Level) -> Color {
    match l {
        Level::Ok => Color::Green,
        Level::Careful => Color::Blue,
        Level::Warning => Color::Magenta,
        Level::Critical => Color::Red,
    }
}

fn state_colour(state: &str) -> Color {
    match state {
        "online" => Color::Green,
        "drained" | "maintenance" => Color::Blue,
        "failing" => Color::Magenta,
        _ => Color::Red,
    }
}

/// What one fetch brought.
struct Fetched {
    nodes: Result<Vec<NodeView>, Failure>,
    master: String,
    /// The expression typed at `/`, when this fetch tried it.
    asked: Option<String>,
}

/// The terminal while `top` runs; restored when dropped.
struct Screen(ratatui::DefaultTerminal);

impl Screen {
    fn open() -> Result<Screen, Failure> {
        ratatui::try_init()
            .map(Screen)
            .map_err(|e| Failure::partial(format!("cannot set up the terminal: {e}")))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub async fn run(
    client: &mut Client,
    target: Targeting,
    label: String,
    interval: Duration,
) -> Result<(), Failure> {
    client.set_patience(Patience {
        give_up: FETCH_PATIENCE,
        ..crate::client::PATIENCE
    });
    let mut app = App::new(client.master().to_owned(), interval, label);
    let stop = Arc::new(AtomicBool::new(false));
    let (key_tx, mut keys) = mpsc::channel::<Event>(64);
    let mut screen = Screen::open()?;
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(false) => {}
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if key_tx.blocking_send(ev).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Err(_) => return,
                }
            }
        })
    };
    let (ask_tx, ask_rx) = mpsc::channel::<String>(4);
    let (got_tx, mut got) = mpsc::channel::<Fetched>(4);
    let fetcher = fetch(client, target, interval, ask_rx, got_tx);
    let ui = async {
        loop {
            screen
                .0
                .draw(|f| draw(f, &app))
                .map_err(|e| Failure::partial(format!("cannot draw: {e}")))?;
            tokio::select! {
                ev = keys.recv() => match ev {
                    Some(Event::Key(k)) if k.kind == KeyEventKind::Press => match app.key(k) {
                        Action::Quit => return Ok(()),
                        Action::Target(expr) => {
                            let _ = ask_tx.send(expr).await;
                        }
                        Action::Nothing => {}
                    },
                    Some(_) => {}
                    None => return Err(Failure::partial("the terminal's input ended")),
                },
                f = got.recv() => match f {
                    Some(f) => take(&mut app, f),
                    None => return Ok(()),
                },
            }
        }
    };
    let result = tokio::select! {
        r = ui => r,
        () = fetcher => Ok(()),
    };
    stop.store(true, Ordering::Relaxed);
    drop(screen);
    let _ = reader.join();
    result
}

/// A fetch's result onto the screen.
fn take(app: &mut App, f: Fetched) {
    app.master = f.master;
    match f.nodes {
        Ok(nodes) => {
            app.show(
                nodes
                    .iter()
                    .map(|n| Row::of(n, n.levels.clone().unwrap_or_default()))
                    .collect(),
            );
            app.status = None;
            if let Some(expr) = f.asked {
                app.target_label = expr;
            }
        }
        Err(e) => {
            let said = e
                .message
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            app.status = Some(match (&f.asked, e.code) {
                (Some(expr), Failure::BAD_INPUT) => format!("target {expr:?}: {said}"),
                (_, Failure::UNREACHABLE) => format!("cannot reach the master: {said}, retrying"),
                _ => said,
            });
        }
    }
}

/// `ListNodes` every `interval`, and at once for each expression asked.
async fn fetch(
    client: &mut Client,
    mut target: Targeting,
    interval: Duration,
    mut ask: mpsc::Receiver<String>,
    got: mpsc::Sender<Fetched>,
) {
    let mut next = tokio::time::Instant::now();
    loop {
        let (nodes, asked) = tokio::select! {
            () = tokio::time::sleep_until(next) => (client.nodes(&target).await, None),
            expr = ask.recv() => {
                let Some(expr) = expr else { return };
                let tried = match expr.as_str() {
                    "" => Targeting::All,
                    e => Targeting::Spec(TargetSpec::expr(
                        cluster_model::targets::Kind::Compound,
                        e,
                    )),
                };
                let nodes = client.nodes(&tried).await;
                if nodes.is_ok() {
                    target = tried;
                }
                (nodes, Some(expr))
            }
        };
        next = tokio::time::Instant::now() + interval;
        let f = Fetched {
            nodes,
            master: client.master().to_owned(),
            asked,
        };
        if got.send(f).await.is_err() {
            return;
        }
    }
}

fn draw(f: &mut ratatui::Frame, app: &App) {
    let [head, table, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let c = rows::counts(&app.rows);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let header = vec![
        Line::from(vec![
            Span::styled("clusterctl top", bold),
            Span::raw(format!(
                "  master {}  every {}  target {}",
                app.master,
                humantime::format_duration(app.interval),
                if app.target_label.is_empty() {
                    "all nodes"
                } else {
                    &app.target_label
                }
            )),
        ]),
        Line::from(vec![
            Span::raw(format!("nodes {}  ", c.total)),
            Span::styled(format!("up {}", c.up), Style::default().fg(Color::Green)),
            Span::raw("  "),
            Span::styled(
                format!("down {}", c.down),
                Style::default().fg(if c.down > 0 { Color::Red } else { Color::Reset }),
            ),
            Span::raw("  "),
            Span::styled(
                format!("drained {}", c.drained),
                Style::default().fg(if c.drained > 0 {
                    Color::Blue
                } else {
                    Color::Reset
                }),
            ),
            Span::raw(format!(
                "  sort {}{}",
                app.sort.as_str(),
                if app.reverse { " (reversed)" } else { "" }
            )),
        ]),
    ];
    f.render_widget(Paragraph::new(header), head);

    let body = app.rows.iter().map(|r| {
        let cells = rows::cells(r);
        ratatui::widgets::Row::new(cells.into_iter().enumerate().map(|(i, text)| {
            let style = match (i, COLUMN_LEVELS[i].and_then(|k| r.level(k))) {
                (2, _) => Style::default().fg(state_colour(r.state)),
                (_, Some(l)) => Style::default().fg(colour(l)),
                _ => Style::default(),
            };
            Cell::from(cluster_model::limits::printable(&text).into_owned()).style(style)
        }))
    });
    let widths = [
        Constraint::Min(16),
        Constraint::Length(14),
        Constraint::Length(11),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let table_widget = Table::new(body, widths)
        .header(ratatui::widgets::Row::new(COLUMNS.iter().map(|h| Cell::from(*h))).style(bold));
    f.render_widget(table_widget, table);

    let footer = match (&app.prompt, &app.status) {
        (Some(typed), _) => Line::from(format!("target: {typed}_")),
        (None, Some(status)) => Line::from(Span::styled(
            status.clone(),
            Style::default().fg(Color::Red),
        )),
        (None, None) => Line::from(
            "c cpu  m memory  l load  n network  d disk  a name  r reverse  / target  q quit",
        ),
    };
    f.render_widget(Paragraph::new(footer), foot);
}

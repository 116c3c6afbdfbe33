//! What the screen shows and how keys change it, pure: no terminal, no
//! network. The screen draws an [`App`]; a key gives an [`Action`] for
//! the loop to carry out.

use super::rows::{self, Row, Sort};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub struct App {
    /// As last fetched, in the order shown.
    pub rows: Vec<Row>,
    pub sort: Sort,
    pub reverse: bool,
    /// The target expression applied (`None`: every node, or the command
    /// line's own target, named in `target_label`).
    pub target_label: String,
    /// While `/` is open: what has been typed.
    pub prompt: Option<String>,
    /// The last problem: the master unreachable, a refused target.
    pub status: Option<String>,
    pub master: String,
    pub interval: std::time::Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Quit,
    /// Show the nodes this expression selects (empty: every node).
    Target(String),
}

impl App {
    pub fn new(master: String, interval: std::time::Duration, target_label: String) -> App {
        App {
            rows: Vec::new(),
            sort: Sort::Cpu,
            reverse: false,
            target_label,
            prompt: None,
            status: None,
            master,
            interval,
        }
    }

    /// New figures: rows replaced, in the current order.
    pub fn show(&mut self, mut rows: Vec<Row>) {
        rows::sort(&mut rows, self.sort, self.reverse);
        self.rows = rows;
    }

    fn resort(&mut self) {
        rows::sort(&mut self.rows, self.sort, self.reverse);
    }

    pub fn key(&mut self, k: KeyEvent) -> Action {
        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c {
            return Action::Quit;
        }
        // A terminal sends Esc and a key that follows it closely as one
        // Alt-modified key. Read it as the two keys it was typed as (as
        // readline reads a meta prefix): Esc, then the plain key.
        if k.modifiers.contains(KeyModifiers::ALT) && matches!(k.code, KeyCode::Char(_)) {
            if self.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)) == Action::Quit {
                return Action::Quit;
            }
            let plain = KeyEvent::new(k.code, k.modifiers - KeyModifiers::ALT);
            return self.key(plain);
        }
        if let Some(typed) = &mut self.prompt {
            match k.code {
                KeyCode::Esc => self.prompt = None,
                KeyCode::Enter => {
                    let expr = typed.trim().to_owned();
                    self.prompt = None;
                    return Action::Target(expr);
                }
                KeyCode::Backspace => {
                    typed.pop();
                }
                KeyCode::Char(c) => typed.push(c),
                _ => {}
            }
            return Action::Nothing;
        }
        let sort = match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Char('/') => {
                self.prompt = Some(String::new());
                return Action::Nothing;
            }
            KeyCode::Char('r') => {
                self.reverse = !self.reverse;
                self.resort();
                return Action::Nothing;
            }
            KeyCode::Char('c') => Sort::Cpu,
            KeyCode::Char('m') => Sort::Memory,
            KeyCode::Char('l') => Sort::Load,
            KeyCode::Char('n') => Sort::Network,
            KeyCode::Char('d') => Sort::Disk,
            KeyCode::Char('a') => Sort::Name,
            _ => return Action::Nothing,
        };
        self.sort = sort;
        self.resort();
        Action::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{NodeView, UsageView};
    use cluster_model::alerts::Levels;

    fn row(name: &str, cpu: f64, mem_used: u64) -> Row {
        let view = NodeView {
            name: name.into(),
            id: name.into(),
            state: "online",
            roles: vec![],
            addresses: vec![],
            health_url: String::new(),
            connected: true,
            last_seen: String::new(),
            last_seen_ms: 0,
            offline: None,
            alerts: vec![],
            levels: None,
            facts: serde_json::Value::Null,
            raw_usage: None,
            fact_problems: vec![],
            usage: Some(UsageView {
                cpu_percent: cpu,
                load: [1.0, 1.0, 1.0],
                mem_total_bytes: 100,
                mem_used_bytes: mem_used,
                swap_total_bytes: 0,
                swap_used_bytes: 0,
                disks: vec![],
                net_rx_bytes_per_sec: 0,
                net_tx_bytes_per_sec: 0,
            }),
            labels: Default::default(),
            grains: serde_json::json!({ "num_cpus": 4 }),
            health: "online".into(),
            cache_error: None,
            checks: vec![],
        };
        Row::of(&view, Levels::default())
    }

    fn press(app: &mut App, keys: &str) -> Vec<Action> {
        keys.chars()
            .map(|c| {
                let code = match c {
                    '\n' => KeyCode::Enter,
                    '\x1b' => KeyCode::Esc,
                    '\x08' => KeyCode::Backspace,
                    c => KeyCode::Char(c),
                };
                app.key(KeyEvent::new(code, KeyModifiers::NONE))
            })
            .filter(|a| *a != Action::Nothing)
            .collect()
    }

    fn order(app: &App) -> Vec<&str> {
        app.rows.iter().map(|r| r.name.as_str()).collect()
    }

    fn app() -> App {
        let mut app = App::new("m".into(), std::time::Duration::from_secs(2), String::new());
        app.show(vec![
            row("b", 10.0, 90),
            row("a", 50.0, 10),
            row("c", 90.0, 50),
        ]);
        app
    }

    #[test]
    fn keys_sort_like_glances_and_r_turns_the_order_round() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["c", "a", "b"]),
            ("m", &["b", "c", "a"]),
            ("a", &["a", "b", "c"]),
            ("ar", &["c", "b", "a"]),
            ("arr", &["a", "b", "c"]),
            ("cr", &["b", "a", "c"]),
        ];
        for (keys, want) in cases {
            let mut app = app();
            assert_eq!(press(&mut app, keys), vec![], "{keys:?}");
            assert_eq!(order(&app), *want, "after {keys:?}");
        }
    }

    #[test]
    fn the_prompt_takes_an_expression_and_esc_cancels_it() {
        let mut app = app();
        assert_eq!(
            press(&mut app, "/R@web\n"),
            vec![Action::Target("R@web".into())]
        );
        // Letters typed in the prompt are not sort keys, and Esc leaves
        // the prompt, not top.
        assert_eq!(press(&mut app, "/amx\x08\x1b"), vec![]);
        assert_eq!(app.prompt, None);
        assert_eq!(order(&app), ["c", "a", "b"]);
        assert_eq!(press(&mut app, "q"), vec![Action::Quit]);
        assert_eq!(press(&mut app, "\x1b"), vec![Action::Quit]);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.key(ctrl_c), Action::Quit);
    }

    #[test]
    fn esc_and_a_key_read_together_as_alt_are_both_keys() {
        let alt = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT);
        // In the prompt: Esc closes it, then q quits.
        let mut a = app();
        press(&mut a, "/x");
        assert_eq!(a.key(alt('q')), Action::Quit);
        // In the prompt: Esc closes it, then m sorts by memory.
        let mut a = app();
        press(&mut a, "/x");
        assert_eq!(a.key(alt('m')), Action::Nothing);
        assert_eq!(a.prompt, None);
        assert_eq!(order(&a), ["b", "c", "a"]);
        // Outside a prompt, Esc alone quits already.
        let mut a = app();
        assert_eq!(a.key(alt('a')), Action::Quit);
    }

    #[test]
    fn a_row_has_its_figures_and_their_levels() {
        let r = row("a", 75.0, 95);
        assert_eq!(r.memory_percent, Some(95.0));
        assert_eq!(r.swap_percent, None, "no swap: no figure");
        assert_eq!(r.load1_per_core, Some(0.25));
        assert_eq!(r.level("cpu"), Some(cluster_model::alerts::Level::Warning));
        assert_eq!(
            r.level("memory"),
            Some(cluster_model::alerts::Level::Critical)
        );
        assert_eq!(r.level("swap"), None);
        assert_eq!(r.alerts, 0);
    }
}

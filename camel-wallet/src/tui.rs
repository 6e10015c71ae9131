//! The terminal wallet: `camel-wallet` with no subcommand, or `camel-wallet tui`. A shell over
//! the library: every number it shows and every action it takes goes through [`Wallet`],
//! [`JobClient`] and [`crate::spv`], as the CLI's do.
//!
//! Three parts, so the screens can be tested without a terminal:
//! - [`App`]: the state, changed only by keys ([`App::key`]) and by results of background
//!   work ([`App::apply`]);
//! - [`draw`]: the state to a frame (ratatui), any size down to 80×24;
//! - [`run`]: the terminal, a `tokio::select!` loop over ticks, crossterm's event stream and
//!   the background tasks' messages; network calls never block a frame.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};
use tokio::sync::{Mutex, mpsc};
use tui_input::{Input, InputRequest};

use crate::job::{JobClient, JobRequest, Outcome, Progress};
use crate::keys::Chain;
use crate::node::NodeClient;
use crate::wallet::{Balance, JobEntry, Wallet};

/// The smallest terminal the screens are laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Wallet,
    Send,
    Jobs,
    Network,
}

const TABS: [Tab; 4] = [Tab::Wallet, Tab::Send, Tab::Jobs, Tab::Network];

impl Tab {
    fn title(self) -> &'static str {
        match self {
            Tab::Wallet => "Wallet",
            Tab::Send => "Send",
            Tab::Jobs => "Jobs",
            Tab::Network => "Network",
        }
    }
}

/// One node as the Network tab shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub url: String,
    pub height: u32,
    pub tip: String,
    /// The tip is on the header chain the wallet verified from the genesis.
    pub verified: bool,
    pub peers: usize,
}

/// A job as the Jobs tab shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRow {
    pub job_id: String,
    pub state: String,
    pub output: Option<String>,
    pub verdicts: Vec<String>,
}

/// A form of text fields, one focused.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub labels: Vec<&'static str>,
    pub fields: Vec<Input>,
    pub focus: usize,
}

impl Form {
    fn new(fields: &[(&'static str, &str)]) -> Self {
        Self {
            labels: fields.iter().map(|f| f.0).collect(),
            fields: fields.iter().map(|f| Input::new(f.1.to_owned())).collect(),
            focus: 0,
        }
    }

    pub fn value(&self, i: usize) -> &str {
        self.fields.get(i).map(Input::value).unwrap_or_default()
    }

    fn edit(&mut self, key: KeyEvent) {
        let Some(f) = self.fields.get_mut(self.focus) else {
            return;
        };
        let req = match key.code {
            KeyCode::Char(c) => Some(InputRequest::InsertChar(c)),
            KeyCode::Backspace => Some(InputRequest::DeletePrevChar),
            KeyCode::Delete => Some(InputRequest::DeleteNextChar),
            KeyCode::Left => Some(InputRequest::GoToPrevChar),
            KeyCode::Right => Some(InputRequest::GoToNextChar),
            KeyCode::Home => Some(InputRequest::GoToStart),
            KeyCode::End => Some(InputRequest::GoToEnd),
            _ => None,
        };
        if let Some(r) = req {
            f.handle(r);
        }
    }
}

/// What the state asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Refresh,
    NewAddress,
    Copy(String),
    Send {
        to: String,
        amount: u64,
        fee_per_byte: u64,
    },
    Submit(JobForm),
}

/// A job as the form asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobForm {
    pub model: String,
    pub prompt: String,
    pub max_tokens: u32,
    /// Sampling temperature in thousandths (0: greedy).
    pub temperature_milli: u32,
    pub reward: u64,
    /// Fee of each of the job's transactions, base units.
    pub fee: u64,
}

/// Results of background work.
#[derive(Debug, Clone)]
pub enum Msg {
    Balance(Balance),
    Address(String),
    Nodes(Vec<NodeView>),
    Models(Vec<String>),
    Jobs(Vec<JobRow>),
    Job(JobRow),
    Sent(String),
    Error(String),
}

/// The terminal wallet's state.
#[derive(Debug)]
pub struct App {
    pub tab: Tab,
    pub help: bool,
    /// Typing in a form: letters are text, not commands.
    pub typing: bool,
    pub color: bool,
    pub status: Option<(bool, String)>,
    pub balance: Option<Balance>,
    pub address: Option<String>,
    pub nodes: Vec<NodeView>,
    pub models: Vec<String>,
    pub jobs: Vec<JobRow>,
    /// The model the job form asks for, among those served (`m` cycles).
    pub model_index: usize,
    /// Index into [`App::visible_jobs`].
    pub selected: usize,
    /// The Jobs list's filter (`/`): jobs whose id or state contains it.
    pub filter: String,
    /// Typing the filter.
    pub filtering: bool,
    pub send: Form,
    pub submit: Form,
    /// The send confirmation: `Some(cancel_focused)` while open; Cancel is the default.
    pub confirm: Option<bool>,
    /// The address version of the wallet's network, for the send form's check.
    pub address_version: u8,
}

impl App {
    pub fn new(color: bool, address_version: u8) -> Self {
        Self {
            tab: Tab::Wallet,
            help: false,
            typing: false,
            color,
            status: None,
            balance: None,
            address: None,
            nodes: Vec::new(),
            models: Vec::new(),
            jobs: Vec::new(),
            selected: 0,
            filter: String::new(),
            filtering: false,
            send: Form::new(&[
                ("to (address)", ""),
                ("amount (base units)", ""),
                ("fee rate (base units/byte)", "1"),
            ]),
            submit: Form::new(&[
                ("prompt", ""),
                ("max tokens", "16"),
                ("temperature (0: greedy)", "0"),
                ("reward (base units)", "50000"),
                ("fee per transaction", "2000"),
            ]),
            model_index: 0,
            confirm: None,
            address_version,
        }
    }

    /// The send form's problems, field by field (`None`: valid).
    pub fn send_errors(&self) -> Vec<Option<String>> {
        let to = self.send.value(0);
        let to_err = if to.is_empty() {
            Some("an address".into())
        } else {
            match camel_core::address::Address::parse_for(to, self.address_version) {
                Err(_) => Some("not an address of this wallet's network".into()),
                Ok(_) => None,
            }
        };
        let amount = self.send.value(1).parse::<u64>();
        let amount_err = match amount {
            Ok(0) | Err(_) => Some("a whole number of base units above 0".into()),
            Ok(a) if self.balance.as_ref().is_some_and(|b| a > b.spendable_base) => {
                Some("more than the spendable balance".into())
            }
            Ok(_) => None,
        };
        let fee_err = match self.send.value(2).parse::<u64>() {
            Ok(f) if f >= 1 => None,
            _ => Some("at least 1".into()),
        };
        vec![to_err, amount_err, fee_err]
    }

    /// The jobs the filter lets through, as indices into `jobs`.
    pub fn visible_jobs(&self) -> Vec<usize> {
        let f = self.filter.to_lowercase();
        (0..self.jobs.len())
            .filter(|&i| {
                let j = &self.jobs[i];
                f.is_empty() || j.job_id.contains(&f) || j.state.to_lowercase().contains(&f)
            })
            .collect()
    }

    fn form(&mut self) -> Option<&mut Form> {
        match self.tab {
            Tab::Send => Some(&mut self.send),
            Tab::Jobs => Some(&mut self.submit),
            _ => None,
        }
    }

    /// A key: what it changes, and what the runtime must do.
    pub fn key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(cancel) = self.confirm {
            return match key.code {
                KeyCode::Left
                | KeyCode::Right
                | KeyCode::Tab
                | KeyCode::Char('h')
                | KeyCode::Char('l') => {
                    self.confirm = Some(!cancel);
                    None
                }
                KeyCode::Enter if !cancel => {
                    self.confirm = None;
                    Some(Command::Send {
                        to: self.send.value(0).to_owned(),
                        amount: self.send.value(1).parse().unwrap_or(0),
                        fee_per_byte: self.send.value(2).parse().unwrap_or(1),
                    })
                }
                KeyCode::Enter | KeyCode::Esc | KeyCode::Char('n') => {
                    self.confirm = None;
                    None
                }
                _ => None,
            };
        }
        if self.help {
            self.help = false;
            return None;
        }
        if self.filtering {
            match key.code {
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter.clear();
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                _ if ctrl_c => return Some(Command::Quit),
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.selected = 0;
            return None;
        }
        if self.typing {
            match key.code {
                KeyCode::Esc => self.typing = false,
                KeyCode::Tab | KeyCode::Down => {
                    if let Some(f) = self.form() {
                        f.focus = (f.focus + 1) % f.fields.len();
                    }
                }
                KeyCode::BackTab | KeyCode::Up => {
                    if let Some(f) = self.form() {
                        f.focus = (f.focus + f.fields.len() - 1) % f.fields.len();
                    }
                }
                KeyCode::Enter => {
                    self.typing = false;
                    return self.act();
                }
                _ if ctrl_c => return Some(Command::Quit),
                _ => {
                    if let Some(f) = self.form() {
                        f.edit(key);
                    }
                }
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            _ if ctrl_c => return Some(Command::Quit),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => {
                self.tab = TABS[(self.tab_index() + 1) % TABS.len()];
            }
            KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => {
                self.tab = TABS[(self.tab_index() + TABS.len() - 1) % TABS.len()];
            }
            KeyCode::Char('1') => self.tab = Tab::Wallet,
            KeyCode::Char('2') => self.tab = Tab::Send,
            KeyCode::Char('3') => self.tab = Tab::Jobs,
            KeyCode::Char('4') => self.tab = Tab::Network,
            KeyCode::Char('r') => return Some(Command::Refresh),
            KeyCode::Char('a') if self.tab == Tab::Wallet => return Some(Command::NewAddress),
            KeyCode::Char('c') if self.tab == Tab::Wallet => {
                return self.address.clone().map(Command::Copy);
            }
            KeyCode::Char('/') if self.tab == Tab::Jobs => self.filtering = true,
            KeyCode::Char('m') if self.tab == Tab::Jobs && !self.models.is_empty() => {
                self.model_index = (self.model_index + 1) % self.models.len();
            }
            KeyCode::Char('j') | KeyCode::Down if self.tab == Tab::Jobs => {
                self.selected =
                    (self.selected + 1).min(self.visible_jobs().len().saturating_sub(1));
            }
            KeyCode::Char('k') | KeyCode::Up if self.tab == Tab::Jobs => {
                self.selected = self.selected.saturating_sub(1);
            }
            KeyCode::Enter | KeyCode::Char('i') if matches!(self.tab, Tab::Send | Tab::Jobs) => {
                self.typing = true;
            }
            KeyCode::Char('s') if self.tab == Tab::Send => {
                if self.send_errors().iter().all(Option::is_none) {
                    self.confirm = Some(true);
                } else {
                    self.status = Some((true, "fix the fields marked in red first".into()));
                }
            }
            KeyCode::Esc => self.tab = Tab::Wallet,
            _ => {}
        }
        None
    }

    /// Enter at the end of a form.
    fn act(&mut self) -> Option<Command> {
        match self.tab {
            Tab::Send => {
                self.confirm = Some(true);
                None
            }
            Tab::Jobs => {
                let Some(model) = self.model().map(str::to_owned) else {
                    self.status = Some((
                        true,
                        "no worker serves a model yet: see the Network tab".into(),
                    ));
                    return None;
                };
                let prompt = self.submit.value(0).to_owned();
                let max_tokens = self.submit.value(1).parse().unwrap_or(0);
                let temperature = self.submit.value(2).parse::<f64>().ok();
                let reward = self.submit.value(3).parse().unwrap_or(0);
                let fee = self.submit.value(4).parse().ok();
                let (Some(t), Some(fee)) = (temperature.filter(|t| (0.0..=10.0).contains(t)), fee)
                else {
                    self.status = Some((
                        true,
                        "temperature between 0 and 10, and a whole fee in base units".into(),
                    ));
                    return None;
                };
                if prompt.is_empty() || max_tokens == 0 || reward == 0 {
                    self.status = Some((true, "a prompt, max tokens and a reward above 0".into()));
                    return None;
                }
                Some(Command::Submit(JobForm {
                    model,
                    prompt,
                    max_tokens,
                    temperature_milli: (t * 1000.0).round() as u32,
                    reward,
                    fee,
                }))
            }
            _ => None,
        }
    }

    /// The model the job form asks for.
    pub fn model(&self) -> Option<&str> {
        self.models
            .get(self.model_index % self.models.len().max(1))
            .map(String::as_str)
    }

    fn tab_index(&self) -> usize {
        TABS.iter().position(|t| *t == self.tab).unwrap_or(0)
    }

    /// A result of background work.
    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Balance(b) => self.balance = Some(b),
            Msg::Address(a) => self.address = Some(a),
            Msg::Nodes(n) => self.nodes = n,
            Msg::Models(m) => self.models = m,
            Msg::Jobs(j) => {
                // Rows the wallet follows live keep their output and verdicts.
                for row in j {
                    if !self.jobs.iter().any(|r| r.job_id == row.job_id) {
                        self.jobs.push(row);
                    }
                }
            }
            Msg::Job(row) => match self.jobs.iter_mut().find(|r| r.job_id == row.job_id) {
                Some(r) => *r = row,
                None => {
                    self.jobs.insert(0, row);
                    self.selected = 0;
                }
            },
            Msg::Sent(txid) => {
                self.status = Some((false, format!("sent: transaction {txid}")));
                self.send = Form::new(&[
                    ("to (address)", ""),
                    ("amount (base units)", ""),
                    ("fee rate (base units/byte)", "1"),
                ]);
            }
            Msg::Error(e) => self.status = Some((true, e)),
        }
    }
}

fn style(app: &App, color: Color) -> Style {
    if app.color {
        Style::default().fg(color)
    } else {
        Style::default()
    }
}

/// Draws the state on a frame.
pub fn draw(f: &mut Frame<'_>, app: &App) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "camel-wallet needs {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {}×{}. Enlarge it, or use the CLI.",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, body, status, keys] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let titles: Vec<Line<'_>> = TABS
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title())))
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.tab_index())
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" CamelidCoin wallet "),
        )
        .highlight_style(
            style(app, Color::Yellow).add_modifier(Modifier::BOLD | Modifier::REVERSED),
        );
    f.render_widget(tabs, top);
    match app.tab {
        Tab::Wallet => draw_wallet(f, app, body),
        Tab::Send => draw_send(f, app, body),
        Tab::Jobs => draw_jobs(f, app, body),
        Tab::Network => draw_network(f, app, body),
    }
    let line = match &app.status {
        Some((true, e)) => Line::from(Span::styled(
            format!("error: {e}"),
            style(app, Color::Red).add_modifier(Modifier::BOLD),
        )),
        Some((false, m)) => Line::from(Span::styled(m.clone(), style(app, Color::Green))),
        None => Line::from(""),
    };
    f.render_widget(Paragraph::new(line), status);
    let help = if app.typing {
        "typing: Tab next field · Enter done · Esc stop typing"
    } else {
        match app.tab {
            Tab::Wallet => {
                "q quit · ? help · Tab/←→ tabs · a new address · c copy address · r refresh"
            }
            Tab::Send => "q quit · ? help · Enter edit · s send · Esc back",
            Tab::Jobs => {
                "q quit · ? help · Enter edit the job form · m model · j/k select · / filter · r refresh"
            }
            Tab::Network => "q quit · ? help · r refresh",
        }
    };
    f.render_widget(
        Paragraph::new(Span::styled(
            help,
            Style::default().add_modifier(Modifier::DIM),
        )),
        keys,
    );
    if app.help {
        draw_help(f, app, body);
    }
    if let Some(cancel) = app.confirm {
        draw_confirm(f, app, body, cancel);
    }
}

fn draw_wallet(f: &mut Frame<'_>, app: &App, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Min(30), Constraint::Length(40)]).areas(area);
    let b = app.balance.as_ref();
    let n = |v: Option<u64>| v.map_or("…".to_owned(), |v| v.to_string());
    let mut lines = vec![
        Line::from(vec![
            Span::raw("spendable  "),
            Span::styled(
                n(b.map(|b| b.spendable_base)),
                style(app, Color::Green).add_modifier(Modifier::BOLD),
            ),
            Span::raw(" base units"),
        ]),
        Line::from(format!(
            "immature   {} base units",
            n(b.map(|b| b.immature_base))
        )),
        Line::from(format!(
            "coins      {}",
            b.map_or("…".to_owned(), |b| b.coins.to_string())
        )),
        Line::from(format!(
            "verified   headers to height {}",
            b.map_or("…".to_owned(), |b| b.verified_height.to_string())
        )),
        Line::from(""),
        Line::from("receive address:"),
        Line::from(Span::styled(
            app.address.clone().unwrap_or_else(|| "(press a)".into()),
            Style::default().add_modifier(Modifier::BOLD),
        )),
    ];
    if let Some(b) = b
        && !b.behind.is_empty()
    {
        lines.push(Line::from(format!(
            "behind the best tip: {}",
            b.behind.join(", ")
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Balance ")),
        left,
    );
    let qr = app.address.as_deref().and_then(qr_lines);
    let block = Block::default().borders(Borders::ALL).title(" Address QR ");
    match qr {
        Some(q)
            if q.len() as u16 + 2 <= right.height
                && q.first().map_or(0, |l| l.chars().count()) as u16 + 2 <= right.width =>
        {
            let lines: Vec<Line<'_>> = q.into_iter().map(Line::from).collect();
            f.render_widget(Paragraph::new(lines).block(block), right);
        }
        Some(q) => {
            let need = q.first().map_or(0, |l| l.chars().count()) + 2;
            f.render_widget(
                Paragraph::new(format!(
                    "the QR code needs {need} columns and {} rows; the address is on the left",
                    q.len() + 2
                ))
                .wrap(Wrap { trim: true })
                .block(block),
                right,
            );
        }
        None => f.render_widget(Paragraph::new("").block(block), right),
    }
}

/// The address as a QR code, two modules per character row.
pub fn qr_lines(address: &str) -> Option<Vec<String>> {
    let code = qrcode::QrCode::new(address.as_bytes()).ok()?;
    let s = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(false)
        .build();
    Some(s.lines().map(str::to_owned).collect())
}

fn draw_form(
    f: &mut Frame<'_>,
    app: &App,
    form: &Form,
    errors: &[Option<String>],
    area: Rect,
    title: &str,
) {
    let mut lines = Vec::new();
    for (i, (label, input)) in form.labels.iter().zip(&form.fields).enumerate() {
        let focused = app.typing && i == form.focus;
        let marker = if focused { "▸ " } else { "  " };
        let value = if focused {
            format!("{}▏", input.value())
        } else {
            input.value().to_owned()
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{marker}{label:<28}")),
            Span::styled(
                value,
                Style::default().add_modifier(if focused {
                    Modifier::BOLD
                } else {
                    Modifier::empty()
                }),
            ),
        ]));
        if let Some(Some(e)) = errors.get(i)
            && !input.value().is_empty()
        {
            lines.push(Line::from(Span::styled(
                format!("    {e}"),
                style(app, Color::Red),
            )));
        }
    }
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title.to_owned()),
        ),
        area,
    );
}

fn draw_send(f: &mut Frame<'_>, app: &App, area: Rect) {
    let errors = app.send_errors();
    let [form, info] = Layout::vertical([Constraint::Length(9), Constraint::Min(0)]).areas(area);
    draw_form(f, app, &app.send, &errors, form, " Send ");
    let fee_rate: u64 = app.send.value(2).parse().unwrap_or(1);
    // A one-input, two-output payment is about 226 bytes.
    let preview = format!(
        "fee preview: about {} base units at {fee_rate}/byte for a one-input payment; the exact fee is shown before it is sent",
        226 * fee_rate
    );
    f.render_widget(Paragraph::new(preview).wrap(Wrap { trim: true }), info);
}

fn draw_jobs(f: &mut Frame<'_>, app: &App, area: Rect) {
    let [form, list] = Layout::vertical([Constraint::Length(9), Constraint::Min(0)]).areas(area);
    let model = app.model().map_or("(no model served yet)".to_owned(), |m| {
        let of = if app.models.len() > 1 {
            format!(
                " ({} of {}, m: next)",
                app.model_index % app.models.len() + 1,
                app.models.len()
            )
        } else {
            String::new()
        };
        format!("model {}…{of}", m.chars().take(16).collect::<String>())
    });
    draw_form(
        f,
        app,
        &app.submit,
        &[],
        form,
        &format!(" New job: {model} "),
    );
    let [rows, detail] =
        Layout::horizontal([Constraint::Length(34), Constraint::Min(0)]).areas(list);
    let visible = app.visible_jobs();
    let lines: Vec<Line<'_>> = visible
        .iter()
        .map(|&k| &app.jobs[k])
        .enumerate()
        .map(|(i, j)| {
            let s = format!(
                "{}… {}",
                j.job_id.chars().take(12).collect::<String>(),
                j.state
            );
            if i == app.selected {
                Line::from(Span::styled(
                    s,
                    Style::default().add_modifier(Modifier::REVERSED),
                ))
            } else {
                Line::from(s)
            }
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(
            if app.filtering || !app.filter.is_empty() {
                format!(
                    " Jobs /{}{} ",
                    app.filter,
                    if app.filtering { "▏" } else { "" }
                )
            } else {
                " Jobs ".to_owned()
            },
        )),
        rows,
    );
    let mut d = Vec::new();
    if let Some(j) = visible.get(app.selected).map(|&k| &app.jobs[k]) {
        d.push(Line::from(format!("job {}", j.job_id)));
        d.push(Line::from(format!("state: {}", j.state)));
        if let Some(o) = &j.output {
            d.push(Line::from(""));
            d.push(Line::from(Span::styled(
                "output:",
                Style::default().add_modifier(Modifier::BOLD),
            )));
            d.extend(o.lines().map(|l| Line::from(l.to_owned())));
        }
        for v in &j.verdicts {
            d.push(Line::from(Span::styled(v.clone(), style(app, Color::Cyan))));
        }
    }
    f.render_widget(
        Paragraph::new(d)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Selected ")),
        detail,
    );
}

fn draw_network(f: &mut Frame<'_>, app: &App, area: Rect) {
    let mut lines = Vec::new();
    for n in &app.nodes {
        let v = if n.verified {
            Span::styled("headers verified", style(app, Color::Green))
        } else {
            Span::styled(
                "tip NOT on the verified chain",
                style(app, Color::Red).add_modifier(Modifier::BOLD),
            )
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{}  height {}  ", n.url, n.height)),
            v,
            Span::raw(format!("  {} peers", n.peers)),
        ]));
        lines.push(Line::from(format!("  tip {}", n.tip)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "models served: {}",
        if app.models.is_empty() {
            "none yet".to_owned()
        } else {
            app.models.join(", ")
        }
    )));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(" Network ")),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_help(f: &mut Frame<'_>, _app: &App, area: Rect) {
    let r = centered(area, 60, 14);
    f.render_widget(Clear, r);
    let text = vec![
        Line::from("q, Ctrl-C   quit (not while typing)"),
        Line::from("?           this help; any key closes it"),
        Line::from("Tab, ←/→    next / previous tab; 1-4 a tab"),
        Line::from("Enter, i    edit the form; Tab moves between fields"),
        Line::from("Esc         stop typing, or back to the Wallet tab"),
        Line::from("s           send (Send tab): a confirmation first"),
        Line::from("a, c        new receive address, copy it (OSC 52)"),
        Line::from("j/k, ↑/↓    select a job; / filters the jobs (Esc clears)"),
        Line::from("r           refresh now"),
    ];
    f.render_widget(
        Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        r,
    );
}

fn draw_confirm(f: &mut Frame<'_>, app: &App, area: Rect, cancel: bool) {
    let r = centered(area, 64, 7);
    f.render_widget(Clear, r);
    let sel = Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD);
    let text = vec![
        Line::from(format!("Send {} base units to", app.send.value(1))),
        Line::from(app.send.value(0).to_owned()),
        Line::from(format!("at {} base units per byte?", app.send.value(2))),
        Line::from(vec![
            Span::styled(" Cancel ", if cancel { sel } else { Style::default() }),
            Span::raw("   "),
            Span::styled(" Send ", if cancel { Style::default() } else { sel }),
        ]),
    ];
    f.render_widget(
        Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(" Confirm ")),
        r,
    );
}

/// Runs the terminal wallet until the user quits.
pub async fn run(wallet: Wallet, nodes: Vec<NodeClient>) -> std::io::Result<()> {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let version = wallet.params.address_version;
    let wallet = Arc::new(Mutex::new(wallet));
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut app = App::new(color, version);
    // ratatui::init restores the terminal on panic too.
    let mut terminal = ratatui::init();
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    {
        let w = wallet.lock().await;
        app.jobs = w
            .jobs()
            .iter()
            .map(|j| JobRow {
                job_id: j.job_id.clone(),
                state: "…".into(),
                ..Default::default()
            })
            .collect();
    }
    spawn_address(&wallet, &tx, false);
    let result = loop {
        if let Err(e) = terminal.draw(|f| draw(f, &app)) {
            break Err(e);
        }
        tokio::select! {
            _ = tick.tick() => spawn_refresh(&wallet, &nodes, &tx),
            _ = term.recv() => break Ok(()),
            Some(m) = rx.recv() => app.apply(m),
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) => match app.key(k) {
                    Some(Command::Quit) => break Ok(()),
                    Some(Command::Refresh) => spawn_refresh(&wallet, &nodes, &tx),
                    Some(Command::NewAddress) => spawn_address(&wallet, &tx, true),
                    Some(Command::Copy(a)) => {
                        use base64::Engine;
                        let b = base64::engine::general_purpose::STANDARD.encode(a.as_bytes());
                        print!("\x1b]52;c;{b}\x07");
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                        app.status = Some((false, "address copied (OSC 52)".into()));
                    }
                    Some(Command::Send { to, amount, fee_per_byte }) => spawn_send(&wallet, &nodes[0], &tx, to, amount, fee_per_byte),
                    Some(Command::Submit(job)) => spawn_job(&wallet, &nodes[0], &tx, job),
                    None => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
        }
    };
    ratatui::restore();
    result
}

fn spawn_refresh(
    wallet: &Arc<Mutex<Wallet>>,
    nodes: &[NodeClient],
    tx: &mpsc::UnboundedSender<Msg>,
) {
    let (wallet, nodes, tx) = (wallet.clone(), nodes.to_vec(), tx.clone());
    tokio::spawn(async move {
        let w = wallet.lock().await;
        match w.balance_across(&nodes).await {
            Ok(b) => {
                let _ = tx.send(Msg::Balance(b));
            }
            Err(e) => {
                let _ = tx.send(Msg::Error(format!("{e} (is the node running? --node)")));
            }
        }
        let mut views = Vec::new();
        for n in &nodes {
            let (Ok(chain), Ok((height, tip))) = (w.headers(n).await, n.tip().await) else {
                continue;
            };
            let peers = n
                .peers()
                .await
                .ok()
                .and_then(|p| {
                    p["peers"]
                        .as_array()
                        .map(|a| a.iter().filter(|x| !x["connected_since"].is_null()).count())
                })
                .unwrap_or(0);
            views.push(NodeView {
                url: n.url().to_owned(),
                height,
                tip: tip.to_string(),
                verified: chain.hash_at(height) == Some(tip),
                peers,
            });
        }
        let _ = tx.send(Msg::Nodes(views));
        if let Some(n) = nodes.first() {
            if let Ok(ws) = n.workers().await {
                let mut m: Vec<String> = ws.into_iter().flat_map(|w| w.models).collect();
                m.sort();
                m.dedup();
                let _ = tx.send(Msg::Models(m));
            }
            let mut rows = Vec::new();
            for j in w.jobs() {
                if let Ok(id) = j.job_id.parse()
                    && let Ok(Some(info)) = n.job(&id).await
                {
                    rows.push(JobRow {
                        job_id: j.job_id.clone(),
                        state: info.state,
                        ..Default::default()
                    });
                }
            }
            let _ = tx.send(Msg::Jobs(rows));
        }
    });
}

fn spawn_address(wallet: &Arc<Mutex<Wallet>>, tx: &mpsc::UnboundedSender<Msg>, fresh: bool) {
    let (wallet, tx) = (wallet.clone(), tx.clone());
    tokio::spawn(async move {
        let mut w = wallet.lock().await;
        // The last address handed out, or a fresh one when asked (never one handed out twice).
        let r = if fresh {
            w.next_key(Chain::Receive)
        } else {
            w.last_or_next_receive()
        };
        match r {
            Ok((_, k)) => {
                let _ = tx.send(Msg::Address(w.address_of(&k)));
            }
            Err(e) => {
                let _ = tx.send(Msg::Error(e.to_string()));
            }
        }
    });
}

fn spawn_send(
    wallet: &Arc<Mutex<Wallet>>,
    node: &NodeClient,
    tx: &mpsc::UnboundedSender<Msg>,
    to: String,
    amount: u64,
    fee: u64,
) {
    let (wallet, node, tx) = (wallet.clone(), node.clone(), tx.clone());
    tokio::spawn(async move {
        let mut w = wallet.lock().await;
        let r = async {
            let (t, _fee) = w.build_send(&node, &to, amount, fee, 100_000, true).await?;
            w.broadcast(&node, &t).await
        }
        .await;
        let _ = tx.send(match r {
            Ok(txid) => Msg::Sent(txid.to_string()),
            Err(e) => Msg::Error(e.to_string()),
        });
    });
}

#[allow(clippy::too_many_arguments)]
fn spawn_job(
    wallet: &Arc<Mutex<Wallet>>,
    node: &NodeClient,
    tx: &mpsc::UnboundedSender<Msg>,
    job: JobForm,
) {
    let (wallet, node, tx) = (wallet.clone(), node.clone(), tx.clone());
    tokio::spawn(async move {
        let JobForm {
            model,
            prompt,
            max_tokens,
            temperature_milli,
            reward,
            fee,
        } = job;
        let Ok(model_id) = model.parse() else {
            let _ = tx.send(Msg::Error(format!("model {model} is not a model id")));
            return;
        };
        let Some(reward_a) = camel_core::Amount::from_base(reward) else {
            let _ = tx.send(Msg::Error("the reward exceeds the money supply".into()));
            return;
        };
        let (client, index) = {
            let mut w = wallet.lock().await;
            let (index, key) = match w.next_key(Chain::Job) {
                Ok(k) => k,
                Err(e) => {
                    let _ = tx.send(Msg::Error(e.to_string()));
                    return;
                }
            };
            let funding = w.keys().unwrap_or_default();
            let (ptx, mut steps) = mpsc::unbounded_channel();
            let c = JobClient::new(node.clone(), key, w.params.clone())
                .with_funding(funding)
                .with_progress(ptx);
            let tx2 = tx.clone();
            let row = Arc::new(std::sync::Mutex::new(JobRow::default()));
            let r2 = row.clone();
            let forward = tokio::spawn(async move {
                while let Some(p) = steps.recv().await {
                    let mut r = r2.lock().unwrap_or_else(|e| e.into_inner());
                    match &p {
                        Progress::Delivered { delivery } => {
                            r.output = Some(String::from_utf8_lossy(&delivery.text).into_owned())
                        }
                        Progress::Verdict { verdict } => r.verdicts.push(format!(
                            "verdict by {}…: {} ({} positions checked)",
                            &camel_core::hash::to_hex(&verdict.verifier.to_bytes())[..12],
                            if verdict.accepts() {
                                "valid"
                            } else {
                                "INVALID"
                            },
                            verdict.checked
                        )),
                        _ => {}
                    }
                    r.state = crate::job::describe_progress(&p);
                    if !r.job_id.is_empty() {
                        let _ = tx2.send(Msg::Job(r.clone()));
                    }
                }
            });
            (c, (index, row, forward))
        };
        let req = JobRequest {
            model: model_id,
            prompt,
            format: camel_core::job::PromptFormat::Raw,
            max_tokens,
            sampling: camel_core::rastic::SamplingParams {
                temperature_milli,
                seed: 0,
            },
            reward: reward_a,
            min_stake: reward_a,
            timelock_blocks: 30,
            fee,
            verifiers: 2,
            workers: vec![],
        };
        let (index, row, forward) = index;
        let submitted = match client.submit(&req).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Msg::Error(format!("job not submitted: {e}")));
                return;
            }
        };
        let id = submitted.job_id.to_string();
        {
            let mut r = row.lock().unwrap_or_else(|e| e.into_inner());
            r.job_id = id.clone();
            r.state = "offered".into();
            let _ = tx.send(Msg::Job(r.clone()));
        }
        let _ = wallet.lock().await.record_job(JobEntry {
            job_id: id.clone(),
            index,
            reward_base: reward,
            model,
        });
        let outcome = client.follow(&submitted, &req).await;
        // Every step reported before the end is shown before it: close the progress channel
        // and let the forwarder drain it.
        drop(client);
        let _ = forward.await;
        let mut r = row.lock().unwrap_or_else(|e| e.into_inner()).clone();
        r.state = match outcome {
            Ok(Outcome::Settled { .. }) => "settled".into(),
            Ok(Outcome::Disputed { why, .. }) => format!("disputed: {why}"),
            Ok(Outcome::Refunded { .. }) => "refunded".into(),
            Err(e) => format!("error: {e}"),
        };
        let _ = tx.send(Msg::Job(r));
    });
}

//! The terminal wallet's screens, drawn on ratatui's `TestBackend` from fixed states and
//! compared with the snapshots in `tests/snapshots/` (rewrite them with
//! `UPDATE_SNAPSHOTS=1 cargo test -p camel-wallet --test tui` after a deliberate change, and
//! read the diff). The keys are driven through `App::key`, as the terminal delivers them.

use camel_wallet::tui::{App, Command, JobForm, JobRow, Msg, NodeView, Tab, draw};
use camel_wallet::wallet::Balance;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

const REGTEST_VERSION: u8 = 0x6f;
const ADDRESS: &str = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r";

fn screen(app: &App, w: u16, h: u16) -> (String, Vec<Color>) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    let mut colors = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let c = &buf[(x, y)];
            out.push_str(c.symbol());
            colors.push(c.fg);
        }
        out.push('\n');
    }
    (out, colors)
}

fn snapshot(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(text, want, "screen {name} differs from its snapshot");
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn typed(app: &mut App, s: &str) {
    for ch in s.chars() {
        assert_eq!(app.key(key(KeyCode::Char(ch))), None);
    }
}

fn fixture() -> App {
    let mut app = App::new(true, REGTEST_VERSION);
    app.apply(Msg::Balance(Balance {
        spendable_base: 1_249_996_000,
        immature_base: 5_000_000_000,
        coins: 3,
        verified_height: 212,
        behind: vec![],
    }));
    app.apply(Msg::Address(ADDRESS.into()));
    app.apply(Msg::Models(vec![
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
    ]));
    app.apply(Msg::Nodes(vec![
        NodeView {
            url: "http://127.0.0.1:8732".into(),
            height: 212,
            tip: "5c1f".repeat(16),
            verified: true,
            peers: 2,
        },
        NodeView {
            url: "http://127.0.0.1:8733".into(),
            height: 40,
            tip: "0bad".repeat(16),
            verified: false,
            peers: 0,
        },
    ]));
    app.apply(Msg::Job(JobRow {
        job_id: "9f".repeat(32),
        state: "settled".into(),
        output: Some(" mammals that live in the Andes.".into()),
        verdicts: vec![
            "verdict by 02a1b2c3d4e5…: valid (8 positions checked)".into(),
            "verdict by 03f0e1d2c3b4…: valid (8 positions checked)".into(),
        ],
    }));
    app
}

#[test]
fn every_tab_matches_its_snapshot() {
    let mut app = fixture();
    for (tab, name) in [
        (Tab::Wallet, "wallet"),
        (Tab::Send, "send"),
        (Tab::Jobs, "jobs"),
        (Tab::Network, "network"),
    ] {
        app.tab = tab;
        let (text, _) = screen(&app, 100, 30);
        snapshot(name, &text);
    }
    // The minimum size still draws every tab.
    app.tab = Tab::Wallet;
    let (text, _) = screen(&app, 80, 24);
    snapshot("wallet-80x24", &text);
    assert!(
        text.contains(ADDRESS),
        "the address as text beside the QR code"
    );
}

#[test]
fn the_wallet_tab_shows_the_balance_split_and_a_qr_code() {
    let app = fixture();
    let (text, _) = screen(&app, 100, 30);
    assert!(text.contains("spendable  1249996000 base units"), "{text}");
    assert!(text.contains("immature   5000000000 base units"));
    assert!(text.contains("verified   headers to height 212"));
    assert!(
        text.contains('▀') || text.contains('█'),
        "a QR code: {text}"
    );
}

#[test]
fn a_small_terminal_says_what_it_needs_instead_of_cropping() {
    let app = fixture();
    let (text, _) = screen(&app, 60, 20);
    assert!(text.contains("needs 80×24"), "{text}");
    assert!(!text.contains('▀'), "no cropped QR code");
    snapshot("too-small", &text);
}

#[test]
fn the_send_form_checks_inline_and_the_confirmation_defaults_to_cancel() {
    let mut app = fixture();
    app.tab = Tab::Send;
    app.key(key(KeyCode::Enter));
    assert!(app.typing);
    // q is text while typing, not quit.
    typed(&mut app, "q1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2");
    let (text, _) = screen(&app, 100, 30);
    assert!(
        text.contains("not an address of this wallet's network"),
        "{text}"
    );
    snapshot("send-invalid", &text);
    for _ in 0..40 {
        app.key(key(KeyCode::Backspace));
    }
    typed(&mut app, ADDRESS);
    app.key(key(KeyCode::Tab));
    typed(&mut app, "999999999999");
    let (text, _) = screen(&app, 100, 30);
    assert!(text.contains("more than the spendable balance"), "{text}");
    for _ in 0..12 {
        app.key(key(KeyCode::Backspace));
    }
    typed(&mut app, "250000");
    app.key(key(KeyCode::Esc));
    assert!(!app.typing);
    // s opens the confirmation with Cancel focused: Enter cancels.
    assert_eq!(app.key(key(KeyCode::Char('s'))), None);
    assert_eq!(app.confirm, Some(true));
    let (text, _) = screen(&app, 100, 30);
    snapshot("send-confirm", &text);
    assert_eq!(app.key(key(KeyCode::Enter)), None);
    assert_eq!(app.confirm, None, "cancelled, nothing sent");
    // Again, moving to Send: the payment is asked of the runtime.
    app.key(key(KeyCode::Char('s')));
    app.key(key(KeyCode::Right));
    assert_eq!(
        app.key(key(KeyCode::Enter)),
        Some(Command::Send {
            to: ADDRESS.into(),
            amount: 250_000,
            fee_per_byte: 1
        })
    );
}

#[test]
fn keys_quit_help_tabs_and_errors() {
    let mut app = fixture();
    app.key(key(KeyCode::Char('?')));
    let (text, _) = screen(&app, 100, 30);
    assert!(
        text.contains(" Keys ") && text.contains("quit (not while typing)"),
        "{text}"
    );
    snapshot("help", &text);
    app.key(key(KeyCode::Char('x')));
    assert!(!app.help, "any key closes the help");
    app.key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Send);
    app.key(key(KeyCode::Char('4')));
    assert_eq!(app.tab, Tab::Network);
    app.key(key(KeyCode::Esc));
    assert_eq!(app.tab, Tab::Wallet);
    app.apply(Msg::Error(
        "cannot reach the node at http://127.0.0.1:8732 (is it running? --node)".into(),
    ));
    let (text, _) = screen(&app, 100, 30);
    assert!(text.contains("error: cannot reach the node"), "{text}");
    snapshot("error", &text);
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Command::Quit)
    );
    assert_eq!(app.key(key(KeyCode::Char('q'))), Some(Command::Quit));
}

#[test]
fn a_job_is_submitted_from_the_form() {
    let mut app = fixture();
    app.apply(Msg::Models(vec!["aa".repeat(32), "bb".repeat(32)]));
    app.tab = Tab::Jobs;
    // m picks the next model served.
    app.key(key(KeyCode::Char('m')));
    let (text, _) = screen(&app, 100, 30);
    assert!(
        text.contains("model bbbbbbbbbbbbbbbb… (2 of 2, m: next)"),
        "{text}"
    );
    app.key(key(KeyCode::Enter));
    typed(&mut app, "Llamas are");
    // To the temperature: 0.7.
    app.key(key(KeyCode::Tab));
    app.key(key(KeyCode::Tab));
    app.key(key(KeyCode::Backspace));
    typed(&mut app, "0.7");
    let (text, _) = screen(&app, 100, 30);
    snapshot("jobs-form", &text);
    assert_eq!(
        app.key(key(KeyCode::Enter)),
        Some(Command::Submit(JobForm {
            model: "bb".repeat(32),
            prompt: "Llamas are".into(),
            max_tokens: 16,
            temperature_milli: 700,
            reward: 50_000,
            fee: 2_000,
        }))
    );
    // A temperature out of range is refused with a reason (the focus is still on it).
    app.key(key(KeyCode::Enter));
    for _ in 0..3 {
        app.key(key(KeyCode::Backspace));
    }
    typed(&mut app, "11");
    assert_eq!(app.key(key(KeyCode::Enter)), None);
    assert!(app.status.as_ref().unwrap().1.contains("temperature"));
}

#[test]
fn the_jobs_list_filters_with_slash() {
    let mut app = fixture();
    app.apply(Msg::Job(JobRow {
        job_id: "a1".repeat(32),
        state: "refunded".into(),
        ..Default::default()
    }));
    app.tab = Tab::Jobs;
    let (text, _) = screen(&app, 100, 30);
    assert!(text.contains("a1a1a1a1a1a1… refunded") && text.contains("9f9f9f9f9f9f… settled"));
    app.key(key(KeyCode::Char('/')));
    // q is filter text, not quit.
    typed(&mut app, "settq");
    app.key(key(KeyCode::Backspace));
    app.key(key(KeyCode::Enter));
    let (text, _) = screen(&app, 100, 30);
    assert!(text.contains("Jobs /sett"), "{text}");
    assert!(
        text.contains("9f9f9f9f9f9f… settled") && !text.contains("a1a1a1a1a1a1…"),
        "{text}"
    );
    snapshot("jobs-filtered", &text);
    app.key(key(KeyCode::Char('/')));
    app.key(key(KeyCode::Esc));
    assert!(app.filter.is_empty());
}

#[test]
fn no_color_draws_without_colours() {
    let mut app = fixture();
    app.color = false;
    for tab in [Tab::Wallet, Tab::Send, Tab::Jobs, Tab::Network] {
        app.tab = tab;
        let (_, colors) = screen(&app, 100, 30);
        assert!(
            colors.iter().all(|c| *c == Color::Reset),
            "{tab:?} uses colour under NO_COLOR"
        );
    }
    let mut coloured = fixture();
    coloured.tab = Tab::Network;
    let (_, colors) = screen(&coloured, 100, 30);
    assert!(colors.iter().any(|c| *c != Color::Reset));
}

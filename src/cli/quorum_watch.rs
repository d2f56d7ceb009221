//! `kraft quorum watch`: refreshes the quorum's description every interval and shows it, as a
//! ratatui dashboard on a terminal, or as one plain line a refresh (and one a leader change)
//! when stdout is a pipe or a file.
//!
//! Owns the refresh loop and the terminal: raw mode and the alternate screen are entered by a
//! guard that restores them on every way out (quit, error, panic unwinding). It never formats
//! the quorum itself (`quorum_dashboard`).

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::CliError;
use super::quorum::{WatchArgs, now_ms, problem};
use super::quorum_client::{AdminClient, Description};
use super::quorum_dashboard::{Dashboard, utc_timestamp};

/// How often the terminal loop looks for a key press: short enough that q feels immediate.
const KEY_POLL: Duration = Duration::from_millis(100);

pub fn run(client: &AdminClient, args: &WatchArgs) -> Result<(), CliError> {
    match io::stdout().is_terminal() {
        true => run_terminal(client, args),
        false => run_plain(client, args),
    }
}

fn refresh(client: &AdminClient) -> Result<Description, String> {
    client.describe().map_err(|e| e.to_string())
}

/// One line a refresh, and one before it when the leader or epoch changed.
fn run_plain(client: &AdminClient, args: &WatchArgs) -> Result<(), CliError> {
    let interval = Duration::from_millis(args.interval_ms);
    let mut dashboard = Dashboard::default();
    let mut out = io::stdout().lock();
    let mut seen_leader = false;
    let mut done = 0u64;
    loop {
        let started = Instant::now();
        let outcome = refresh(client);
        let now = now_ms();
        let mut text = String::new();
        if let Some(change) = dashboard.observe(now, outcome) {
            if seen_leader {
                text.push_str(&format!(
                    "{} leader change: leader={} epoch={}\n",
                    utc_timestamp(change.at_ms),
                    change.leader_id,
                    change.epoch
                ));
            }
            seen_leader = true;
        }
        if let Some(change) = dashboard.take_voter_change() {
            text.push_str(&format!(
                "{} voter change: voters {}\n",
                utc_timestamp(change.at_ms),
                change.text()
            ));
        }
        text.push_str(&dashboard.plain_line(now));
        text.push('\n');
        // A reader that went away (`| head`) ends the watch quietly.
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
        done += 1;
        if args.count.is_some_and(|n| done >= n) {
            return Ok(());
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// Raw mode and the alternate screen, undone when dropped.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let guard = TerminalGuard;
        crossterm::execute!(io::stdout(), EnterAlternateScreen)?;
        Ok(guard)
    }
}

/// Leaves the alternate screen and raw mode; harmless when already left.
fn restore_terminal() {
    let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
    let _ = disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Restores the terminal before the panic is reported, so that the report is not drawn on
/// the alternate screen and lost with it.
fn restore_before_panic_reports() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        report(info);
    }));
}

fn run_terminal(client: &AdminClient, args: &WatchArgs) -> Result<(), CliError> {
    let (results, received) = mpsc::channel();
    let worker = client.clone();
    let interval = Duration::from_millis(args.interval_ms);
    // Refreshes run on their own thread so that a slow answer never delays a key press.
    std::thread::spawn(move || {
        loop {
            let started = Instant::now();
            if results.send(refresh(&worker)).is_err() {
                return;
            }
            std::thread::sleep(interval.saturating_sub(started.elapsed()));
        }
    });
    restore_before_panic_reports();
    let _guard = TerminalGuard::enter().map_err(problem)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout())).map_err(problem)?;
    let mut dashboard = Dashboard::default();
    let mut done = 0u64;
    loop {
        while let Ok(outcome) = received.try_recv() {
            dashboard.observe(now_ms(), outcome);
            done += 1;
        }
        let now = now_ms();
        terminal
            .draw(|frame| dashboard.render(frame, now))
            .map_err(problem)?;
        if args.count.is_some_and(|n| done >= n) || quit_pressed().map_err(problem)? {
            return Ok(());
        }
    }
}

/// Waits up to [`KEY_POLL`] for q, Esc or Ctrl-C.
fn quit_pressed() -> io::Result<bool> {
    if !event::poll(KEY_POLL)? {
        return Ok(false);
    }
    Ok(match event::read()? {
        Event::Key(key) if key.kind == KeyEventKind::Press => {
            matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL))
        }
        _ => false,
    })
}

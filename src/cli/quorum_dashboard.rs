//! The state behind `kraft quorum watch` and how it is shown: the latest description, the
//! commit rate history (from high watermark deltas), and the leader and voter-set changes
//! seen (a dynamic quorum's voters added or removed); drawn with
//! ratatui into any backend (the terminal, or a test buffer), or written as one plain line.
//!
//! Pure: every function takes "now" and the descriptions it is given; it never reads a socket,
//! the clock or the terminal.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table};

use super::quorum_client::Description;
use super::quorum_info::{QuorumInfo, ReplicaInfo};

/// Commit rate samples kept: two minutes at the default one-second refresh, wider than any
/// terminal shows.
const RATE_HISTORY: usize = 240;
/// Leader changes kept for the timeline; older ones scroll away.
const LEADER_CHANGES: usize = 50;
/// Characters of a lag bar; the replica furthest behind fills it.
const LAG_BAR_WIDTH: usize = 10;

/// A new leader or epoch, when it was first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderChange {
    pub at_ms: i64,
    pub leader_id: i32,
    pub epoch: i32,
}

/// A voter set that differed from the one the refresh before saw, when it was first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterChange {
    pub at_ms: i64,
    pub before: Vec<i32>,
    pub after: Vec<i32>,
}

impl VoterChange {
    /// `1,2 -> 1,2,3`.
    pub fn text(&self) -> String {
        let list = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        format!("{} -> {}", list(&self.before), list(&self.after))
    }
}

#[derive(Debug, Default)]
pub struct Dashboard {
    cluster_id: Option<String>,
    latest: Option<QuorumInfo>,
    updated_ms: Option<i64>,
    error: Option<String>,
    /// Committed offsets a second, newest last.
    rates: VecDeque<u64>,
    previous_hw: Option<(i64, i64)>,
    changes: VecDeque<LeaderChange>,
    voter_changes: VecDeque<VoterChange>,
    /// The last voter change, until `take_voter_change` hands it out.
    unreported_voter_change: Option<VoterChange>,
}

impl Dashboard {
    /// Takes one refresh's outcome at `now_ms`; returns the leader change it shows, if any.
    pub fn observe(
        &mut self,
        now_ms: i64,
        outcome: Result<Description, String>,
    ) -> Option<LeaderChange> {
        let description = match outcome {
            Ok(d) => d,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        self.error = None;
        let quorum = description.quorum;
        self.sample_rate(now_ms, quorum.high_watermark);
        let change = LeaderChange {
            at_ms: now_ms,
            leader_id: quorum.leader_id,
            epoch: quorum.leader_epoch,
        };
        let last = self.changes.back();
        let changed =
            last.is_none_or(|l| (l.leader_id, l.epoch) != (change.leader_id, change.epoch));
        if changed {
            if self.changes.len() == LEADER_CHANGES {
                self.changes.pop_front();
            }
            self.changes.push_back(change);
        }
        self.note_voters(now_ms, &quorum);
        self.cluster_id = Some(description.cluster_id);
        self.latest = Some(quorum);
        self.updated_ms = Some(now_ms);
        changed.then_some(change)
    }

    /// Records a voter set that differs from the last description's.
    fn note_voters(&mut self, now_ms: i64, quorum: &QuorumInfo) {
        let ids = |q: &QuorumInfo| {
            let mut ids: Vec<i32> = q.voters.iter().map(|v| v.id).collect();
            ids.sort_unstable();
            ids
        };
        let after = ids(quorum);
        let Some(before) = self.latest.as_ref().map(ids).filter(|b| *b != after) else {
            return;
        };
        let change = VoterChange {
            at_ms: now_ms,
            before,
            after,
        };
        if self.voter_changes.len() == LEADER_CHANGES {
            self.voter_changes.pop_front();
        }
        self.voter_changes.push_back(change.clone());
        self.unreported_voter_change = Some(change);
    }

    /// The voter change the last refreshes showed, once.
    pub fn take_voter_change(&mut self) -> Option<VoterChange> {
        self.unreported_voter_change.take()
    }

    fn sample_rate(&mut self, now_ms: i64, hw: i64) {
        if hw < 0 {
            return;
        }
        if let Some((before, at)) = self.previous_hw
            && now_ms > at
        {
            let rate = (hw - before).max(0) as u128 * 1000 / (now_ms - at) as u128;
            if self.rates.len() == RATE_HISTORY {
                self.rates.pop_front();
            }
            self.rates.push_back(rate.min(u128::from(u64::MAX)) as u64);
        }
        self.previous_hw = Some((hw, now_ms));
    }

    /// The latest commit rate, offsets a second.
    pub fn rate(&self) -> Option<u64> {
        self.rates.back().copied()
    }

    /// One line for a log file: time, leader, epoch, high watermark, commit rate, then each
    /// replica as `id:role:log-end-offset:lag:last-fetch-age` (or the error).
    pub fn plain_line(&self, now_ms: i64) -> String {
        let time = utc_timestamp(now_ms);
        if let Some(e) = &self.error {
            return format!("{time} error: {e}");
        }
        let Some(q) = &self.latest else {
            return format!("{time} no description yet");
        };
        let rate = self.rate().map_or("-".to_string(), |r| format!("{r}/s"));
        let replicas: Vec<String> = rows(q)
            .iter()
            .map(|(r, role, lag)| {
                let fetched = r.last_fetch_ms.map_or("never".to_string(), |ms| {
                    format!("{}ms", (now_ms - ms).max(0))
                });
                format!("{}:{role}:{}:{lag}:{fetched}", r.id, r.log_end_offset)
            })
            .collect();
        format!(
            "{time} leader={} epoch={} high_watermark={} commit_rate={rate} replicas={}",
            q.leader_id,
            q.leader_epoch,
            q.high_watermark,
            replicas.join(",")
        )
    }

    /// The dashboard, drawn into the whole frame.
    pub fn render(&self, frame: &mut Frame, now_ms: i64) {
        let replicas = self
            .latest
            .as_ref()
            .map_or(0, |q| q.voters.len() + q.observers.len());
        let [summary, table, rate, timeline, help] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(replicas as u16 + 3),
            Constraint::Length(6),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let cluster = self.cluster_id.as_deref().unwrap_or("?");
        let title = format!(" kraft quorum · cluster {cluster} ");
        frame.render_widget(
            Paragraph::new(self.summary(now_ms)).block(Block::bordered().title(title)),
            summary,
        );
        frame.render_widget(self.table(now_ms), table);
        let data: Vec<u64> = self.rates.iter().copied().collect();
        // The newest samples, right-aligned: as many as the sparkline is wide.
        let shown = &data[data
            .len()
            .saturating_sub(rate.width.saturating_sub(2) as usize)..];
        let rate_title = format!(
            " Commit rate (offsets/s): {} ",
            self.rate().map_or("-".to_string(), |r| r.to_string())
        );
        frame.render_widget(
            Sparkline::default()
                .block(Block::bordered().title(rate_title))
                .data(shown)
                .style(Style::default().fg(Color::Green)),
            rate,
        );
        let mut events: Vec<(i64, Line)> = self
            .changes
            .iter()
            .map(|c| {
                let text = format!(
                    "{}  epoch {}  leader {}",
                    utc_time_of_day(c.at_ms),
                    c.epoch,
                    leader_text(c.leader_id)
                );
                (c.at_ms, Line::from(text))
            })
            .collect();
        events.extend(self.voter_changes.iter().map(|c| {
            let text = format!("{}  voters {}", utc_time_of_day(c.at_ms), c.text());
            (c.at_ms, Line::from(text).yellow())
        }));
        // Newest first; at the same instant the voter change after the leader it was seen with.
        events.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let lines: Vec<Line> = events.into_iter().map(|(_, line)| line).collect();
        let title = " Leader and voter changes (newest first) ";
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title)),
            timeline,
        );
        frame.render_widget(Line::from(" q / Ctrl-C: quit").dim(), help);
    }

    fn summary(&self, now_ms: i64) -> Line<'static> {
        if let Some(e) = &self.error {
            return Line::from(format!("error: {e}")).red();
        }
        match (&self.latest, self.updated_ms) {
            (Some(q), Some(at)) => Line::from(format!(
                "leader {}  epoch {}  high watermark {}  updated {} ms ago",
                leader_text(q.leader_id),
                q.leader_epoch,
                q.high_watermark,
                (now_ms - at).max(0)
            )),
            _ => Line::from("waiting for the first description"),
        }
    }

    fn table(&self, now_ms: i64) -> Table<'static> {
        let header = Row::new(["Node", "Role", "LogEndOffset", "Lag", "LastFetch"]).bold();
        let rows: Vec<(ReplicaInfo, &str, i64)> =
            self.latest.as_ref().map(rows).unwrap_or_default();
        let max_lag = rows
            .iter()
            .map(|(_, _, lag)| *lag)
            .max()
            .unwrap_or(0)
            .max(1);
        let body = rows.iter().map(|(r, role, lag)| {
            Row::new([
                Cell::from(r.id.to_string()),
                Cell::from(role.to_string()),
                Cell::from(r.log_end_offset.to_string()),
                Cell::from(format!("{} {lag}", lag_bar(*lag, max_lag))),
                Cell::from(age(r.last_fetch_ms, now_ms)),
            ])
        });
        let widths = [
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(13),
            Constraint::Length(LAG_BAR_WIDTH as u16 + 12),
            Constraint::Min(12),
        ];
        Table::new(body, widths)
            .header(header)
            .block(Block::bordered().title(" Replicas "))
    }
}

/// Leader, other voters, observers, each with its role and lag behind the leader (0 when no
/// leader is known).
fn rows(q: &QuorumInfo) -> Vec<(ReplicaInfo, &'static str, i64)> {
    let leader_end = q.leader().map(|l| l.log_end_offset);
    let lag = |r: &ReplicaInfo| leader_end.map_or(0, |end| (end - r.log_end_offset).max(0));
    let leader = q.leader().map(|l| (l.clone(), "Leader", 0));
    let followers = q
        .voters
        .iter()
        .filter(|v| v.id != q.leader_id)
        .map(|v| (v.clone(), "Follower", lag(v)));
    let observers = q.observers.iter().map(|o| (o.clone(), "Observer", lag(o)));
    leader
        .into_iter()
        .chain(followers)
        .chain(observers)
        .collect()
}

fn leader_text(id: i32) -> String {
    match id {
        id if id < 0 => "none".to_string(),
        id => id.to_string(),
    }
}

/// `█` for each tenth of the largest lag (at least one for any lag), `░` for the rest.
fn lag_bar(lag: i64, max_lag: i64) -> String {
    let filled = match lag {
        0 => 0,
        _ => ((lag as u128 * LAG_BAR_WIDTH as u128).div_ceil(max_lag as u128) as usize)
            .clamp(1, LAG_BAR_WIDTH),
    };
    "█".repeat(filled) + &"░".repeat(LAG_BAR_WIDTH - filled)
}

/// "N ms ago", or "never" for an unknown time.
fn age(ms: Option<i64>, now_ms: i64) -> String {
    match ms {
        None => "never".to_string(),
        Some(ms) => format!("{} ms ago", (now_ms - ms).max(0)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{}.{:03}Z",
        utc_time_of_day(ms),
        ms.rem_euclid(1000)
    )
}

/// `HH:MM:SS` in UTC.
fn utc_time_of_day(ms: i64) -> String {
    let s = ms.rem_euclid(86_400_000) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_are_calendar_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc_timestamp(951_782_400_000 + 1_234),
            "2000-02-29T00:00:01.234Z"
        );
        assert_eq!(utc_timestamp(1_796_000_000_000), "2026-11-30T00:53:20.000Z");
    }

    #[test]
    fn lag_bars_scale_to_the_largest_lag() {
        assert_eq!(lag_bar(0, 10), "░".repeat(10));
        assert_eq!(lag_bar(10, 10), "█".repeat(10));
        assert_eq!(lag_bar(1, 1000), format!("█{}", "░".repeat(9)));
        assert_eq!(
            lag_bar(5, 10),
            format!("{}{}", "█".repeat(5), "░".repeat(5))
        );
    }
}

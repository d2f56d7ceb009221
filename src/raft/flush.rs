//! Group commit: when the replica's log is made durable. At most one flush is in flight; appends
//! made meanwhile share the next one, asked for when the current one completes. A leader with
//! `append_linger` set waits that long before asking, so that more appends share each fsync.
//!
//! Owns what a completed flush proves: the log end offset when the flush was asked for, capped
//! by any truncation or snapshot install that replaced records since. Executing the flush is the
//! node's job; this never touches a file or a clock.

use std::time::Duration;

use crate::types::Offset;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FlushState {
    /// The flush asked for and not yet completed: the most it can prove durable.
    in_flight: Option<Offset>,
    /// Appends arrived while a flush was in flight: flush again when it completes.
    wanted: bool,
    /// A leader's lingering flush is due at this time.
    linger_until: Option<Duration>,
}

/// What to do after a flush was wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlushStep {
    /// Ask the node to flush now.
    Flush,
    /// Nothing now: one is in flight or lingering.
    Wait,
}

impl FlushState {
    /// The log grew to `log_end`; `linger` is the wait before a flush (a leader's setting).
    pub(super) fn wanted(
        &mut self,
        log_end: Offset,
        now: Duration,
        linger: Option<Duration>,
    ) -> FlushStep {
        if self.in_flight.is_some() {
            self.wanted = true;
            return FlushStep::Wait;
        }
        match linger.filter(|l| !l.is_zero()) {
            Some(linger) => {
                self.linger_until.get_or_insert(now + linger);
                FlushStep::Wait
            }
            None => self.start(log_end),
        }
    }

    fn start(&mut self, log_end: Offset) -> FlushStep {
        self.linger_until = None;
        self.in_flight = Some(log_end);
        FlushStep::Flush
    }

    /// A lingering flush whose time came.
    pub(super) fn poll(&mut self, log_end: Offset, now: Duration) -> FlushStep {
        match self.linger_until {
            Some(due) if due <= now && self.in_flight.is_none() => self.start(log_end),
            _ => FlushStep::Wait,
        }
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        self.linger_until.filter(|_| self.in_flight.is_none())
    }

    /// Records at or above `offset` were replaced (truncation or snapshot install): a flush
    /// asked for earlier cannot vouch for what now stands there.
    pub(super) fn replaced_from(&mut self, offset: Offset) {
        if let Some(target) = &mut self.in_flight {
            *target = (*target).min(offset);
        }
    }

    /// The flush in flight completed, reporting `reported` durable. Returns what it proves
    /// (`None` for a completion nobody asked for) and whether another flush is wanted.
    pub(super) fn completed(&mut self, reported: Offset) -> (Option<Offset>, bool) {
        let proven = self.in_flight.take().map(|target| target.min(reported));
        (proven, std::mem::take(&mut self.wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1);

    #[test]
    fn one_flush_in_flight_and_the_next_covers_what_came_meanwhile() {
        let mut f = FlushState::default();
        assert_eq!(f.wanted(Offset(5), T0, None), FlushStep::Flush);
        assert_eq!(f.wanted(Offset(9), T0, None), FlushStep::Wait);
        assert_eq!(f.completed(Offset(5)), (Some(Offset(5)), true));
        assert_eq!(f.wanted(Offset(9), T0, None), FlushStep::Flush);
        assert_eq!(f.completed(Offset(9)), (Some(Offset(9)), false));
    }

    #[test]
    fn a_flush_from_before_a_truncation_does_not_vouch_for_what_replaced_the_records() {
        let mut f = FlushState::default();
        assert_eq!(f.wanted(Offset(21), T0, None), FlushStep::Flush);
        // Truncated to 15, then the log grew again to 30 before the flush completed.
        f.replaced_from(Offset(15));
        assert_eq!(f.wanted(Offset(30), T0, None), FlushStep::Wait);
        assert_eq!(f.completed(Offset(30)), (Some(Offset(15)), true));
        // A completion nobody asked for proves nothing.
        assert_eq!(f.completed(Offset(30)).0, None);
    }

    #[test]
    fn a_lingering_flush_waits_for_its_time() {
        let mut f = FlushState::default();
        let linger = Some(Duration::from_millis(5));
        assert_eq!(f.wanted(Offset(1), T0, linger), FlushStep::Wait);
        assert_eq!(f.wanted(Offset(2), T0, linger), FlushStep::Wait);
        assert_eq!(f.deadline(), Some(T0 + Duration::from_millis(5)));
        assert_eq!(f.poll(Offset(2), T0), FlushStep::Wait);
        assert_eq!(
            f.poll(Offset(2), T0 + Duration::from_millis(5)),
            FlushStep::Flush
        );
        assert_eq!(f.deadline(), None);
        assert_eq!(f.completed(Offset(2)), (Some(Offset(2)), false));
    }
}

//! Kafka's windowed statistics (`SampledStat`): the avg, max and rate a Kafka sensor reports.
//!
//! Owns the sampling rules only: values recorded into a ring of samples, each covering at most
//! [`WINDOW_MS`]; a sample with no event for [`SAMPLES`] windows is forgotten; a rate divides by
//! the time the kept samples span (at least `SAMPLES - 1` windows). Times are milliseconds on a
//! caller's monotonic clock, so the math is testable without waiting. It must never read a clock
//! or lock: [`super::NodeMetrics`] does both.

/// Samples a sensor keeps (Kafka's `MetricConfig` default, `metrics.num.samples`).
pub const SAMPLES: usize = 2;
/// The span one sample covers (Kafka's default `metrics.sample.window.ms`, 30 s).
pub const WINDOW_MS: u64 = 30_000;
/// The ring's length: Kafka keeps one sample more than it reports, so that the window still
/// overlaps `SAMPLES` whole windows when the newest has just started.
const RING: usize = SAMPLES + 1;

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    last_event_ms: u64,
    count: u64,
    sum: f64,
    max: f64,
}

impl Sample {
    fn new(now_ms: u64) -> Self {
        Sample {
            start_ms: now_ms,
            last_event_ms: now_ms,
            count: 0,
            sum: 0.0,
            max: f64::NEG_INFINITY,
        }
    }

    fn is_complete(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.start_ms) >= WINDOW_MS
    }
}

/// One sensor's samples: Kafka's `Avg`, `Max` and `WindowedSum` recorded together (they share
/// a sensor, so their samples start and end at the same times).
#[derive(Debug, Clone, Default)]
pub struct Windowed {
    samples: Vec<Sample>,
    current: usize,
}

impl Windowed {
    /// Records one event of `value` at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
        }
        if self.samples[self.current].is_complete(now_ms) {
            self.advance(now_ms);
        }
        let sample = &mut self.samples[self.current];
        sample.sum += value;
        sample.max = sample.max.max(value);
        sample.count += 1;
        sample.last_event_ms = now_ms;
    }

    fn advance(&mut self, now_ms: u64) {
        self.current = (self.current + 1) % RING;
        if self.current >= self.samples.len() {
            self.samples.push(Sample::new(now_ms));
        } else {
            self.samples[self.current] = Sample::new(now_ms);
        }
    }

    /// Forgets samples with no event in the last `SAMPLES` windows (a sample that started
    /// earlier but had an event since is kept).
    fn purge(&mut self, now_ms: u64) {
        let expire = SAMPLES as u64 * WINDOW_MS;
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.last_event_ms) >= expire {
                *sample = Sample::new(now_ms);
            }
        }
    }

    /// The sum of the kept samples' values. Folded from +0.0: `Sum` for floats starts at -0.0,
    /// and an empty window would render as "-0.0".
    fn total(&self) -> f64 {
        self.samples.iter().fold(0.0, |total, s| total + s.sum)
    }

    /// The mean of the values recorded in the window; NaN when there were none (as Kafka).
    pub fn avg(&mut self, now_ms: u64) -> f64 {
        self.purge(now_ms);
        let count: u64 = self.samples.iter().map(|s| s.count).sum();
        if count == 0 {
            return f64::NAN;
        }
        self.total() / count as f64
    }

    /// The largest value recorded in the window; NaN when there were none (as Kafka).
    pub fn max(&mut self, now_ms: u64) -> f64 {
        self.purge(now_ms);
        let count: u64 = self.samples.iter().map(|s| s.count).sum();
        if count == 0 {
            return f64::NAN;
        }
        self.samples
            .iter()
            .map(|s| s.max)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The sum of the window's values per second (Kafka's `Rate` over a `WindowedSum`).
    pub fn rate_per_second(&mut self, now_ms: u64) -> f64 {
        let span_ms = self.span_ms(now_ms);
        let sum = self.total();
        sum / (span_ms as f64 / 1000.0)
    }

    /// The time the kept samples cover: from the oldest sample's start, counted as at least
    /// `SAMPLES - 1` whole windows (so a young sensor does not report a huge rate), and never 0.
    fn span_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full_windows = elapsed / WINDOW_MS;
        let min_full = SAMPLES as u64 - 1;
        if full_windows < min_full {
            elapsed += (min_full - full_windows) * WINDOW_MS;
        }
        elapsed.max(1)
    }
}

/// Kafka's `TimeRatio` as a window: the fraction of the last windows spent idle. Kafka's own
/// resets on every read, which would make two readers (the endpoint and `NodeHandle::metrics`)
/// steal each other's interval; this one sums busy time in [`Windowed`] samples and divides by
/// the span they cover, so every reader sees the same figure.
#[derive(Debug, Clone, Default)]
pub struct IdleRatio {
    busy: Windowed,
    first_ms: Option<u64>,
}

impl IdleRatio {
    /// Records `busy_ms` of work that ended at `now_ms`.
    pub fn record_busy(&mut self, busy_ms: f64, now_ms: u64) {
        self.first_ms
            .get_or_insert(now_ms.saturating_sub(busy_ms as u64));
        self.busy.record(busy_ms, now_ms);
    }

    /// Idle time over the window, between 0 and 1; 1 before any work (Kafka's default ratio).
    pub fn idle_ratio(&mut self, now_ms: u64) -> f64 {
        let Some(first) = self.first_ms else {
            return 1.0;
        };
        // A young node has not lived a whole window: divide by the time it has.
        let span = self
            .busy
            .span_ms(now_ms)
            .min(now_ms.saturating_sub(first).max(1));
        let busy = self.busy.total();
        (1.0 - busy / span as f64).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_and_max_are_nan_without_events() {
        let mut w = Windowed::default();
        assert!(w.avg(0).is_nan());
        assert!(w.max(0).is_nan());
        let rate = w.rate_per_second(0);
        assert!(rate == 0.0 && rate.is_sign_positive(), "{rate}");
    }

    #[test]
    fn avg_and_max_cover_the_kept_samples() {
        let mut w = Windowed::default();
        w.record(10.0, 1_000);
        w.record(30.0, 2_000);
        // A new sample starts once the first has covered its window.
        w.record(50.0, 1_000 + WINDOW_MS);
        assert_eq!(w.avg(1_000 + WINDOW_MS), 30.0);
        assert_eq!(w.max(1_000 + WINDOW_MS), 50.0);
    }

    #[test]
    fn samples_without_events_for_two_windows_are_forgotten() {
        let mut w = Windowed::default();
        w.record(100.0, 0);
        w.record(2.0, WINDOW_MS + 5);
        // 60 s after the first event it is gone; the second is still there.
        let now = SAMPLES as u64 * WINDOW_MS;
        assert_eq!(w.max(now), 2.0);
        assert_eq!(w.avg(now), 2.0);
        // And after 60 s without events, nothing is left.
        assert!(w.avg(WINDOW_MS + 5 + SAMPLES as u64 * WINDOW_MS).is_nan());
    }

    #[test]
    fn the_ring_reuses_the_oldest_sample() {
        let mut w = Windowed::default();
        for i in 0..5u64 {
            w.record(i as f64, i * WINDOW_MS);
        }
        // Samples of 2, 3 and 4 are kept (three in the ring); 2 is purged 60 s after its event.
        let now = 4 * WINDOW_MS;
        assert_eq!(w.max(now), 4.0);
        assert_eq!(w.avg(now), 3.5);
    }

    #[test]
    fn a_young_rate_divides_by_at_least_one_window() {
        let mut w = Windowed::default();
        w.record(300.0, 0);
        // After 1 s: the missing whole window is added to the elapsed time (Kafka's rule), so
        // 300 records over 31 s.
        assert_eq!(w.rate_per_second(1_000), 300.0 / 31.0);
    }

    #[test]
    fn an_older_rate_divides_by_the_span_of_the_samples() {
        let mut w = Windowed::default();
        w.record(1_000.0, 0);
        w.record(1_000.0, WINDOW_MS);
        w.record(1_000.0, 40_000);
        // Samples started at 0 and 30 s: 3000 records over 50 s.
        assert_eq!(w.rate_per_second(50_000), 60.0);
    }

    #[test]
    fn idle_ratio_is_one_before_work_and_falls_with_busy_time() {
        let mut r = IdleRatio::default();
        assert_eq!(r.idle_ratio(10), 1.0);
        r.record_busy(250.0, 1_000);
        r.record_busy(250.0, 2_000);
        // 500 ms busy out of the 1250 ms since the first work began.
        assert!((r.idle_ratio(2_000) - 0.6).abs() < 1e-9);
        // Later, the same busy time is a smaller share of the span since the sample began.
        let later = r.idle_ratio(WINDOW_MS + 2_000);
        let span = (WINDOW_MS + 2_000 - 1_000) as f64;
        assert!((later - (1.0 - 500.0 / span)).abs() < 1e-9, "{later}");
    }
}

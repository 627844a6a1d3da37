//! Per-node clocks: offset and drift relative to true (virtual) time.
//!
//! A node's local clock reads `local = base_local + (true − base_true) × (1 + drift_ppm / 10⁶)`.
//! Changing the drift re-bases the clock at the current instant so the reading stays continuous, and
//! a jump can only move it forward: like `CLOCK_MONOTONIC`, a node's clock never runs backwards within
//! one incarnation. Skew between nodes is what breaks lease-based reads when the drift bound a
//! protocol assumes does not hold – the simulator must be able to show that.

use concord_core::Time;
use std::time::Duration;

/// Drift is kept in parts per billion and all arithmetic is integer, so clock readings are exact
/// and identical on every platform.
#[derive(Clone, Debug)]
pub struct Clock {
    base_true: u64,
    base_local: u64,
    drift_ppb: i64,
}

const BILLION: i128 = 1_000_000_000;

impl Clock {
    pub fn new(offset: Duration, drift_ppm: f64) -> Self {
        Clock { base_true: 0, base_local: offset.as_nanos() as u64, drift_ppb: ppb(drift_ppm) }
    }

    /// The local reading at true time `now`.
    pub fn local(&self, now: Time) -> Time {
        let elapsed = i128::from(now.0.saturating_sub(self.base_true));
        let local = i128::from(self.base_local) + elapsed + elapsed * i128::from(self.drift_ppb) / BILLION;
        Time(local.clamp(0, i128::from(u64::MAX)) as u64)
    }

    /// How much true time passes while this clock advances by `local` (timers are set in local time).
    pub fn true_duration(&self, local: Duration) -> Duration {
        if self.drift_ppb == 0 {
            return local;
        }
        let rate = BILLION + i128::from(self.drift_ppb);
        let nanos = (local.as_nanos() as i128 * BILLION + rate - 1) / rate; // rounded up
        Duration::from_nanos(nanos.clamp(0, i128::from(u64::MAX)) as u64)
    }

    /// Jump forward by `jump` and run at `drift_ppm` from true time `now` on.
    pub fn adjust(&mut self, now: Time, jump: Duration, drift_ppm: f64) {
        let reading = self.local(now);
        self.base_true = now.0;
        self.base_local = reading.0 + jump.as_nanos() as u64;
        self.drift_ppb = ppb(drift_ppm);
    }

    pub fn drift_ppm(&self) -> f64 {
        self.drift_ppb as f64 / 1_000.0
    }
}

/// Parts per million to parts per billion, bounded to ±50% so a clock never stops or reverses.
fn ppb(ppm: f64) -> i64 {
    (ppm * 1_000.0).round().clamp(-500_000_000.0, 500_000_000.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_and_drift_shift_the_local_clock() {
        let c = Clock::new(Duration::from_millis(100), 1_000.0);
        // One true second later a +1000 ppm clock has advanced 1.001 s past its 100 ms offset.
        assert_eq!(c.local(Time(1_000_000_000)), Time(1_101_000_000));
        // A 1.001 s local timer takes one true second.
        assert_eq!(c.true_duration(Duration::from_millis(1001)), Duration::from_secs(1));
    }

    #[test]
    fn adjusting_is_continuous_and_forward_only() {
        let mut c = Clock::new(Duration::ZERO, 0.0);
        let t = Time(5_000_000_000);
        c.adjust(t, Duration::from_millis(250), -500.0);
        assert_eq!(c.local(t), Time(5_250_000_000));
        assert_eq!(c.local(Time(6_000_000_000)), Time(6_249_500_000));
    }
}

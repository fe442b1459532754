//! A group member's health: a circuit breaker fed by call outcomes, and a group's retry budget. Pure
//! state machines on the engine's injected time; the engine decides what an outcome is.
//!
//! Breaker: **closed** (calls flow) → **open** after `failures` consecutive failures, or when at
//! least `min_calls` calls in the last `window_ms` (counted in tenths of it) failed at `error_rate`
//! or more → after a
//! cooldown, **half-open**: one trial (the engine's probe) → success closes it, failure opens it
//! again with the cooldown doubled, up to `max_cooldown_ms`. A member that stays closed for
//! `max_cooldown_ms` starts again from the base cooldown.
//!
//! Retry budget: extra attempts (retries and failovers of calls that may have run) are allowed while
//! they stay under `ratio` of the first attempts in the last `window_ms`, with `min` always allowed,
//! so an outage cannot multiply the load on a dying member.

use crate::config::{BreakerPolicy, RetryPolicy};

/// Milliseconds on the engine's injected clock.
type Millis = u64;

/// Counts over a sliding window, kept in ten buckets of a tenth of the window each: constant time
/// and no allocation per call, at the price of a window that slides a bucket at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// (bucket number, first count, second count); a bucket number is `now / (window / 10)`.
    buckets: [(u64, u32, u32); 10],
    last: u64,
}

impl Window {
    fn slot(window_ms: u64, now: Millis) -> u64 {
        now / (window_ms / 10).max(1)
    }

    /// Add to the counts of the bucket `now` falls in.
    pub fn add(&mut self, window_ms: u64, now: Millis, a: u32, b: u32) {
        let n = Self::slot(window_ms, now);
        let cell = &mut self.buckets[(n % 10) as usize];
        if cell.0 != n {
            *cell = (n, 0, 0);
        }
        cell.1 = cell.1.saturating_add(a);
        cell.2 = cell.2.saturating_add(b);
        self.last = self.last.max(n);
    }

    /// Both counts over the last ten buckets as of `now` (or of the last addition, if `None`).
    pub fn sums(&self, window_ms: u64, now: Option<Millis>) -> (u32, u32) {
        let n = now.map_or(self.last, |t| Self::slot(window_ms, t));
        self.buckets
            .iter()
            .filter(|c| c.0 + 10 > n && c.0 <= n && (c.1 > 0 || c.2 > 0))
            .fold((0, 0), |(a, b), c| (a + c.1, b + c.2))
    }

    fn clear(&mut self) {
        self.buckets = Default::default();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Ejected until the cooldown ends.
    Open {
        until: Millis,
    },
    /// The cooldown ended: one trial decides.
    HalfOpen,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// What changed, for the log and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Opened, with the cooldown it got and why.
    Opened {
        cooldown_ms: u64,
        why: Why,
    },
    HalfOpened,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Consecutive(u32),
    /// Failed calls out of calls in the window.
    Rate(u32, u32),
    TrialFailed,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    consecutive: u32,
    /// Recent outcomes: (calls, failures).
    window: Window,
    /// Times opened in a row (the next cooldown doubles with each).
    ejections: u32,
    /// When it last closed (an ejection streak ends after a quiet while).
    closed_at: Millis,
    pub failures_total: u64,
    pub transitions: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive: 0,
            window: Window::default(),
            ejections: 0,
            closed_at: 0,
            failures_total: 0,
            transitions: 0,
        }
    }
}

impl Breaker {
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether client calls may go to this member now.
    pub fn allows(&self) -> bool {
        self.state == BreakerState::Closed
    }

    /// Failures among the outcomes still in the window, as of the latest one.
    pub fn recent_failures(&self, p: &BreakerPolicy) -> usize {
        self.window.sums(p.window_ms, None).1 as usize
    }

    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// When [`Breaker::poll`] has something to do.
    pub fn deadline(&self) -> Option<Millis> {
        match self.state {
            BreakerState::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Open → half-open once the cooldown is over.
    pub fn poll(&mut self, now: Millis) -> Option<Transition> {
        match self.state {
            BreakerState::Open { until } if until <= now => {
                self.state = BreakerState::HalfOpen;
                self.transitions += 1;
                Some(Transition::HalfOpened)
            }
            _ => None,
        }
    }

    pub fn success(&mut self, now: Millis, p: &BreakerPolicy) -> Option<Transition> {
        self.consecutive = 0;
        self.record(now, false, p);
        match self.state {
            BreakerState::HalfOpen => {
                self.state = BreakerState::Closed;
                self.closed_at = now;
                self.window.clear();
                self.transitions += 1;
                Some(Transition::Closed)
            }
            _ => None,
        }
    }

    pub fn failure(&mut self, now: Millis, p: &BreakerPolicy) -> Option<Transition> {
        self.failures_total += 1;
        self.consecutive += 1;
        self.record(now, true, p);
        let why = match self.state {
            BreakerState::Open { .. } => return None,
            BreakerState::HalfOpen => Why::TrialFailed,
            BreakerState::Closed => {
                let (n, failed) = self.window.sums(p.window_ms, Some(now));
                if self.consecutive >= p.failures {
                    Why::Consecutive(self.consecutive)
                } else if n >= p.min_calls && f64::from(failed) >= p.error_rate * f64::from(n) {
                    Why::Rate(failed, n)
                } else {
                    return None;
                }
            }
        };
        if self.state == BreakerState::Closed && now.saturating_sub(self.closed_at) >= p.max_cooldown_ms {
            self.ejections = 0;
        }
        let cooldown = p.cooldown_ms.saturating_mul(1u64 << self.ejections.min(20)).min(p.max_cooldown_ms);
        self.ejections = self.ejections.saturating_add(1);
        self.state = BreakerState::Open { until: now.saturating_add(cooldown) };
        self.transitions += 1;
        self.window.clear();
        self.consecutive = 0;
        Some(Transition::Opened { cooldown_ms: cooldown, why })
    }

    fn record(&mut self, now: Millis, failed: bool, p: &BreakerPolicy) {
        self.window.add(p.window_ms, now, 1, u32::from(failed));
    }
}

/// A group's allowance for extra attempts.
#[derive(Debug, Clone, Default)]
pub struct RetryBudget {
    /// (first attempts, extra attempts) in the budget window.
    window: Window,
    pub refused: u64,
}

impl RetryBudget {
    pub fn first_attempt(&mut self, now: Millis, p: &RetryPolicy) {
        self.window.add(p.budget_window_ms, now, 1, 0);
    }

    /// Spend one extra attempt if the budget allows it.
    pub fn try_spend(&mut self, now: Millis, p: &RetryPolicy) -> bool {
        let (firsts, extras) = self.window.sums(p.budget_window_ms, Some(now));
        // `as` truncates toward zero: the floor, for a product that is never negative.
        let allowed = (p.budget_ratio * f64::from(firsts)) as u32 + p.budget_min;
        if extras < allowed {
            self.window.add(p.budget_window_ms, now, 0, 1);
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// The delay before extra attempt `n` (1-based) on the same member: exponential from `backoff_ms`,
/// capped at `max_backoff_ms`, with full jitter (`r` is a random number).
pub fn backoff(n: u32, p: &RetryPolicy, r: u64) -> Millis {
    let cap = p.backoff_ms.saturating_mul(1u64 << n.saturating_sub(1).min(20)).min(p.max_backoff_ms);
    if cap == 0 {
        0
    } else {
        cap / 2 + r % (cap / 2 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            error_rate: 0.5,
            window_ms: 10_000,
            min_calls: 6,
            cooldown_ms: 1_000,
            max_cooldown_ms: 4_000,
            probe_timeout_ms: 1,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_the_cooldown_doubles_up_to_its_cap() {
        let p = policy();
        let mut b = Breaker::default();
        assert_eq!(b.failure(0, &p), None);
        assert_eq!(b.failure(1, &p), None);
        assert_eq!(b.failure(2, &p), Some(Transition::Opened { cooldown_ms: 1_000, why: Why::Consecutive(3) }));
        assert!(!b.allows());
        assert_eq!(b.poll(999), None);
        assert_eq!(b.poll(1_002), Some(Transition::HalfOpened));
        assert!(!b.allows(), "half-open lets only the trial through");
        assert_eq!(b.failure(1_003, &p), Some(Transition::Opened { cooldown_ms: 2_000, why: Why::TrialFailed }));
        assert_eq!(b.poll(3_003), Some(Transition::HalfOpened));
        assert!(matches!(b.failure(3_004, &p), Some(Transition::Opened { cooldown_ms: 4_000, .. })));
        assert_eq!(b.poll(7_004), Some(Transition::HalfOpened));
        assert!(matches!(b.failure(7_005, &p), Some(Transition::Opened { cooldown_ms: 4_000, .. })), "capped");
        assert_eq!(b.poll(11_005), Some(Transition::HalfOpened));
        assert_eq!(b.success(11_006, &p), Some(Transition::Closed));
        assert!(b.allows());
    }

    #[test]
    fn opens_on_the_error_rate_with_enough_calls_and_forgets_old_outcomes() {
        let p = policy();
        let mut b = Breaker::default();
        // Alternate: never three in a row, but half of six calls fail.
        for t in 0..5 {
            let tr = if t % 2 == 0 { b.failure(t, &p) } else { b.success(t, &p) };
            assert_eq!(tr, None, "at {t}");
        }
        assert_eq!(b.success(5, &p), None, "3 of 6 failed but the last call succeeded: the rate is checked on failure");
        assert_eq!(b.failure(6, &p), Some(Transition::Opened { cooldown_ms: 1_000, why: Why::Rate(4, 7) }));
        // Old outcomes leave the window.
        let mut b = Breaker::default();
        for t in 0..3 {
            b.failure(t * 10_000, &p);
            b.success(t * 10_000 + 1, &p);
        }
        assert!(b.allows());
        assert!(b.recent_failures(&p) <= 1);
    }

    #[test]
    fn an_ejection_streak_ends_after_a_quiet_while() {
        let p = policy();
        let mut b = Breaker::default();
        for t in 0..3 {
            b.failure(t, &p);
        }
        b.poll(2_000);
        b.success(2_001, &p);
        // Long after: the next ejection gets the base cooldown again.
        for t in 0..3 {
            b.failure(100_000 + t, &p);
        }
        assert_eq!(b.deadline(), Some(100_002 + 1_000));
    }

    #[test]
    fn the_budget_bounds_extra_attempts_to_a_fraction_of_traffic() {
        let p = RetryPolicy { budget_ratio: 0.2, budget_min: 2, budget_window_ms: 10_000, ..RetryPolicy::default() };
        let mut r = RetryBudget::default();
        for t in 0..100 {
            r.first_attempt(t, &p);
        }
        let spent = (0..100).filter(|_| r.try_spend(100, &p)).count();
        assert_eq!(spent, 22);
        assert_eq!(r.refused, 78);
        // A window later the allowance is back to the minimum.
        assert!(r.try_spend(20_000, &p) && r.try_spend(20_000, &p) && !r.try_spend(20_000, &p));
    }

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let p = RetryPolicy { backoff_ms: 100, max_backoff_ms: 1_000, ..RetryPolicy::default() };
        for r in [0, 7, u64::MAX] {
            let d: Vec<_> = (1..=6).map(|n| backoff(n, &p, r)).collect();
            assert!((50..=100).contains(&d[0]) && (100..=200).contains(&d[1]), "{d:?}");
            assert!(d.iter().all(|x| *x <= 1_000), "{d:?}");
        }
    }
}

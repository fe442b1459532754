//! Limits on what one caller may ask of the gateway: a token bucket of requests per principal (per
//! session when unauthenticated), calls in flight per session, sessions per principal, and the size
//! of an upstream's reply. Time is the engine's injected clock.
//!
//! ```toml
//! [limits]
//! requests_per_minute = 600            # per principal; the bucket holds `burst` (default: the same)
//! burst = 600
//! max_in_flight_per_session = 64
//! max_sessions_per_principal = 256
//! max_upstream_response_bytes = 16777216
//! ```

use crate::prelude::*;

use crate::Millis;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `None`: no rate limit.
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub max_in_flight_per_session: Option<usize>,
    pub max_sessions_per_principal: Option<usize>,
    pub max_upstream_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_minute: None,
            burst: None,
            max_in_flight_per_session: Some(64),
            max_sessions_per_principal: None,
            max_upstream_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A request over the rate: when to come back, and the limit's figures for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    pub retry_after_ms: Millis,
    pub limit: u32,
    pub window_s: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

/// Token buckets by key (a principal's name, or a session's).
#[derive(Debug, Default)]
pub struct Buckets {
    buckets: HashMap<String, Bucket>,
}

/// Buckets kept before full ones (idle callers) are forgotten.
const KEEP: usize = 4096;

impl Buckets {
    /// Take one token for `key`, or say when one will be there.
    pub fn take(&mut self, limits: &Limits, key: &str, now: Millis) -> Result<(), OverLimit> {
        let Some(rpm) = limits.requests_per_minute.filter(|&r| r > 0) else { return Ok(()) };
        let cap = limits.burst.unwrap_or(rpm).max(1) as f64;
        let rate = rpm as f64 / 60_000.0; // tokens per ms
        if self.buckets.len() >= KEEP && !self.buckets.contains_key(key) {
            self.buckets.retain(|_, b| b.tokens + now.saturating_sub(b.at) as f64 * rate < cap);
        }
        let b = self.buckets.entry(key.to_string()).or_insert(Bucket { tokens: cap, at: now });
        b.tokens = (b.tokens + now.saturating_sub(b.at) as f64 * rate).min(cap);
        b.at = now.max(b.at);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ceil_ms((1.0 - b.tokens) / rate);
        Err(OverLimit { retry_after_ms: wait.max(1), limit: rpm, window_s: 60 })
    }

    /// Tokens left for `key` (whole ones), for the `RateLimit` header.
    pub fn remaining(&self, key: &str) -> u32 {
        self.buckets.get(key).map_or(0, |b| b.tokens.max(0.0) as u32)
    }
}

/// Read `[limits]`; errors name the key at fault.
pub fn read_limits(v: Option<&Value>) -> Result<Limits, String> {
    let mut l = Limits::default();
    let Some(v) = v else { return Ok(l) };
    let Some(o) = v.as_object() else { return Err("limits must be a table".into()) };
    for (k, v) in o {
        let n = v.as_u64().ok_or_else(|| format!("limits.{k} must be a whole number"))?;
        let small = || u32::try_from(n).map_err(|_| format!("limits.{k}: {n} is too large"));
        match k.as_str() {
            "requests_per_minute" => l.requests_per_minute = Some(small()?).filter(|&n| n > 0),
            "burst" => l.burst = Some(small()?.max(1)),
            "max_in_flight_per_session" => l.max_in_flight_per_session = Some(n as usize).filter(|&n| n > 0),
            "max_sessions_per_principal" => l.max_sessions_per_principal = Some(n as usize).filter(|&n| n > 0),
            "max_upstream_response_bytes" if n >= 1024 => l.max_upstream_response_bytes = n as usize,
            "max_upstream_response_bytes" => return Err(format!("limits.{k}: {n} is below 1024 bytes")),
            _ => {
                return Err(format!(
                    "limits.{k}: unknown key (limits has requests_per_minute, burst, max_in_flight_per_session, \
                     max_sessions_per_principal, max_upstream_response_bytes)"
                ))
            }
        }
    }
    Ok(l)
}

/// `x.ceil() as Millis` for the positive waits above, without std's float functions (the core is
/// `no_std`).
fn ceil_ms(x: f64) -> Millis {
    let t = x as Millis;
    if (t as f64) < x {
        t + 1
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_burst_over_the_bucket_waits_for_the_next_token() {
        let l = read_limits(Some(&json!({"requests_per_minute": 60, "burst": 3}))).unwrap();
        let mut b = Buckets::default();
        for _ in 0..3 {
            assert!(b.take(&l, "a", 1000).is_ok());
        }
        let over = b.take(&l, "a", 1000).unwrap_err();
        assert_eq!((over.retry_after_ms, over.limit, over.window_s), (1000, 60, 60));
        assert!(b.take(&l, "b", 1000).is_ok(), "another key has its own bucket");
        assert!(b.take(&l, "a", 1999).is_err());
        assert!(b.take(&l, "a", 2000).is_ok(), "one second later, one more token");
        assert!(b.take(&Limits::default(), "a", 2000).is_ok(), "no rate: never limited");
    }

    #[test]
    fn bad_limits_name_their_key() {
        for (v, says) in [
            (json!({"requests_per_minut": 1}), "limits.requests_per_minut"),
            (json!({"requests_per_minute": -1}), "whole number"),
            (json!({"max_upstream_response_bytes": 10}), "below 1024"),
        ] {
            assert!(read_limits(Some(&v)).unwrap_err().contains(says));
        }
    }
}

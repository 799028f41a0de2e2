//! Fixed-window rate limits kept in memory (per process): sign-in attempts per client address
//! and failed sign-ins per account.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys a limiter holds at most: its memory is bounded whatever clients send.
const MAX_KEYS: usize = 100_000;

/// At most `max` events per `window` for each key.
#[derive(Debug)]
pub struct Limiter {
    max: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key`, or refuses it with `Err(seconds to wait)` when `key` has
    /// used up its window. Checking and counting are one step under one lock, so that
    /// requests in parallel cannot all pass the check before any of them is counted.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS {
            let (window, max) = (self.window, self.max);
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            if windows.len() >= MAX_KEYS {
                // Still full of live windows: keep only the keys that are at their limit (the
                // ones whose refusal matters); the others start again from zero.
                windows.retain(|_, (_, n)| *n >= max);
            }
            if windows.len() >= MAX_KEYS {
                windows.clear();
            }
        }
        let entry = windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return Err((self.window - now.duration_since(entry.0)).as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }

    pub fn forget(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_resets_after_the_window() {
        let l = Limiter::new(2, Duration::from_millis(200));
        assert!(l.take("a").is_ok());
        assert!(l.take("a").is_ok());
        assert!(l.take("a").is_err());
        assert!(l.take("b").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.take("a").is_ok());
    }

    #[test]
    fn memory_is_bounded_and_locked_keys_stay_locked() {
        let l = Limiter::new(2, Duration::from_secs(60));
        assert!(l.take("locked").is_ok() && l.take("locked").is_ok());
        for i in 0..(MAX_KEYS + 10) {
            let _ = l.take(&format!("k{i}"));
        }
        assert!(l.windows.lock().unwrap().len() <= MAX_KEYS);
        assert!(l.take("locked").is_err(), "a key at its limit is kept");
    }

    #[test]
    fn parallel_takes_never_pass_the_limit() {
        let l = std::sync::Arc::new(Limiter::new(5, Duration::from_secs(60)));
        let passed: usize = (0..20)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || l.take("k").is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(passed, 5);
    }
}

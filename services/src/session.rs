//! Whether a playback session may still fetch media and keys. The origin and the licence
//! server ask on every request, so a stopped session, one replaced on its device, one past
//! its expiry and one without a heartbeat for the heartbeat timeout are refused, not only at
//! the start of playback. Sessions are cached for [`SESSION_CACHE_TTL`]: what an instance
//! changes itself (start, heartbeat, stop) it forgets at once; a change made through another
//! instance is seen within the TTL.

use crate::error::{Result, ServiceError};
use crate::tokens::PlaybackClaims;
use crate::AppState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);

/// Sessions kept at most before the stale ones are dropped.
const MAX_CACHED: usize = 100_000;

/// This instance's cache of sessions. A new session may replace any of its account's
/// sessions (the one on the same device), so each entry carries its account's generation
/// when it was cached; starting a session moves the account to the next generation, which
/// makes every cached session of the account stale at once, without a scan.
#[derive(Default)]
pub struct SessionCache {
    entries: HashMap<String, CachedSession>,
    generations: HashMap<String, u64>,
}

struct CachedSession {
    at: Instant,
    generation: u64,
    session: Arc<Session>,
}

impl SessionCache {
    fn get(&self, id: &str) -> Option<Arc<Session>> {
        let c = self.entries.get(id)?;
        let current = self
            .generations
            .get(&c.session.account)
            .copied()
            .unwrap_or(0);
        (c.at.elapsed() < SESSION_CACHE_TTL && c.generation == current).then(|| c.session.clone())
    }

    fn insert(&mut self, id: &str, session: Arc<Session>) {
        if self.entries.len() >= MAX_CACHED {
            self.entries
                .retain(|_, c| c.at.elapsed() < SESSION_CACHE_TTL);
            if self.entries.len() >= MAX_CACHED {
                self.entries.clear();
            }
        }
        if self.generations.len() >= MAX_CACHED {
            // Forgetting generations only makes older entries stale (they are refetched).
            self.generations.clear();
            self.entries.clear();
        }
        let generation = self.generations.get(&session.account).copied().unwrap_or(0);
        self.entries.insert(
            id.to_string(),
            CachedSession {
                at: Instant::now(),
                generation,
                session,
            },
        );
    }
}

/// A playback session as the database has it.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: String,
    pub title: String,
    /// The tallest video the plan allowed when the session started.
    pub max_height: i64,
    /// Key IDs (hex) the session is entitled to.
    pub kids: Vec<String>,
    pub stopped: bool,
    pub expires_at: i64,
    pub last_seen: i64,
}

/// Why a session no longer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Stopped by the viewer, or replaced by a new session on the same device.
    Stopped,
    Expired,
    /// No heartbeat for the heartbeat timeout: it no longer counts as a stream.
    Idle,
}

impl Ended {
    pub fn error(self) -> ServiceError {
        let why = match self {
            Ended::Stopped => {
                "this playback session has ended (stopped, or replaced on its device)"
            }
            Ended::Expired => "this playback session has expired",
            Ended::Idle => "this playback session sent no heartbeat in time and has ended",
        };
        ServiceError::forbidden("session_ended", format!("{why}; start playback again"))
    }
}

impl Session {
    /// Why the session has ended at `now` (ms), if it has; `live_since` is
    /// [`crate::Config::live_since`] at `now`.
    pub fn ended(&self, now: i64, live_since: i64) -> Option<Ended> {
        if self.stopped {
            Some(Ended::Stopped)
        } else if self.expires_at <= now {
            Some(Ended::Expired)
        } else if self.last_seen <= live_since {
            Some(Ended::Idle)
        } else {
            None
        }
    }
}

/// The session of a playback token, when it is still playing: the token's account and title
/// must be the session's (else unauthorised), and the session must not have ended (else
/// forbidden, `session_ended`).
pub async fn live_session(
    state: &AppState,
    claims: &PlaybackClaims,
    now: i64,
) -> Result<Arc<Session>> {
    let session = session_of(state, claims).await?;
    match session.ended(now, state.config.live_since(now)) {
        Some(why) => Err(why.error()),
        None => Ok(session),
    }
}

/// The session of a playback token, ended or not: unauthorised when there is none, or when
/// the token's account or title is not the session's.
pub async fn session_of(state: &AppState, claims: &PlaybackClaims) -> Result<Arc<Session>> {
    cached_session(state, &claims.sid)
        .await?
        .filter(|s| s.account == claims.sub && s.title == claims.title)
        .ok_or(ServiceError::Unauthorized)
}

/// The session from the cache, or from the database (then cached).
pub async fn cached_session(state: &AppState, id: &str) -> Result<Option<Arc<Session>>> {
    if let Some(s) = state
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
    {
        return Ok(Some(s));
    }
    let row: Option<(String, String, i64, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT account_id, title_id, max_height, kids, stopped, expires_at, last_seen
         FROM playback_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    let Some((account, title, max_height, kids, stopped, expires_at, last_seen)) = row else {
        return Ok(None);
    };
    let session = Arc::new(Session {
        account,
        title,
        max_height,
        kids: kids
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        stopped: stopped != 0,
        expires_at,
        last_seen,
    });
    state
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, session.clone());
    Ok(Some(session))
}

/// Drops one session from this instance's cache (after a heartbeat or a stop).
pub fn forget_session(state: &AppState, id: &str) {
    state
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entries
        .remove(id);
}

/// Makes every cached session of an account stale (a new session may have replaced one).
pub fn forget_account_sessions(state: &AppState, account: &str) {
    let mut cache = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
    *cache.generations.entry(account.to_string()).or_insert(0) += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(account: &str) -> Arc<Session> {
        Arc::new(Session {
            account: account.into(),
            title: "t".into(),
            max_height: 720,
            kids: vec![],
            stopped: false,
            expires_at: 10_000,
            last_seen: 5_000,
        })
    }

    #[test]
    fn a_new_session_makes_its_accounts_cached_sessions_stale() {
        let mut cache = SessionCache::default();
        cache.insert("s1", session("a"));
        cache.insert("s2", session("b"));
        assert!(cache.get("s1").is_some() && cache.get("s2").is_some());
        *cache.generations.entry("a".into()).or_insert(0) += 1;
        assert!(cache.get("s1").is_none(), "account a moved on");
        assert!(cache.get("s2").is_some(), "account b did not");
        cache.insert("s1", session("a"));
        assert!(cache.get("s1").is_some());
    }

    #[test]
    fn a_session_ends_when_stopped_expired_or_idle() {
        let s = session("a");
        // A 2-second heartbeat timeout: live since now - 2,000.
        assert_eq!(s.ended(6_000, 4_000), None);
        assert_eq!(s.ended(7_000, 5_000), Some(Ended::Idle));
        assert_eq!(s.ended(10_000, 10_000 - 60_000), Some(Ended::Expired));
        let stopped = Session {
            stopped: true,
            ..(*s).clone()
        };
        assert_eq!(stopped.ended(6_000, 4_000), Some(Ended::Stopped));
    }
}

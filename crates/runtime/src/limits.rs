//! Per-key rate limits for unauthenticated doors (webhooks, login), answered 429 with
//! `Retry-After`. A GCRA limiter from `governor` per key kind; state is per process, which is
//! what a flood against one replica needs (each replica protects its own database pool).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use atende_domain::ErrorCode;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A rate limiter keyed by `K` (an IP, a channel id, an account).
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `n` per second, bursts of up to `n`.
    pub fn per_second(n: u32) -> Self {
        Self::with_quota(Quota::per_second(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)))
    }

    /// `n` per minute, bursts of up to `n`.
    pub fn per_minute(n: u32) -> Self {
        Self::with_quota(Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)))
    }

    fn with_quota(q: Quota) -> Self {
        Self {
            limiter: RateLimiter::keyed(q),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `key` is over its quota.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        // Keys of clients that went quiet are dropped whenever the map grows large.
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// A fixed-window counter in Redis shared by every replica: `Err(wait)` once `key` was hit
/// more than `limit` times in the current `window`. One script call (INCR, expiry on the
/// first hit, the remaining time when over).
pub async fn shared_window(
    redis: &mut redis::aio::ConnectionManager,
    key: &str,
    limit: u32,
    window: Duration,
) -> Result<(), SharedLimitError> {
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            r"
            local n = redis.call('INCR', KEYS[1])
            if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
            if n > tonumber(ARGV[2]) then
              local ttl = redis.call('PTTL', KEYS[1])
              if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
              return ttl
            end
            return -1",
        )
    });
    let wait_ms: i64 = SCRIPT
        .key(key)
        .arg(window.as_millis() as u64)
        .arg(limit)
        .invoke_async(redis)
        .await
        .map_err(SharedLimitError::Redis)?;
    if wait_ms < 0 {
        Ok(())
    } else {
        Err(SharedLimitError::Over(Duration::from_millis(wait_ms as u64)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    #[error("over the limit for {0:?}")]
    Over(Duration),
    #[error("redis")]
    Redis(#[source] redis::RedisError),
}

/// The 429 answer: the stable code in the JSON body and `Retry-After` in whole seconds.
pub fn too_many(wait: Duration, what: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut resp = crate::http_api::error(ErrorCode::RateLimited, what).into_response();
    if let Ok(v) = http::HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// The client's address: the TCP peer, or the first `X-Forwarded-For` entry when the
/// deployment says a proxy sets it.
pub fn client_ip(peer: SocketAddr, headers: &http::HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer.ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_quota_waits_and_other_keys_do_not() {
        let l = KeyedLimit::per_minute(2);
        assert!(l.check(&"a").is_ok());
        assert!(l.check(&"a").is_ok());
        let wait = l.check(&"a").unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(l.check(&"b").is_ok());
    }

    #[test]
    fn the_answer_is_429_with_retry_after_in_whole_seconds() {
        let resp = too_many(Duration::from_millis(1500), "login");
        assert_eq!(resp.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "2");
    }

    #[test]
    fn forwarded_addresses_count_only_when_trusted() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        assert_eq!(client_ip(peer, &h, false).to_string(), "10.0.0.9");
        assert_eq!(client_ip(peer, &h, true).to_string(), "203.0.113.7");
    }
}

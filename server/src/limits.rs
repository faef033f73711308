//! Per-key rate limits (logins per email, assistant turns per user) that forget idle keys: a
//! keyed limiter keeps a cell for every key it has seen, so without pruning a stream of new
//! emails would grow it for ever.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::DefaultKeyedRateLimiter;

/// How often keys whose limit has fully recovered are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A limiter of `per_minute` events per key, pruned every [`PRUNE_EVERY`] while it lives
/// (when there is a runtime to prune it on).
pub(crate) fn per_minute<K>(per_minute: u32) -> Arc<DefaultKeyedRateLimiter<K>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    pruned(governor::Quota::per_minute(per_minute), PRUNE_EVERY)
}

fn pruned<K>(quota: governor::Quota, every: Duration) -> Arc<DefaultKeyedRateLimiter<K>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    let limiter = Arc::new(governor::RateLimiter::keyed(quota));
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(prune(Arc::downgrade(&limiter), every));
    }
    limiter
}

async fn prune<K>(limiter: Weak<DefaultKeyedRateLimiter<K>>, every: Duration)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(limiter) = limiter.upgrade() else { return };
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_whose_limit_recovered_are_forgotten() {
        let per_second = NonZeroU32::new(1_000).unwrap();
        let limiter = pruned::<String>(governor::Quota::per_second(per_second), Duration::from_millis(20));
        for n in 0..100 {
            assert!(limiter.check_key(&format!("user{n}@example.com")).is_ok());
        }
        assert_eq!(limiter.len(), 100);
        // A cell recovers in a millisecond; the pruning runs every 20.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(limiter.len(), 0);
    }
}

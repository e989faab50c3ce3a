//! What every provider reads of the cloud on a poll, shared by every claim's poll:
//! [`Listed`], one paginated list per scope (a region, a resource group, a project)
//! within a time-to-live, so polling N claims costs one list, not N reads; and
//! [`Recent`], what a cloud can only read one object at a time (a federated
//! credential, an IAM policy, a master secret's settings), trusted for a longer period
//! and read again after it, or at once after Paved writes it.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{ListCounter, ProviderError};

/// The longest one list may take: every poll of its kind waits on it, so it may not
/// hang them all.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// One scope's list, by key.
pub type Listing<V> = Arc<HashMap<String, V>>;

/// A scope's last list, or its failure, and when.
type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, Result<Listing<V>, ProviderError>)>>>;

/// One list per scope of one kind of resource, shared within its time-to-live.
pub struct Listed<V> {
    /// What is listed, for the timeout's message ("IAM roles").
    what: &'static str,
    ttl: Duration,
    on_page: ListCounter,
    scopes: Mutex<HashMap<String, Slot<V>>>,
}

impl<V: Clone> Listed<V> {
    /// `on_page` is called for every page sent (the `paved_cloud_list_calls` metric).
    pub fn new(what: &'static str, ttl: Duration, on_page: ListCounter) -> Self {
        Listed {
            what,
            ttl,
            on_page,
            scopes: Default::default(),
        }
    }

    fn slot(&self, scope: &str) -> Slot<V> {
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(scope.to_string())
            .or_default()
            .clone()
    }

    /// `scope`'s list as it was at most the time-to-live ago, listed by `list` (given
    /// the page counter to call per page) when older. Concurrent callers of a scope
    /// wait for one list instead of each sending their own; a list that failed fails
    /// them all, for the time-to-live too (a throttled or unreachable API is not asked
    /// again by every waiting poll in turn).
    pub async fn get<F, Fut>(&self, scope: &str, list: F) -> Result<Listing<V>, ProviderError>
    where
        F: FnOnce(ListCounter) -> Fut,
        Fut: Future<Output = Result<HashMap<String, V>, ProviderError>>,
    {
        let slot = self.slot(scope);
        let mut guard = slot.lock().await;
        if let Some((at, last)) = guard.as_ref() {
            if at.elapsed() < self.ttl {
                return last.clone();
            }
        }
        let listed = match tokio::time::timeout(LIST_TIMEOUT, list(self.on_page.clone())).await {
            Ok(listed) => listed.map(Arc::new),
            Err(_) => Err(ProviderError::Retryable(format!(
                "listing {} took over {}s",
                self.what,
                LIST_TIMEOUT.as_secs()
            ))),
        };
        *guard = Some((Instant::now(), listed.clone()));
        listed
    }

    /// Every scope's list forgotten: the next poll lists afresh (after a write that
    /// changes what a list would say, such as a database created or deleted).
    pub fn invalidate(&self) {
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Whether `scope` has a list to keep current.
    pub async fn is_listed(&self, scope: &str) -> bool {
        matches!(self.slot(scope).lock().await.as_ref(), Some((_, Ok(_))))
    }

    /// After a write to one entry: that entry replaced (or removed, `None`) in the
    /// scope's current list, the others kept, so a rollout that touches every entry
    /// does not list the scope once per entry. No list: nothing to do.
    pub async fn set(&self, scope: &str, key: &str, value: Option<V>) {
        let slot = self.slot(scope);
        let mut guard = slot.lock().await;
        match guard.as_mut() {
            Some((_, Ok(map))) => {
                let map = Arc::make_mut(map);
                match value {
                    Some(v) => map.insert(key.to_string(), v),
                    None => map.remove(key),
                };
            }
            // A failure from before the write says nothing now: list again.
            Some((_, Err(_))) => *guard = None,
            None => {}
        }
    }
}

/// Values read one object at a time, trusted for `period` after they were read.
pub struct Recent<V> {
    period: Duration,
    seen: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Recent<V> {
    pub fn new(period: Duration) -> Self {
        Recent {
            period,
            seen: Default::default(),
        }
    }

    /// The value read for `key` within the period, if any.
    pub fn get(&self, key: &str) -> Option<V> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(key)
            .filter(|(at, _)| at.elapsed() < self.period)
            .map(|(_, v)| v.clone())
    }

    /// `value` was read for `key` just now.
    pub fn put(&self, key: &str, value: V) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Entries past their period are of no use: dropped as others come, so
        // deleted objects do not pile up.
        if seen.len() > 1024 {
            seen.retain(|_, (at, _)| at.elapsed() < self.period);
        }
        seen.insert(key.to_string(), (Instant::now(), value));
    }

    /// `key` was written (or found changed): read it again on its next poll.
    pub fn forget(&self, key: &str) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// `key`'s value, from within the period or read by `read` (and remembered).
    pub async fn get_or_read<F, Fut>(&self, key: &str, read: F) -> Result<V, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ProviderError>>,
    {
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        let v = read().await?;
        self.put(key, v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counter() -> (Arc<AtomicUsize>, ListCounter) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (
            n,
            Arc::new(move || {
                m.fetch_add(1, Ordering::Relaxed);
            }),
        )
    }

    async fn list_of(
        pages: ListCounter,
        items: &[&str],
    ) -> Result<HashMap<String, u32>, ProviderError> {
        pages();
        Ok(items.iter().map(|k| (k.to_string(), 1)).collect())
    }

    #[tokio::test]
    async fn one_list_per_scope_serves_every_caller_within_the_ttl() {
        let (pages, on_page) = counter();
        let listed = Listed::new("things", Duration::from_secs(60), on_page);
        for _ in 0..5 {
            let a = listed.get("a", |p| list_of(p, &["x"])).await.unwrap();
            assert!(a.contains_key("x"));
        }
        assert_eq!(pages.load(Ordering::Relaxed), 1, "one list for scope a");
        let b = listed.get("b", |p| list_of(p, &["y"])).await.unwrap();
        assert!(
            b.contains_key("y") && !b.contains_key("x"),
            "scopes are apart"
        );
        assert_eq!(pages.load(Ordering::Relaxed), 2);
        listed.invalidate();
        listed.get("a", |p| list_of(p, &["x"])).await.unwrap();
        assert_eq!(
            pages.load(Ordering::Relaxed),
            3,
            "listed again after invalidate"
        );
    }

    #[tokio::test]
    async fn an_expired_list_is_listed_again_and_a_failure_is_shared_for_the_ttl() {
        let (pages, on_page) = counter();
        let listed = Listed::new("things", Duration::ZERO, on_page);
        listed.get("", |p| list_of(p, &["x"])).await.unwrap();
        listed.get("", |p| list_of(p, &["x"])).await.unwrap();
        assert_eq!(pages.load(Ordering::Relaxed), 2);
        let (pages, on_page) = counter();
        let listed = Listed::<u32>::new("things", Duration::from_secs(60), on_page);
        let failing = |p: ListCounter| async move {
            p();
            Err(ProviderError::Retryable("down".into()))
        };
        assert!(listed.get("", failing).await.is_err());
        assert!(!listed.is_listed("").await, "a failure leaves no list");
        // The waiting polls share the failure instead of each asking again.
        assert!(listed.get("", failing).await.is_err());
        assert_eq!(pages.load(Ordering::Relaxed), 1);
        let listed = Listed::<u32>::new("things", Duration::ZERO, counter().1);
        assert!(listed.get("", failing).await.is_err());
        assert!(
            listed.get("", |p| list_of(p, &["x"])).await.is_ok(),
            "retried after the TTL"
        );
    }

    #[tokio::test]
    async fn a_write_ends_a_shared_failure() {
        let listed = Listed::<u32>::new("things", Duration::from_secs(60), counter().1);
        let failing = |_| async { Err(ProviderError::Retryable("down".into())) };
        assert!(listed.get("", failing).await.is_err());
        listed.set("", "x", Some(1)).await;
        assert!(listed.get("", |p| list_of(p, &["x"])).await.is_ok());
    }

    #[tokio::test]
    async fn set_keeps_a_current_list_current_and_makes_none() {
        let listed = Listed::new("things", Duration::from_secs(60), counter().1);
        listed.set("", "x", Some(2)).await;
        assert!(!listed.is_listed("").await, "no list: nothing made up");
        listed.get("", |p| list_of(p, &["x", "y"])).await.unwrap();
        listed.set("", "x", Some(2)).await;
        listed.set("", "y", None).await;
        let now = listed.get("", |p| list_of(p, &[])).await.unwrap();
        assert_eq!(now.get("x"), Some(&2));
        assert!(!now.contains_key("y"));
    }

    #[tokio::test]
    async fn recent_values_are_trusted_for_their_period_and_forgotten_on_write() {
        let recent = Recent::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::Relaxed);
            Ok::<_, ProviderError>(7)
        };
        assert_eq!(recent.get_or_read("k", read).await.unwrap(), 7);
        assert_eq!(recent.get_or_read("k", read).await.unwrap(), 7);
        assert_eq!(reads.load(Ordering::Relaxed), 1);
        recent.forget("k");
        recent.get_or_read("k", read).await.unwrap();
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        let expired = Recent::new(Duration::ZERO);
        expired.put("k", 1);
        assert_eq!(expired.get("k"), None);
    }
}

//! One refresh per refresh token: concurrent and closely repeated refreshes with the same
//! token share one exchange with the identity provider.
//!
//! Since the server refreshes on any request that carries an expired access cookie and a
//! refresh cookie ([`super::renew`]), a browser that loads a page fires several requests
//! with the same refresh cookie at once (the page, its `fetch`es, an `EventSource`), and
//! each one that was sent before the first answer's `Set-Cookie` arrived still carries the
//! old token. Providers that rotate refresh tokens treat a second use as theft: `local`
//! revokes the whole session family, appointment360 refuses the token. Either way the user
//! would be logged out by their own page.
//!
//! [`CoalescedRefresh`] wraps any provider. Refreshes are keyed by the SHA-256 of the
//! **whole** old refresh token (never a prefix, see `graphql`'s cache; no raw token is
//! kept as a key). The first caller runs the exchange; callers arriving while it runs wait
//! for it; callers arriving within `grace` after it finished get the same answer (the same
//! new tokens, or the same refusal). An outage ([`AuthError::Unavailable`]) is not kept,
//! so the next request tries again. After `grace` a second use is the provider's business
//! again: reuse detection still catches a stolen token, only later than the grace window.
//!
//! What that costs: within `grace` of a rotation, whoever holds the old token gets the new
//! ones, exactly as if they had raced the rightful holder. `grace` is short (30 s by
//! default; 0 keeps only the sharing of an exchange in flight), the answers are kept in
//! memory only, and logging out forgets them. The cache is per process: behind a load
//! balancer without sticky sessions, two requests of one page that reach two processes
//! still refresh twice (see decision 0019).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{AuthError, IdentityProvider, Principal, Tokens};

/// Default of how long a refresh's answer is handed to later users of the same token.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Most refreshes remembered at once; past it, refreshes run uncoalesced until old ones
/// expire (bounds memory under a flood of made-up tokens).
const MAX_ENTRIES: usize = 100_000;

type Outcome = Result<Tokens, AuthError>;

/// One refresh token's exchange: running, or done at `done`.
struct Flight {
    cell: Arc<OnceCell<Outcome>>,
    /// When the answer was known (`None` while the exchange runs).
    done: Option<Instant>,
}

/// The remembered refreshes, swept of expired ones at least once per grace, so that no
/// token stays in memory much longer than the grace.
struct Flights {
    map: HashMap<String, Flight>,
    swept: Instant,
}

/// A provider whose refreshes are shared per token. See the module docs.
pub struct CoalescedRefresh {
    inner: Arc<dyn IdentityProvider>,
    grace: Duration,
    flights: Mutex<Flights>,
}

impl fmt::Debug for CoalescedRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalescedRefresh")
            .field("inner", &self.inner)
            .field("grace", &self.grace)
            .field("remembered", &self.flights.lock().map.len())
            .finish()
    }
}

fn key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl CoalescedRefresh {
    pub fn new(inner: Arc<dyn IdentityProvider>, grace: Duration) -> Self {
        Self {
            inner,
            grace,
            flights: Mutex::new(Flights {
                map: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// The flight of `key`, joined or started; `None` when the table is full.
    fn join(&self, key: &str) -> Option<Arc<OnceCell<Outcome>>> {
        let now = Instant::now();
        let mut guard = self.flights.lock();
        let Flights {
            map: flights,
            swept,
        } = &mut *guard;
        let grace = self.grace;
        let expired = |f: &Flight| {
            f.done
                .is_some_and(|at| now.saturating_duration_since(at) >= grace)
        };
        if now.saturating_duration_since(*swept) >= grace || flights.len() >= MAX_ENTRIES {
            flights.retain(|_, f| !expired(f));
            *swept = now;
        }
        if flights.get(key).is_some_and(expired) {
            flights.remove(key);
        }
        if !flights.contains_key(key) && flights.len() >= MAX_ENTRIES {
            return None;
        }
        let flight = flights.entry(key.to_owned()).or_insert_with(|| Flight {
            cell: Arc::new(OnceCell::new()),
            done: None,
        });
        Some(flight.cell.clone())
    }

    /// Marks the flight done (or forgets it after an outage, so the next try is fresh).
    fn land(&self, key: &str, cell: &Arc<OnceCell<Outcome>>, outcome: &Outcome) {
        let flights = &mut self.flights.lock().map;
        let Some(flight) = flights.get_mut(key).filter(|f| Arc::ptr_eq(&f.cell, cell)) else {
            return;
        };
        if matches!(outcome, Err(AuthError::Unavailable(_))) || self.grace.is_zero() {
            flights.remove(key);
        } else if flight.done.is_none() {
            flight.done = Some(Instant::now());
        }
    }

    /// Forgets what is remembered about `refresh_token`: as the old token of a refresh,
    /// and as the new token one handed out (so a logout ends the grace too).
    fn forget(&self, refresh_token: &str) {
        let gone = key(refresh_token);
        let flights = &mut self.flights.lock().map;
        flights.remove(&gone);
        flights.retain(|_, f| {
            let handed_out = f.cell.get().and_then(|o| o.as_ref().ok());
            let new = handed_out.and_then(|t| t.refresh_token.as_deref());
            new.is_none_or(|t| key(t) != gone)
        });
    }
}

#[async_trait::async_trait]
impl IdentityProvider for CoalescedRefresh {
    async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        self.inner.authenticate(access_token).await
    }

    async fn login(&self, email: &str, password: &str) -> Result<Tokens, AuthError> {
        self.inner.login(email, password).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let key = key(refresh_token);
        let Some(cell) = self.join(&key) else {
            return self.inner.refresh(refresh_token).await;
        };
        // If the caller running the exchange goes away, a waiting one takes over.
        let outcome = cell
            .get_or_init(|| self.inner.refresh(refresh_token))
            .await
            .clone();
        self.land(&key, &cell, &outcome);
        outcome
    }

    async fn logout(
        &self,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(token) = refresh_token {
            self.forget(token);
        }
        self.inner.logout(access_token, refresh_token).await
    }

    fn password_login(&self) -> bool {
        self.inner.password_login()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Rotates like `local`: each token works once; the count says how many exchanges ran.
    #[derive(Debug, Default)]
    struct Rotating {
        exchanges: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl IdentityProvider for Rotating {
        async fn authenticate(&self, _: &str) -> Result<Principal, AuthError> {
            Err(AuthError::NotSupported("test"))
        }
        async fn login(&self, _: &str, _: &str) -> Result<Tokens, AuthError> {
            Err(AuthError::NotSupported("test"))
        }
        async fn refresh(&self, token: &str) -> Result<Tokens, AuthError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(AuthError::Unavailable("down".into()));
            }
            let n = self.exchanges.fetch_add(1, Ordering::SeqCst);
            if n > 0 && token == "t0" {
                return Err(AuthError::InvalidToken("reused".into()));
            }
            Ok(Tokens {
                access_token: format!("a{n}"),
                refresh_token: Some(format!("t{}", n + 1)),
                expires_in: 900,
                user: Principal {
                    uuid: "u".into(),
                    email: "e".into(),
                    role: "r".into(),
                },
            })
        }
        async fn logout(&self, _: Option<&str>, _: Option<&str>) -> Result<(), AuthError> {
            Ok(())
        }
    }

    fn coalesced(grace: Duration) -> (Arc<Rotating>, CoalescedRefresh) {
        let inner = Arc::new(Rotating::default());
        (inner.clone(), CoalescedRefresh::new(inner, grace))
    }

    #[tokio::test]
    async fn concurrent_refreshes_share_one_exchange() {
        let (inner, p) = coalesced(DEFAULT_GRACE);
        let answers = futures::future::join_all((0..8).map(|_| p.refresh("t0"))).await;
        assert_eq!(inner.exchanges.load(Ordering::SeqCst), 1);
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().unwrap().access_token == "a0")
        );
        // Later, within the grace: the same answer again.
        assert_eq!(p.refresh("t0").await.unwrap().refresh_token.unwrap(), "t1");
        assert_eq!(inner.exchanges.load(Ordering::SeqCst), 1);
        // Another token is another exchange.
        assert_eq!(p.refresh("t1").await.unwrap().access_token, "a1");
    }

    #[tokio::test]
    async fn without_grace_only_the_flight_in_progress_is_shared() {
        let (inner, p) = coalesced(Duration::ZERO);
        let (a, b) = tokio::join!(p.refresh("t0"), p.refresh("t0"));
        assert_eq!(a.unwrap(), b.unwrap());
        assert!(matches!(
            p.refresh("t0").await,
            Err(AuthError::InvalidToken(_))
        ));
        assert_eq!(inner.exchanges.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn answers_are_forgotten_after_the_grace() {
        let (_, p) = coalesced(Duration::from_millis(1));
        p.refresh("t0").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        p.refresh("t1").await.unwrap();
        assert_eq!(p.flights.lock().map.len(), 1, "t0's answer was swept");
        assert!(
            matches!(p.refresh("t0").await, Err(AuthError::InvalidToken(_))),
            "after the grace, a reuse is the provider's to judge"
        );
    }

    #[tokio::test]
    async fn outages_are_not_remembered_and_logout_forgets() {
        let (inner, p) = coalesced(DEFAULT_GRACE);
        inner.down.store(true, Ordering::SeqCst);
        assert!(matches!(
            p.refresh("t0").await,
            Err(AuthError::Unavailable(_))
        ));
        inner.down.store(false, Ordering::SeqCst);
        let tokens = p.refresh("t0").await.unwrap();
        // Logging out with the new token ends the grace of the old one.
        p.logout(None, tokens.refresh_token.as_deref())
            .await
            .unwrap();
        assert!(p.flights.lock().map.is_empty());
        assert!(p.refresh("t0").await.is_err());
    }
}

//! The change feed as the server serves it: a subscription per client, with limits,
//! re-authentication and metrics. `routes::events` turns it into Server-Sent Events;
//! other server code (the admin UI) can call [`subscribe`] and read [`Message`]s.
//!
//! Each subscription is one task: it takes entries from the engine's feed
//! (`bucketbase_engine::feed`: replayed from the log, then live), judges each change
//! for its caller ([`view`]), and hands the messages to the client through a small
//! bounded channel. Resources stay bounded and the committer never waits:
//! - at most `max_subscribers` per process and `max_per_user` per user ([`Limits`]);
//! - the engine queues at most `buffer` entries (and `buffer_bytes` of their documents)
//!   for a subscriber and cuts it off when that fills up; a client that takes nothing for a `keepalive` interval while messages
//!   wait is cut off too. Either way the last message is [`Message::Dropped`] with the
//!   position to resume from (when the client still reads at all), and its
//!   `Last-Event-ID` is exact anyway;
//! - every `keepalive` interval the token is authenticated again: an expired or revoked
//!   token ends the stream ([`Message::End`]), a changed role applies from then on.

pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bucketbase_engine::feed::{Next, QueueLimit};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

pub use view::{Message, Spec};

use crate::AppState;
use crate::access::Caller;
use crate::error::ApiError;

/// Limits of the feed (settings `feed_*`).
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// Subscriptions open at once in this process.
    pub max_subscribers: usize,
    /// Subscriptions open at once per user.
    pub max_per_user: usize,
    /// Log entries queued for one subscriber before it is cut off.
    pub buffer: usize,
    /// Bytes of documents and audit events those entries may hold (the entries are
    /// shared, but a subscriber that lags keeps old ones alive).
    pub buffer_bytes: usize,
    /// Interval of keep-alive comments and of re-authentication; also how long a
    /// client may leave messages waiting before it is cut off.
    pub keepalive: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            max_subscribers: 1000,
            max_per_user: 10,
            buffer: 1024,
            buffer_bytes: 64 << 20,
            keepalive: Duration::from_secs(15),
        }
    }
}

/// The feed's metrics, registered by `metrics::Metrics`.
#[derive(Debug, Clone, Default)]
pub struct FeedMetrics {
    pub subscribers: Gauge,
    pub events: Counter,
    pub drops: Counter,
}

/// Open subscriptions, in total and per user.
#[derive(Debug, Default)]
pub struct Limits {
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// A place among the open subscriptions; freed when dropped.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    user: String,
    metrics: FeedMetrics,
}

impl Limits {
    /// Takes a place for `user`, or answers 429 `too_many_subscriptions`.
    pub fn acquire(
        self: &Arc<Self>,
        user: &str,
        settings: &FeedSettings,
        metrics: &FeedMetrics,
    ) -> Result<Permit, ApiError> {
        let mut open = self.open.lock();
        let mine = open.1.get(user).copied().unwrap_or(0);
        let refuse = |message: String, limit: usize| {
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_subscriptions",
                message,
            )
            .with_details(serde_json::json!({ "limit": limit })))
        };
        if open.0 >= settings.max_subscribers {
            return refuse(
                "this server has as many event subscriptions open as it allows".into(),
                settings.max_subscribers,
            );
        }
        if mine >= settings.max_per_user {
            return refuse(
                "you have as many event subscriptions open as one user may".into(),
                settings.max_per_user,
            );
        }
        open.0 += 1;
        *open.1.entry(user.to_string()).or_default() += 1;
        metrics.subscribers.inc();
        Ok(Permit {
            limits: self.clone(),
            user: user.to_string(),
            metrics: metrics.clone(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.user);
            }
        }
        self.metrics.subscribers.dec();
    }
}

/// Messages waiting for the client beyond the engine's queue.
const OUTBOX: usize = 64;

/// Opens a subscription for `caller` (authenticated with `token`): checks the limits,
/// then runs it in a task of its own. Ends when the receiver is dropped.
pub fn subscribe(
    st: &AppState,
    caller: Caller,
    token: String,
    spec: Spec,
) -> Result<mpsc::Receiver<Message>, ApiError> {
    let settings = st.settings.feed.clone();
    let metrics = st.metrics.feed.clone();
    let permit = st.feed_limits.acquire(caller.uuid(), &settings, &metrics)?;
    let (tx, rx) = mpsc::channel(OUTBOX);
    let limit = QueueLimit {
        entries: settings.buffer,
        bytes: settings.buffer_bytes,
    };
    let sub = st.db.subscribe(spec.since, limit);
    let view = view::View::new(st.clone(), caller, spec);
    tokio::spawn(run(view, sub, token, tx, settings, permit));
    Ok(rx)
}

async fn run(
    mut view: view::View,
    mut sub: bucketbase_engine::feed::Subscription,
    token: String,
    tx: mpsc::Sender<Message>,
    settings: FeedSettings,
    _permit: Permit,
) {
    let metrics = view.st.metrics.feed.clone();
    let mut recheck = tokio::time::interval(settings.keepalive);
    recheck.tick().await;
    let mut last = sub.position();
    loop {
        let next = tokio::select! {
            next = sub.next() => next,
            _ = recheck.tick() => {
                match view.st.auth.authenticate(&token).await {
                    Ok(principal) => view.set_principal(principal),
                    Err(e) => {
                        let _ = tx.try_send(Message::End {
                            code: "unauthorized",
                            message: format!("the stream ended: {e}"),
                        });
                        return;
                    }
                }
                continue;
            }
            _ = tx.closed() => return,
        };
        let applied = match next {
            Ok(Next::Entry(applied)) => applied,
            Ok(Next::Lagged) => {
                metrics.drops.inc();
                let _ = tx.try_send(Message::Dropped { resume: last });
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "event subscription failed reading the log");
                let _ = tx.try_send(Message::End {
                    code: "unavailable",
                    message: "the stream ended: the log could not be read; resume later".into(),
                });
                return;
            }
        };
        let state = applied
            .after
            .clone()
            .unwrap_or_else(|| view.st.db.snapshot());
        let messages = match view.auth_at(&state) {
            None => view.entry(&applied, &state, None),
            // The caller's rights changed: finding what left the view scans the
            // subscribed collections, CPU work off the async workers.
            Some(auth) => {
                let judged = tokio::task::spawn_blocking(move || {
                    let messages = view.entry(&applied, &state, Some(auth));
                    (view, messages)
                })
                .await;
                match judged {
                    Ok((back, messages)) => {
                        view = back;
                        messages
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "event subscription task failed");
                        return;
                    }
                }
            }
        };
        for message in messages {
            match tokio::time::timeout(settings.keepalive, tx.send(message)).await {
                Ok(Ok(())) => {
                    metrics.events.inc();
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    metrics.drops.inc();
                    return;
                }
            }
        }
        last = sub.position();
    }
}

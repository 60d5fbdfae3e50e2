//! `Shutdown`: the daemon's stop signal, cheap to watch from every connection at once.
//!
//! Every session loop polls the signal on each pass. A `CancellationToken` or a `Notify`
//! takes a lock shared by all connections on every such poll; a [`Watch`] registers its task
//! once and afterwards reads one flag that is written only when the daemon stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Tells the accept loop and every session to stop.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    triggered: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// Signals every watcher; later watchers see the signal at once.
    pub(crate) fn trigger(&self) {
        // The flag is set before the wake-up, so a woken watcher finds it set.
        self.triggered.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::Acquire)
    }

    /// A future that completes once the daemon stops. It must be polled by one task only,
    /// since it registers that task's waker at its first poll and never again.
    pub(crate) fn watch(&self) -> Watch<'_> {
        Watch {
            shutdown: self,
            notified: Box::pin(self.notify.notified()),
            registered: false,
        }
    }
}

/// See [`Shutdown::watch`].
#[derive(Debug)]
pub(crate) struct Watch<'a> {
    shutdown: &'a Shutdown,
    notified: Pin<Box<Notified<'a>>>,
    registered: bool,
}

impl Future for Watch<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shutdown.is_triggered() {
            return Poll::Ready(());
        }
        if !self.registered {
            // A trigger between `watch` and this poll counts: `Notified` was created before.
            if self.notified.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            self.registered = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_registered_watcher_wakes_on_trigger() {
        let shutdown = Arc::new(Shutdown::default());
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let watcher = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut watch = shutdown.watch();
                // Poll twice with this task's waker before the trigger: the second poll
                // reads only the flag.
                for _ in 0..2 {
                    std::future::poll_fn(|cx| {
                        assert!(Pin::new(&mut watch).poll(cx).is_pending());
                        Poll::Ready(())
                    })
                    .await;
                }
                ready_tx.send(()).unwrap();
                watch.await;
            })
        };
        ready.await.unwrap();
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(10), watcher)
            .await
            .expect("the watcher was not woken")
            .unwrap();
    }

    #[test]
    fn a_trigger_before_the_first_poll_counts() {
        let shutdown = Shutdown::default();
        let watch = shutdown.watch();
        shutdown.trigger();
        assert!(watch.now_or_never().is_some());
        assert!(shutdown.watch().now_or_never().is_some());
    }
}

//! One way to stop a task: the daemon holds a [`Trigger`], every task and connection a
//! [`Shutdown`] cloned from it, and pulling the trigger tells them all at once.

use tokio::sync::watch;

/// Told when the daemon stops. Cheap to clone: every task and connection has its own.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// None: a shutdown that never comes.
    rx: Option<watch::Receiver<bool>>,
}

/// The daemon's end: [`Trigger::pull`] tells every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// A trigger and the first of its shutdowns.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx: Some(rx) })
}

impl Trigger {
    /// Tell every task to stop; idempotent.
    pub fn pull(&self) {
        self.tx.send_replace(true);
    }

    /// Another shutdown for a task started later.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: Some(self.tx.subscribe()),
        }
    }
}

impl Shutdown {
    /// A shutdown that never comes, for tests and commands that run a server to its end.
    pub fn never() -> Shutdown {
        Shutdown { rx: None }
    }

    /// Has the daemon been told to stop?
    pub fn is_shutdown(&self) -> bool {
        self.rx
            .as_ref()
            .is_some_and(|rx| *rx.borrow() || rx.has_changed().is_err())
    }

    /// Could the daemon have been told to stop since this shutdown was made? One atomic
    /// load, no lock: false means certainly not, true means ask [`Shutdown::recv`].
    pub fn may_be_shutdown(&self) -> bool {
        self.rx
            .as_ref()
            .is_some_and(|rx| !matches!(rx.has_changed(), Ok(false)))
    }

    /// Wait until the daemon is told to stop (at once if it already was). A dropped trigger
    /// counts as a stop: nobody is left to keep the task going.
    pub async fn recv(&mut self) {
        match &mut self.rx {
            Some(rx) => {
                let _ = rx.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_shutdown_hears_the_trigger_even_after_it_was_pulled() {
        let (trigger, mut first) = channel();
        let mut later = trigger.subscribe();
        assert!(!first.is_shutdown());
        let waiting = tokio::spawn(async move {
            first.recv().await;
            first.is_shutdown()
        });
        trigger.pull();
        assert!(waiting.await.unwrap());
        later.recv().await;
        let mut after = trigger.subscribe();
        after.recv().await;
        assert!(after.is_shutdown());
    }

    #[tokio::test]
    async fn a_dropped_trigger_stops_its_tasks() {
        let (trigger, mut s) = channel();
        drop(trigger);
        tokio::time::timeout(std::time::Duration::from_secs(1), s.recv())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn never_is_never() {
        let mut s = Shutdown::never();
        let r = tokio::time::timeout(std::time::Duration::from_secs(3600), s.recv()).await;
        assert!(r.is_err());
        assert!(!s.is_shutdown());
    }
}

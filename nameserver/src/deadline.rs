//! `Deadline`: when a query over the registry must give up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rpc_core::NamingError;

/// When a query must give up, and the budget it was given (for the error); and, optionally,
/// a flag that stops it sooner (the nameserver is stopping).
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
    stopping: Option<Arc<AtomicBool>>,
}

impl Deadline {
    /// A query may run for `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
            stopping: None,
        }
    }

    /// The same deadline, and the query also gives up once `stopping` is set.
    pub fn or_when(self, stopping: &Arc<AtomicBool>) -> Deadline {
        Deadline {
            stopping: Some(stopping.clone()),
            ..self
        }
    }

    /// No deadline: for callers that own the registry alone.
    pub fn never() -> Deadline {
        Deadline::after(Duration::from_secs(86_400 * 365))
    }

    /// [`NamingError::QueryTooSlow`] once the deadline has passed, [`NamingError::Stopping`]
    /// once the stop flag is set.
    pub(crate) fn check(&self) -> Result<(), NamingError> {
        if self
            .stopping
            .as_ref()
            .is_some_and(|stopping| stopping.load(Ordering::Relaxed))
        {
            return Err(NamingError::Stopping);
        }
        if Instant::now() >= self.at {
            return Err(NamingError::QueryTooSlow {
                budget: self.budget,
            });
        }
        Ok(())
    }
}

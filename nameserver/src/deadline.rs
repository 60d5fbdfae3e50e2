//! `Deadline`: when a query over the registry must give up.

use std::time::{Duration, Instant};

use rpc_core::NamingError;

/// When a query must give up, and the budget it was given (for the error).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A query may run for `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// No deadline: for callers that own the registry alone.
    pub fn never() -> Deadline {
        Deadline::after(Duration::from_secs(86_400 * 365))
    }

    /// [`NamingError::QueryTooSlow`] once the deadline has passed.
    pub(crate) fn check(&self) -> Result<(), NamingError> {
        if Instant::now() >= self.at {
            return Err(NamingError::QueryTooSlow {
                budget: self.budget,
            });
        }
        Ok(())
    }
}

//! Service traits shared by the examples in `examples/`.

pub mod currency;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_core::service;

/// Says hello; the simplest service there is.
#[service]
pub trait Greeter {
    /// A greeting for `name`.
    async fn greet(&self, name: String) -> String;
    /// Takes `millis` milliseconds to answer.
    async fn slow_greet(&self, name: String, millis: u64) -> String;
}

/// A greeter that numbers its greetings, so you can see which instance answered.
#[derive(Debug)]
pub struct NumberedGreeter {
    /// Which instance this is.
    pub instance: u64,
    greetings: AtomicU64,
}

/// Counts the greeters built so far, to number the next one.
static GREETERS_BUILT: AtomicU64 = AtomicU64::new(0);

impl NumberedGreeter {
    /// A new greeter with the next instance number.
    pub fn new() -> NumberedGreeter {
        NumberedGreeter {
            instance: GREETERS_BUILT.fetch_add(1, Ordering::SeqCst) + 1,
            greetings: AtomicU64::new(0),
        }
    }
}

impl Default for NumberedGreeter {
    fn default() -> NumberedGreeter {
        NumberedGreeter::new()
    }
}

impl Greeter for NumberedGreeter {
    async fn greet(&self, name: String) -> String {
        let n = self.greetings.fetch_add(1, Ordering::SeqCst) + 1;
        format!(
            "Hello, {name}! (instance #{}, greeting #{n})",
            self.instance
        )
    }

    async fn slow_greet(&self, name: String, millis: u64) -> String {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.greet(name).await
    }
}

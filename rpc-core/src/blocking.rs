//! Calls from code without an async runtime: a runtime of the crate's own, and `PendingCall`.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Worker threads of the shared runtime that blocking proxies run on. Calls spend their time
/// waiting on the network, so two threads serve many concurrent calls.
const BLOCKING_RUNTIME_THREADS: usize = 2;

/// The runtime that blocking proxies run their connections and calls on, started on first use.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BLOCKING_RUNTIME_THREADS)
            .thread_name("rpc-core-blocking")
            .enable_all()
            .build()
            .expect("the OS refused the threads of rpc-core's blocking runtime")
    })
}

/// Runs `future` to completion on the blocking runtime and returns its output.
///
/// # Panics
///
/// If called from inside an async runtime (use the async proxy there), or if the OS refuses
/// to start the runtime's threads.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Starts `future` on the blocking runtime and returns a handle to collect its output later.
pub fn start<F>(future: F) -> PendingCall<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    PendingCall {
        task: runtime().spawn(future),
    }
}

/// A call started by a blocking proxy's `start_*` method, running in the background; collect
/// its result with [`wait`](PendingCall::wait) (Pyro's async result and its `.value`).
///
/// Dropping it without waiting cancels the call.
#[derive(Debug)]
#[must_use = "dropping a PendingCall cancels the call"]
pub struct PendingCall<T> {
    task: JoinHandle<T>,
}

impl<T> PendingCall<T> {
    /// Blocks until the call completes and returns its result.
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    pub fn wait(mut self) -> T {
        match runtime().block_on(&mut self.task) {
            Ok(output) => output,
            // The task is aborted only by `drop`, so a join error is a panic to pass on.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Whether the result is ready, so [`wait`](PendingCall::wait) would not block.
    pub fn is_ready(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Drop for PendingCall<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! One call at the daemon: dispatch, deadline, panic capture, trace event and reply frame.
//!
//! A call's future is polled once on the spot, on its connection's task: a method that
//! finishes without waiting, as most do, costs no task, no timer and no allocation beyond its
//! own future. One that must wait continues in a task of its own, under its deadline.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;

use super::registry::{Object, panic_message};
use crate::call_scope::CallScope;
use crate::codec::Format;
use crate::dispatch::{Args, Call, Dispatch, Encoded};
use crate::protocol::{Invoke, RemoteError};

/// What a call ends with: its encoded result, or the error in its place.
pub(crate) type Outcome = Result<Encoded, RemoteError>;

/// How a call went at its first poll.
pub(crate) enum Started {
    /// It finished: its outcome, or none for a oneway call.
    Done(Option<Outcome>),
    /// It must wait: the rest of it, to run as a task, ending in its outcome.
    Waiting(Pin<Box<dyn Future<Output = Option<Outcome>> + Send>>),
}

/// What a call at the daemon is given besides its message.
pub(crate) struct CallContext<'a> {
    pub(crate) object: &'a Arc<Object>,
    /// The connection's slot for a `session` mode instance.
    pub(crate) session: &'a mut Option<Arc<dyn Dispatch>>,
    pub(crate) format: Format,
    pub(crate) max_body_len: usize,
    pub(crate) max_nesting_depth: usize,
    /// `Config::max_call_duration` of the daemon.
    pub(crate) max_call_duration: Option<Duration>,
    pub(crate) peer: &'a Arc<str>,
    /// The client's IP address; `None` over a Unix socket.
    pub(crate) peer_ip: Option<IpAddr>,
    /// Whether the client proved the daemon's shared secret.
    pub(crate) authenticated: bool,
    /// Whether the call was read after the connection had paused at its call cap.
    pub(crate) waited_for_slot: bool,
    /// A buffer for the result, the connection's frame header's room at its start.
    pub(crate) reply_buffer: BytesMut,
    /// The length of that room.
    pub(crate) headroom: usize,
}

/// One call as its connection read it.
pub(crate) struct Incoming<'m> {
    pub(crate) request_id: u64,
    pub(crate) oneway: bool,
    pub(crate) method: &'m str,
    pub(crate) args: Args<'m>,
    /// How long the caller gives it, if it said.
    pub(crate) deadline: Option<Duration>,
    /// Where the method's name is kept for the call's end.
    pub(crate) name: Method,
}

/// Starts the call `incoming` and polls it once.
pub(crate) fn start(context: CallContext<'_>, incoming: Incoming<'_>) -> Started {
    let Incoming {
        request_id,
        oneway,
        method,
        args,
        deadline,
        name,
    } = incoming;
    let started = Instant::now();
    let call = Call {
        object: context.object.id(),
        method,
        args,
        format: context.format,
        oneway,
        max_body_len: context.max_body_len,
        max_nesting_depth: context.max_nesting_depth,
        reply_buffer: Cell::new(context.reply_buffer),
        headroom: context.headroom,
    };
    let dispatched = if context.object.is_registered() {
        context
            .object
            .instance_for_call(context.session, method)
            .and_then(|instance| instance.dispatch(&call))
    } else {
        Err(RemoteError::UnknownObject {
            object: context.object.id().to_string(),
        })
    };
    let ending = Ending {
        request_id,
        oneway,
        started,
        method: name,
        traced: tracing::enabled!(target: "rpc_core::daemon", tracing::Level::DEBUG)
            .then(|| (context.object.id().clone(), context.peer.clone())),
        waited_for_slot: context.waited_for_slot,
    };
    let mut future = match dispatched {
        Ok(future) => future,
        Err(error) => return Started::Done(ending.finish(Err(error))),
    };
    // A call without a deadline, or with a longer one, gets the daemon's own maximum, so a
    // client cannot leave work running for ever.
    let allowed = match (deadline, context.max_call_duration) {
        (Some(asked), Some(most)) => Some(asked.min(most)),
        (asked, most) => asked.or(most),
    };
    let scope = CallScope {
        deadline: allowed.map(|allowed| tokio::time::Instant::from_std(started) + allowed),
        caller: context.peer_ip,
        authenticated: context.authenticated,
    };
    // The first poll, here and now. Its waker does nothing: a call that must wait is polled
    // again at once by its task, with that task's waker.
    let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut cx = Context::from_waker(Waker::noop());
        scope.poll(&mut future, &mut cx)
    }));
    match first {
        Ok(Poll::Ready(outcome)) => Started::Done(ending.finish(outcome)),
        Err(panic) => {
            let error = ending.panicked(&*panic);
            Started::Done(ending.finish(Err(error)))
        }
        Ok(Poll::Pending) => Started::Waiting(Box::pin({
            // The body is a slice of the connection's receive buffer, which may hold a
            // frame of megabytes: a call that outlives this pass keeps a copy of its method
            // name only, so it pins no more than its own decoded arguments.
            let mut ending = ending;
            ending.method = Method::Owned(ending.method().into());
            async move {
                let guarded = AssertUnwindSafe(future).catch_unwind();
                let finished = scope.run(guarded).await;
                let outcome = match finished {
                    None => Err(RemoteError::DeadlineExceeded {
                        method: ending.method(),
                    }),
                    Some(Ok(outcome)) => outcome,
                    Some(Err(panic)) => Err(ending.panicked(&*panic)),
                };
                ending.finish(outcome)
            }
        })),
    }
}

/// Where a call's method name is kept.
pub(crate) enum Method {
    /// In the invoke body, while the call runs in the pass that read it (no copy).
    InBody(Bytes),
    /// Copied out, for a call that waits.
    Owned(Box<str>),
}

/// What the end of a call needs: its outcome and its trace event.
struct Ending {
    request_id: u64,
    oneway: bool,
    started: Instant,
    /// The method name, for errors and the trace event.
    method: Method,
    /// The object and the peer, when someone listens for the trace event.
    traced: Option<(Arc<str>, Arc<str>)>,
    waited_for_slot: bool,
}

impl Ending {
    fn method(&self) -> String {
        match &self.method {
            Method::InBody(body) => Invoke::decode(body)
                .map_or_else(|_| String::new(), |invoke| invoke.method.to_owned()),
            Method::Owned(name) => name.to_string(),
        }
    }

    fn panicked(&self, panic: &(dyn Any + Send)) -> RemoteError {
        RemoteError::Panicked {
            method: self.method(),
            message: panic_message(panic),
        }
    }

    fn finish(self, outcome: Outcome) -> Option<Outcome> {
        if let Some((object, peer)) = &self.traced {
            tracing::debug!(
                target: "rpc_core::daemon",
                %object,
                method = %self.method(),
                %peer,
                request_id = self.request_id,
                elapsed_us = self.started.elapsed().as_micros() as u64,
                outcome = match &outcome { Ok(_) => "ok", Err(error) => error_kind(error) },
                waited_for_slot = self.waited_for_slot,
                "call"
            );
        }
        (!self.oneway).then_some(outcome)
    }
}

/// A short name for an outcome, for the call's trace event.
fn error_kind(error: &RemoteError) -> &'static str {
    match error {
        RemoteError::UnknownObject { .. } => "unknown object",
        RemoteError::UnknownMethod { .. } => "unknown method",
        RemoteError::BadArguments { .. } => "bad arguments",
        RemoteError::Panicked { .. } => "panicked",
        RemoteError::DeadlineExceeded { .. } => "deadline exceeded",
        RemoteError::ReplyTooLarge { .. } => "reply too large",
        _ => "failed",
    }
}

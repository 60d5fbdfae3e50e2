//! `Writer`: sends a proxy's frames. A lone caller whose frame finds the socket idle writes it
//! itself, without waking another task. Frames of callers with others in flight, and frames
//! that find the socket busy or full, queue up for a background task, which lets the callers
//! ready in the same pass of the scheduler queue theirs and writes them all in one write.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BytesMut;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::pending::{Ended, Pending};
use super::socket::WriteHalf;
use crate::connection::Outgoing;
use crate::error::{Disconnect, Error};
use crate::protocol::{Flags, Kind, Message};

#[derive(Debug)]
pub(crate) struct Writer {
    half: WriteHalf,
    state: Mutex<State>,
    /// Wakes the background task when frames are queued for it.
    queued: Notify,
    pending: Arc<Pending>,
}

#[derive(Debug, Default)]
struct State {
    outgoing: Outgoing,
    /// The background task owns the queue until it has written everything.
    draining: bool,
    /// Why writing failed, once it has.
    failed: Option<Disconnect>,
}

impl Writer {
    /// A writer for `half` and the task that drains its queue; failures end `pending`.
    pub(crate) fn start(half: WriteHalf, pending: Arc<Pending>) -> (Arc<Writer>, JoinHandle<()>) {
        let writer = Arc::new(Writer {
            half,
            state: Mutex::new(State::default()),
            queued: Notify::new(),
            pending,
        });
        let task = tokio::spawn(writer.clone().drain());
        (writer, task)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; recover anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer for the next frame, reusing one already written if there is one.
    pub(crate) fn take_spare(&self) -> BytesMut {
        self.state().outgoing.take_spare()
    }

    /// Tells the daemon to stop working on the call `request_id`. Best effort: if the
    /// connection has failed, the daemon drops the work at the call's deadline anyway.
    pub(crate) fn cancel(&self, request_id: u64) {
        if let Ok(cancel) = Message::encode(Kind::Cancel, Flags::NONE, request_id, &[], 0) {
            let _ = self.send(cancel);
        }
    }

    /// Queues `frame` to leave with the next frame sent, in one write.
    pub(crate) fn send_with_next(&self, frame: BytesMut) {
        self.state().outgoing.push(frame);
    }

    /// The state, with `frame` queued in order, unless the connection has failed.
    fn queue(&self, frame: BytesMut) -> Result<MutexGuard<'_, State>, Error> {
        let mut state = self.state();
        if let Some(failed) = &state.failed {
            return Err(Error::ConnectionLost(failed.clone()));
        }
        state.outgoing.push(frame);
        Ok(state)
    }

    /// Queues `frame` for the background task, to leave with the frames that other callers
    /// queue in the same pass of the scheduler. Never waits.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] if the connection has failed.
    pub(crate) fn send_joined(&self, frame: BytesMut) -> Result<(), Error> {
        let mut state = self.queue(frame)?;
        if !state.draining {
            state.draining = true;
            self.queued.notify_one();
        }
        Ok(())
    }

    /// Sends `frame`: written now if the socket takes it, else queued in order. Never waits.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] if the connection has failed.
    pub(crate) fn send(&self, frame: BytesMut) -> Result<(), Error> {
        let mut state = self.queue(frame)?;
        if state.draining {
            return Ok(());
        }
        // Writing while holding the lock keeps frames in order; `try_write` never waits.
        if let Err(error) = state
            .outgoing
            .try_write_with(|slices| self.half.try_write_vectored(slices))
        {
            drop(state);
            return Err(Error::ConnectionLost(self.fail(error)));
        }
        if !state.outgoing.is_empty() {
            state.draining = true;
            self.queued.notify_one();
        }
        Ok(())
    }

    /// The background task: whenever it is handed the queue, writes it out as the socket
    /// becomes writable, then hands it back.
    async fn drain(self: Arc<Self>) {
        loop {
            self.queued.notified().await;
            // Callers ready in this pass of the scheduler queue their frames first.
            tokio::task::yield_now().await;
            loop {
                if let Err(error) = self.half.writable().await {
                    let _ = self.fail(error);
                    return;
                }
                let mut state = self.state();
                match state
                    .outgoing
                    .try_write_with(|slices| self.half.try_write_vectored(slices))
                {
                    Ok(_) if state.outgoing.is_empty() => {
                        state.draining = false;
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        drop(state);
                        let _ = self.fail(error);
                        return;
                    }
                }
            }
        }
    }

    /// Ends the connection for a failed write; why.
    fn fail(&self, error: std::io::Error) -> Disconnect {
        let failed = Disconnect::Write(Arc::new(error));
        self.state().failed = Some(failed.clone());
        self.pending.end(Ended::Lost(failed.clone()));
        failed
    }
}

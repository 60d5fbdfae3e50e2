//! One accepted connection: handshake, then read calls, run them, send replies, until the
//! peer leaves or the daemon shuts down.
//!
//! This is the driver of a [`DaemonConversation`], which holds the protocol's rules: the
//! session moves bytes, runs calls and keeps time. One task does all of it: it reads frames,
//! runs each call's future once on the spot (a method that finishes without waiting, which
//! most do, costs no task spawn and no hand-off), spawns only the calls that must wait, and
//! writes every reply that is ready in one write.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::{AbortHandle, JoinSet};

use super::Shared;
use super::call::{self, CallContext, Incoming, Method, Outcome, Started};
use super::registry::Object;
use crate::codec::Format;
use crate::connection::{FrameReader, Outgoing, ReadError};
use crate::dispatch::{Args, Dispatch};
use crate::protocol::conversation::authentication::DaemonAuth;
use crate::protocol::conversation::{DaemonConversation, DaemonEvent};
use crate::protocol::{FrameBuilder, HEADER_LEN, Invoke, Message, ProtocolError, RemoteError};
use crate::secret::fresh_nonce;

/// The idle timer of a connection. The session's loop asks it on every pass; polling a tokio
/// timer on every pass registers the task's waker each time (about 240 instructions a call),
/// so it is registered once per arming, and later passes only look whether it has fired.
struct IdleTimer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    registered: bool,
}

impl IdleTimer {
    fn new(after: Duration) -> IdleTimer {
        IdleTimer {
            sleep: Box::pin(tokio::time::sleep(after)),
            registered: false,
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.registered {
            // The waker given here is this session task's, which every later pass shares.
            self.registered = true;
            return self.sleep.as_mut().poll(cx);
        }
        if self.sleep.is_elapsed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn reset(&mut self, after: Duration) {
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + after);
        self.registered = false;
    }
}

/// What a connection's read brought: a message, or (at a cap) bytes read ahead.
enum Read {
    Message(Result<Option<Message>, ReadError>),
    Ahead(std::io::Result<usize>),
}

/// The next message, or at a cap, more bytes read ahead undecoded.
async fn next_read<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>, at_cap: bool) -> Read {
    if at_cap {
        Read::Ahead(reader.read_ahead(READ_AHEAD_AT_CAP).await)
    } else {
        Read::Message(reader.read_message().await)
    }
}

/// How many bytes a connection at one of its caps may still have read ahead, undecoded.
const READ_AHEAD_AT_CAP: usize = 16 * 1024;

/// Serves one connection until the peer closes it or the daemon shuts down.
pub(crate) async fn serve<R, W>(read: R, write: W, peer: Peer, shared: Arc<Shared>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let handshake_limit = config.max_handshake_size.saturating_sub(HEADER_LEN);
    let reader = FrameReader::new(read, handshake_limit, config.frame_timeout)
        .with_budget(shared.buffer_budget.clone());
    let conversation = DaemonConversation::new(Format::Bincode);
    let conversation = match &config.secret {
        None => conversation,
        Some(secret) => match fresh_nonce() {
            Ok(nonce) => conversation.authenticating(DaemonAuth {
                secret: secret.clone(),
                nonce,
                required: !config.allow_unauthenticated,
            }),
            Err(error) => {
                tracing::warn!(target: "rpc_core::daemon", %peer, %error, "no nonce for the connection; dropping it");
                return;
            }
        },
    };
    let mut session = Session {
        shared: shared.clone(),
        peer,
        writer: write,
        outgoing: Outgoing::default(),
        conversation,
        format: Format::Bincode,
        instance: None,
        calls: JoinSet::new(),
        at_call_cap: None,
        resumed_from_cap: false,
    };
    if let Err(error) = session.run(reader).await {
        tracing::debug!(target: "rpc_core::daemon", peer = %session.peer, %error, "connection write failed");
    }
}

/// Who is at the other end of a connection.
pub(crate) struct Peer {
    /// For the logs: its socket address, or `unix`.
    pub(crate) label: Arc<str>,
    /// Its IP address; `None` over a Unix socket.
    pub(crate) ip: Option<IpAddr>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

struct Session<W> {
    shared: Arc<Shared>,
    peer: Peer,
    writer: W,
    outgoing: Outgoing,
    /// The protocol's rules; it knows each waiting call by its task's abort handle.
    conversation: DaemonConversation<AbortHandle>,
    format: Format,
    /// This connection's instance of a `session` mode object.
    instance: Option<Arc<dyn Dispatch>>,
    /// Calls that had to be spawned; each task returns its request id and outcome.
    calls: JoinSet<(u64, Option<Outcome>)>,
    /// Since when reading has paused because `Config::max_calls_per_connection` calls run.
    at_call_cap: Option<std::time::Instant>,
    /// Whether the calls being read now waited for a slot (reading had paused at the cap).
    resumed_from_cap: bool,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: FrameReader<R>,
    ) -> std::io::Result<()> {
        let Some(object) = self.handshake(&mut reader).await else {
            return self.close_now().await;
        };
        reader.set_max_body_len(self.shared.config.max_body_len());
        let max_calls = self.shared.config.max_calls_per_connection.max(1);
        let max_queued = self.shared.config.max_queued_bytes;
        // A client sends its first call right behind the handshake: answer both in one write.
        if let Err(error) = self.handle_buffered(&object, &mut reader, max_calls, max_queued) {
            self.close(error);
            return self.close_now().await;
        }
        let shared = self.shared.clone();
        let mut shutdown = shared.shutdown.watch();
        // One timer per connection, re-armed once per period rather than per frame: a
        // connection is closed after one to two idle periods without a frame.
        let idle_timeout = shared.config.idle_timeout;
        let mut idle = IdleTimer::new(idle_timeout.unwrap_or(Duration::MAX / 4));
        let mut frames_at_arming = self.conversation.frames_received();
        loop {
            let at_cap = self.calls.len() >= max_calls || self.outgoing.len() >= max_queued;
            let may_read_ahead = reader.buffered_len() < READ_AHEAD_AT_CAP;
            tokio::select! {
                biased;
                written = self.outgoing.write_to(&mut self.writer), if !self.outgoing.is_empty() => written?,
                Some(done) = self.calls.join_next(), if !self.calls.is_empty() => {
                    self.finished(done);
                    self.note_call_cap(max_calls);
                }
                () = &mut shutdown => break,
                () = std::future::poll_fn(|cx| idle.poll_expired(cx)), if idle_timeout.is_some() => {
                    let quiet = self.conversation.frames_received() == frames_at_arming
                        && self.calls.is_empty()
                        && self.outgoing.is_empty();
                    if let (true, Some(after)) = (quiet, idle_timeout) {
                        tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, ?after, "closing an idle connection");
                        self.outgoing.push(self.conversation.close(&RemoteError::Idle { after }));
                        return self.close_now().await;
                    }
                    frames_at_arming = self.conversation.frames_received();
                    idle.reset(idle_timeout.unwrap_or_default());
                }
                // At either cap, frames are no longer read: the peer waits, and TCP flow
                // control slows it. A little more is still taken in, undecoded, so that a peer
                // that leaves is noticed (and its calls cancelled) even while it is at a cap.
                read = next_read(&mut reader, at_cap), if !at_cap || may_read_ahead => {
                    let message = match read {
                        Read::Ahead(Ok(0) | Err(_)) => return self.peer_gone().await,
                        Read::Ahead(Ok(_)) => continue,
                        Read::Message(message) => message,
                    };
                    let outcome = match message {
                        Ok(Some(message)) => self
                            .handle(&object, message)
                            .and_then(|()| self.handle_buffered(&object, &mut reader, max_calls, max_queued)),
                        Ok(None) => return self.peer_gone().await,
                        Err(ReadError::Protocol(error)) => Err(error),
                        Err(ReadError::Io(error)) => {
                            tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, %error, "connection failed");
                            return self.peer_gone().await;
                        }
                    };
                    if let Err(error) = outcome {
                        self.close(error);
                        return self.close_now().await;
                    }
                    self.resumed_from_cap = false;
                    self.note_call_cap(max_calls);
                    self.write_now()?;
                }
            }
        }
        self.finish().await
    }

    /// Traces when reading pauses at the call cap and when it resumes, so that calls that
    /// waited for a slot can be told apart (their own events say `waited_for_slot`).
    #[inline]
    fn note_call_cap(&mut self, max_calls: usize) {
        if self.at_call_cap.is_none() && self.calls.len() < max_calls {
            return;
        }
        match self.at_call_cap {
            None if self.calls.len() >= max_calls => {
                self.at_call_cap = Some(std::time::Instant::now());
                tracing::debug!(
                    target: "rpc_core::daemon",
                    peer = %self.peer,
                    max_calls,
                    "connection at its call cap (`Config::max_calls_per_connection`); its next calls wait for a slot"
                );
            }
            Some(since) if self.calls.len() < max_calls => {
                self.at_call_cap = None;
                self.resumed_from_cap = true;
                tracing::debug!(
                    target: "rpc_core::daemon",
                    peer = %self.peer,
                    paused_us = since.elapsed().as_micros() as u64,
                    "a call slot is free; reading resumes"
                );
            }
            _ => {}
        }
    }

    /// Writes the replies that are ready, if the socket takes them now: it almost always does,
    /// and a reply sent here saves a pass through the loop. What it does not take waits for
    /// the loop's write branch.
    fn write_now(&mut self) -> std::io::Result<()> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.outgoing.poll_write_to(&mut self.writer, &mut cx) {
            Poll::Ready(written) => written,
            Poll::Pending => Ok(()),
        }
    }

    /// The peer closed the connection (or it failed): nobody can take the replies, so the
    /// calls are cancelled, as a dropped call future cancels one, and the slot frees at once.
    async fn peer_gone(&mut self) -> std::io::Result<()> {
        self.conversation.end().for_each(|call| call.abort());
        self.calls.shutdown().await;
        Ok(())
    }

    /// Ends the connection after what is queued (a `Close` frame last, if any): the calls
    /// still running are cancelled and send nothing more.
    async fn close_now(&mut self) -> std::io::Result<()> {
        self.peer_gone().await?;
        // A peer that does not read gets the frame deadline to take the rest, not forever.
        let flushed = async {
            self.outgoing.flush_to(&mut self.writer).await?;
            self.writer.shutdown().await
        };
        tokio::time::timeout(self.shared.config.frame_timeout, flushed)
            .await
            .unwrap_or(Ok(()))
    }

    /// Lets the spawned calls finish, then writes every reply still queued. A shutdown bounds
    /// how long this takes from outside.
    async fn finish(&mut self) -> std::io::Result<()> {
        while let Some(done) = self.calls.join_next().await {
            self.finished(done);
        }
        // After the last reply, tell a client of a daemon that is going away why the
        // connection closes.
        if self.shared.shutdown.is_triggered() {
            let frame = self.conversation.close(&RemoteError::ShuttingDown);
            self.outgoing.push(frame);
        }
        self.outgoing.flush_to(&mut self.writer).await?;
        self.writer.shutdown().await
    }

    /// Reads the handshake and answers it; the object to serve, if the handshake succeeded.
    async fn handshake<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
    ) -> Option<Arc<Object>> {
        let timeout = self.shared.config.handshake_timeout;
        // The whole opening, an auth exchange included, has one deadline.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match tokio::time::timeout_at(deadline, reader.read_message()).await {
                Err(_) => {
                    tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, "no handshake within {timeout:?}");
                    return None;
                }
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) | Ok(Err(ReadError::Io(_))) => return None,
                Ok(Err(ReadError::Protocol(error))) => {
                    self.close(error);
                    return None;
                }
            };
            match self.conversation.receive(&message) {
                Ok(DaemonEvent::Handshake { request_id, object }) => {
                    return self.answer_handshake(request_id, &object);
                }
                // The challenge to an auth: the client answers it before its handshake.
                Ok(DaemonEvent::Send(frame)) => {
                    self.outgoing.push(frame);
                    if self.outgoing.flush_to(&mut self.writer).await.is_err() {
                        return None;
                    }
                }
                Ok(DaemonEvent::Close(frame)) => {
                    tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, "authentication failed; closing");
                    self.outgoing.push(frame);
                    return None;
                }
                // The client proved the secret; its handshake comes next.
                Ok(_) => {}
                Err(error) => {
                    self.close(error);
                    return None;
                }
            }
        }
    }

    /// Answers the handshake for the object `id`: the object, if there is one.
    fn answer_handshake(&mut self, request_id: u64, id: &str) -> Option<Arc<Object>> {
        match self.shared.registry.get(id) {
            Some(object) => {
                self.outgoing.push(self.conversation.accept(request_id));
                Some(object)
            }
            None => {
                tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, object = %id, "handshake for an unknown object");
                let error = RemoteError::UnknownObject {
                    object: id.to_owned(),
                };
                self.outgoing
                    .push(self.conversation.refuse(request_id, &error));
                None
            }
        }
    }

    /// Acts on the frames that have already arrived whole, within the caps, before any reply
    /// is written: frames that arrive together get their replies written together.
    fn handle_buffered<R: AsyncRead + Unpin>(
        &mut self,
        object: &Arc<Object>,
        reader: &mut FrameReader<R>,
        max_calls: usize,
        max_queued: usize,
    ) -> Result<(), ProtocolError> {
        while self.calls.len() < max_calls && self.outgoing.len() < max_queued {
            match reader.buffered_message()? {
                Some(message) => self.handle(object, message)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Acts on one message after the handshake.
    fn handle(&mut self, object: &Arc<Object>, message: Message) -> Result<(), ProtocolError> {
        match self.conversation.receive(&message)? {
            DaemonEvent::Invoke {
                request_id,
                oneway,
                invoke,
            } => self.start_call(object, &message, request_id, oneway, invoke),
            DaemonEvent::Cancel(call) => call.abort(),
            DaemonEvent::Send(frame) => self.outgoing.push(frame),
            // Handshakes and the auth exchange are events only before the conversation opens.
            DaemonEvent::Nothing | DaemonEvent::Handshake { .. } | DaemonEvent::Close(_) => {}
        }
        Ok(())
    }

    fn start_call(
        &mut self,
        object: &Arc<Object>,
        message: &Message,
        request_id: u64,
        oneway: bool,
        invoke: Invoke<'_>,
    ) {
        let context = CallContext {
            object,
            session: &mut self.instance,
            format: self.format,
            max_body_len: self.shared.config.max_body_len(),
            max_nesting_depth: self.shared.config.max_nesting_depth,
            max_call_duration: self.shared.config.max_call_duration,
            peer: &self.peer.label,
            peer_ip: self.peer.ip,
            authenticated: self.conversation.is_authenticated(),
            waited_for_slot: self.resumed_from_cap,
            reply_buffer: FrameBuilder::headroom(self.outgoing.take_spare()),
            headroom: HEADER_LEN,
        };
        let incoming = Incoming {
            request_id,
            oneway,
            method: invoke.method,
            args: Args::Encoded(invoke.args),
            deadline: invoke.deadline,
            name: Method::InBody(message.body.clone()),
        };
        match call::start(context, incoming) {
            Started::Done(outcome) => {
                if let Some(outcome) = outcome {
                    self.outgoing
                        .push(self.conversation.reply(request_id, outcome));
                }
            }
            Started::Waiting(rest) => {
                let task = self.calls.spawn(async move { (request_id, rest.await) });
                self.conversation.waiting(request_id, task);
            }
        }
    }

    /// Queues the reply of a spawned call that ended. A cancelled call was aborted, and the
    /// conversation forgot it then: it gets no reply.
    fn finished(&mut self, done: Result<(u64, Option<Outcome>), tokio::task::JoinError>) {
        if let Ok((request_id, outcome)) = done
            && self.conversation.finished(request_id)
            && let Some(outcome) = outcome
        {
            self.outgoing
                .push(self.conversation.reply(request_id, outcome));
        }
    }

    /// Queues a frame telling the peer why the daemon closes the connection.
    fn close(&mut self, error: ProtocolError) {
        tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, %error, "closing connection");
        self.outgoing.push(self.conversation.fail(&error));
    }
}

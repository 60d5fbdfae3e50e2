//! One Pyro5 connection: the driver of a [`Pyro5Conversation`].
//!
//! A Pyro5 client sends one call and waits for its result, so this session runs one call at
//! a time, reading the socket meanwhile only to notice a client that leaves (its call is then
//! cancelled). Oneway calls that must wait run as tasks, at most
//! `Config::max_calls_per_connection` at once. Every limit of our own protocol holds: the
//! handshake size and deadline, the message size, the frame deadline and the shared buffer
//! budget, the idle timeout and the call deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

use super::Shared;
use super::call::{self, CallContext, Incoming, Method, Started};
use super::pyro5_daemon_object::{self as daemon_object, DAEMON_OBJECT_ID};
use super::registry::Object;
use super::session::Peer;
use crate::codec::{Format, PyException};
use crate::connection::{FrameReader, ReadError};
use crate::dispatch::{Args, Dispatch, Encoded};
use crate::protocol::RemoteError;
use crate::protocol::pyro5::body::Invocation;
use crate::protocol::pyro5::conversation::{Pyro5Conversation, Pyro5Event, Request};
use crate::protocol::pyro5::exception::exception_for;
use crate::protocol::pyro5::{self, HEADER_LEN, Pyro5Message};

/// How many bytes a client may send, unread, while its call runs: a Pyro5 client sends
/// nothing then, so this only lets a close be seen.
const READ_AHEAD_DURING_CALL: usize = 16 * 1024;

/// Serves one Pyro5 connection until the client leaves, breaks the protocol, idles past the
/// idle timeout, or the daemon shuts down.
pub(crate) async fn serve<R, W>(read: R, write: W, peer: Peer, shared: Arc<Shared>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let reader = FrameReader::<R, Pyro5Message>::new(
        read,
        config.max_handshake_size.saturating_sub(HEADER_LEN),
        config.frame_timeout,
    )
    .with_budget(shared.buffer_budget.clone());
    let mut session = Session {
        conversation: Pyro5Conversation::new(config.max_nesting_depth),
        shared: shared.clone(),
        peer,
        writer: write,
        instances: HashMap::new(),
        oneways: JoinSet::new(),
    };
    if let Err(error) = session.run(reader).await {
        tracing::debug!(target: "rpc_core::daemon", peer = %session.peer, %error, "Pyro5 connection failed");
    }
    session.oneways.shutdown().await;
}

struct Session<W> {
    conversation: Pyro5Conversation,
    shared: Arc<Shared>,
    peer: Peer,
    writer: W,
    /// This connection's instances of `session` mode objects, by object id: a Pyro5
    /// connection may call any object of the daemon.
    instances: HashMap<Arc<str>, Option<Arc<dyn Dispatch>>>,
    /// Oneway calls that had to wait.
    oneways: JoinSet<()>,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut reader: FrameReader<R, Pyro5Message>,
    ) -> std::io::Result<()> {
        if !self.handshake(&mut reader).await? {
            return self.writer.shutdown().await;
        }
        reader.set_max_body_len(self.shared.config.max_body_len());
        let shared = self.shared.clone();
        let mut shutdown = shared.shutdown.watch();
        let idle = shared.config.idle_timeout.unwrap_or(Duration::MAX / 4);
        loop {
            let message = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = self.oneways.join_next(), if !self.oneways.is_empty() => continue,
                read = tokio::time::timeout(idle, reader.read_message()) => match read {
                    Err(_) => {
                        tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, "closing an idle Pyro5 connection");
                        break;
                    }
                    Ok(Ok(Some(message))) => message,
                    Ok(Ok(None)) => return Ok(()),
                    Ok(Err(error)) => return self.broken(error).await,
                },
            };
            let (request, event) = self.conversation.receive(&message);
            match event {
                Pyro5Event::Send(frame) => self.send(frame).await?,
                Pyro5Event::Close(frame) => {
                    tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, kind = message.msg_type, "unexpected Pyro5 message; closing");
                    if let Some(frame) = frame {
                        self.send(frame).await?;
                    }
                    break;
                }
                // Only before the handshake.
                Pyro5Event::Connect { .. } => break,
                Pyro5Event::Invoke {
                    invocation,
                    format,
                    oneway,
                } => {
                    let Some(frame) = self
                        .invoke(&mut reader, request, invocation, format, oneway)
                        .await
                    else {
                        // The client left during its call.
                        return Ok(());
                    };
                    if !oneway {
                        self.send(frame).await?;
                    }
                }
            }
        }
        self.writer.shutdown().await
    }

    async fn send(&mut self, frame: BytesMut) -> std::io::Result<()> {
        if frame.is_empty() {
            return Ok(());
        }
        let timeout = self.shared.config.frame_timeout;
        match tokio::time::timeout(timeout, self.writer.write_all(&frame)).await {
            Ok(written) => written,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took no reply within {timeout:?}"),
            )),
        }
    }

    async fn broken(&mut self, error: ReadError) -> std::io::Result<()> {
        if let ReadError::Protocol(error) = &error {
            tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, %error, "Pyro5 protocol error; closing");
        }
        self.writer.shutdown().await
    }

    /// Reads the CONNECT and answers it; whether the connection opened.
    async fn handshake<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R, Pyro5Message>,
    ) -> std::io::Result<bool> {
        let timeout = self.shared.config.handshake_timeout;
        let message = match tokio::time::timeout(timeout, reader.read_message()).await {
            Ok(Ok(Some(message))) => message,
            Err(_) => {
                tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, "no Pyro5 handshake within {timeout:?}");
                return Ok(false);
            }
            Ok(Ok(None)) => return Ok(false),
            Ok(Err(error)) => {
                self.broken(error).await?;
                return Ok(false);
            }
        };
        let (request, event) = self.conversation.receive(&message);
        let object = match event {
            Pyro5Event::Connect { object } => object,
            Pyro5Event::Close(Some(frame)) | Pyro5Event::Send(frame) => {
                self.send(frame).await?;
                return Ok(false);
            }
            Pyro5Event::Close(None) | Pyro5Event::Invoke { .. } => return Ok(false),
        };
        let config = &self.shared.config;
        if config.secret.is_some() && !config.allow_unauthenticated {
            let refusal = self.conversation.refuse(
                request,
                "this daemon requires a shared secret, which Pyro5 clients cannot prove",
            );
            self.send(refusal).await?;
            return Ok(false);
        }
        let methods = if object == DAEMON_OBJECT_ID {
            Some(daemon_object::METHODS)
        } else {
            self.shared
                .pyro5_object(&object)
                .map(|object| object.methods())
        };
        let Some(methods) = methods else {
            tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, %object, "Pyro5 handshake for an unknown object");
            let refusal = self.conversation.refuse(request, "unknown object");
            self.send(refusal).await?;
            return Ok(false);
        };
        let accepted = self.conversation.accept(request, methods);
        self.send(accepted).await?;
        Ok(true)
    }

    /// Runs one call; its answer (empty for a oneway call), or `None` if the client left
    /// while it ran.
    async fn invoke<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R, Pyro5Message>,
        request: Request,
        invocation: Invocation,
        format: Format,
        oneway: bool,
    ) -> Option<BytesMut> {
        if invocation.object == DAEMON_OBJECT_ID {
            let answer = daemon_object::call(&self.shared, invocation);
            return Some(self.answer(
                request,
                format,
                answer.map(|value| {
                    let mut buf = pyro5::frame_buffer(b"");
                    let _ = format.encode_into(&value, &mut buf);
                    Encoded::from_parts(buf, HEADER_LEN)
                }),
            ));
        }
        let Some(object) = self.shared.pyro5_object(&invocation.object) else {
            let error = RemoteError::UnknownObject {
                object: invocation.object,
            };
            return Some(self.answer(request, format, Err(exception_for(&error))));
        };
        let started = match self.start(&object, invocation, format, oneway) {
            Ok(started) => started,
            Err(exception) => return Some(self.answer(request, format, Err(exception))),
        };
        let outcome = match started {
            Started::Done(outcome) => outcome,
            Started::Waiting(rest) if oneway => {
                let max = self.shared.config.max_calls_per_connection.max(1);
                while self.oneways.len() >= max {
                    self.oneways.join_next().await;
                }
                self.oneways.spawn(async move {
                    rest.await;
                });
                None
            }
            Started::Waiting(rest) => {
                let mut rest = rest;
                loop {
                    tokio::select! {
                        outcome = &mut rest => break outcome,
                        read = reader.read_ahead(READ_AHEAD_DURING_CALL), if reader.buffered_len() < READ_AHEAD_DURING_CALL => {
                            if matches!(read, Ok(0) | Err(_)) {
                                return None;
                            }
                        }
                    }
                }
            }
        };
        let Some(outcome) = outcome else {
            return Some(BytesMut::new());
        };
        Some(self.answer(
            request,
            format,
            outcome.map_err(|error| exception_for(&error)),
        ))
    }

    fn answer(
        &self,
        request: Request,
        format: Format,
        outcome: Result<Encoded, PyException>,
    ) -> BytesMut {
        match outcome {
            Ok(encoded) => self.conversation.reply(request, encoded),
            Err(exception) => self.conversation.raise(request, format, &exception),
        }
    }

    /// Binds the call's arguments and starts it on `object`.
    fn start(
        &mut self,
        object: &Arc<Object>,
        invocation: Invocation,
        format: Format,
        oneway: bool,
    ) -> Result<Started, PyException> {
        let method = invocation.method.clone();
        let params = object
            .methods()
            .iter()
            .find(|info| info.name == method)
            .map_or(&[][..], |info| info.params);
        let bound = invocation
            .bind(params)
            .map_err(|message| PyException::new("builtins.TypeError", message))?;
        let config = &self.shared.config;
        let slot = self.instances.entry(object.id().clone()).or_default();
        let context = CallContext {
            object,
            session: slot,
            format,
            max_body_len: config.max_body_len(),
            max_nesting_depth: config.max_nesting_depth.min(pyro5::MAX_NESTING),
            max_call_duration: config.max_call_duration,
            peer: &self.peer.label,
            peer_ip: self.peer.ip,
            authenticated: false,
            waited_for_slot: false,
            reply_buffer: pyro5::frame_buffer(b""),
            headroom: HEADER_LEN,
        };
        let incoming = Incoming {
            request_id: 0,
            oneway,
            method: &method,
            args: Args::Python {
                args: &bound.args,
                missing: &bound.missing,
            },
            deadline: None,
            name: Method::Owned(method.as_str().into()),
        };
        Ok(call::start(context, incoming))
    }
}

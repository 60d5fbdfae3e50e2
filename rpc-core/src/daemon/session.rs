//! One accepted connection: handshake, then read calls, run them, send replies, until the
//! peer leaves or the daemon shuts down.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::Shared;
use super::registry::{Object, panic_message};
use crate::codec::Format;
use crate::connection::{FrameReader, ReadError, write_frames};
use crate::dispatch::{Call, Dispatch};
use crate::protocol::{Flags, Invoke, Kind, Message, ProtocolError, RemoteError};

/// Serves one connection until the peer closes it or the daemon shuts down.
pub(crate) async fn serve<R, W>(read: R, write: W, peer: Arc<str>, shared: Arc<Shared>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let (frames, outgoing) = mpsc::channel(config.max_calls_per_connection.max(1));
    let reader = FrameReader::new(read, config.max_body_len(), config.frame_timeout);
    let session = Session {
        shared: shared.clone(),
        peer,
        frames,
        format: Format::Bincode,
        instance: None,
        calls: JoinSet::new(),
        in_flight: HashMap::new(),
    };
    // The writer ends once the session and every call task have dropped their senders, so
    // replies still queued are written before the socket closes.
    let (_, written) = tokio::join!(session.run(reader), write_frames(write, outgoing));
    if let Err(error) = written {
        tracing::debug!(target: "rpc_core::daemon", %error, "connection write failed");
    }
}

struct Session {
    shared: Arc<Shared>,
    peer: Arc<str>,
    frames: mpsc::Sender<Bytes>,
    format: Format,
    /// This connection's instance of a `session` mode object.
    instance: Option<Arc<dyn Dispatch>>,
    /// Running calls; each task returns its request id.
    calls: JoinSet<u64>,
    in_flight: HashMap<u64, AbortHandle>,
}

impl Session {
    async fn run<R: AsyncRead + Unpin>(mut self, mut reader: FrameReader<R>) {
        let Some(object) = self.handshake(&mut reader).await else {
            return;
        };
        let max_calls = self.shared.config.max_calls_per_connection.max(1);
        let shutdown = self.shared.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                Some(done) = self.calls.join_next(), if !self.calls.is_empty() => {
                    // A cancelled task was removed from `in_flight` when it was aborted.
                    if let Ok(request_id) = done {
                        self.in_flight.remove(&request_id);
                    }
                }
                () = shutdown.cancelled() => break,
                message = reader.read_message(), if self.calls.len() < max_calls => {
                    match message {
                        Ok(Some(message)) => {
                            if let Err(error) = self.handle(&object, message).await {
                                self.close(error).await;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(ReadError::Protocol(error)) => {
                            self.close(error).await;
                            break;
                        }
                        Err(ReadError::Io(error)) => {
                            tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, %error, "connection failed");
                            break;
                        }
                    }
                }
            }
        }
        // Calls in flight finish and send their replies; a shutdown bounds how long this takes.
        while self.calls.join_next().await.is_some() {}
    }

    /// Reads the handshake and answers it; the object to serve, if the handshake succeeded.
    async fn handshake<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
    ) -> Option<Arc<Object>> {
        let timeout = self.shared.config.handshake_timeout;
        let message = match tokio::time::timeout(timeout, reader.read_message()).await {
            Err(_) => {
                tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, "no handshake within {timeout:?}");
                return None;
            }
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) | Ok(Err(ReadError::Io(_))) => return None,
            Ok(Err(ReadError::Protocol(error))) => {
                self.close(error).await;
                return None;
            }
        };
        if message.header.kind != Kind::Handshake {
            self.close(ProtocolError::Unexpected {
                kind: message.header.kind,
                context: "the first message must be a handshake",
            })
            .await;
            return None;
        }
        let id = String::from_utf8_lossy(&message.body);
        let request_id = message.header.request_id;
        match self.shared.registry.get(&id) {
            Some(object) => {
                let reply = Message::encode(Kind::HandshakeReply, Flags::NONE, request_id, &[], 0);
                // An empty body always fits, so the frame always encodes.
                if let Ok(frame) = reply {
                    self.frames.send(frame).await.ok()?;
                }
                Some(object)
            }
            None => {
                tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, object = %id, "handshake for an unknown object");
                let error = RemoteError::UnknownObject {
                    object: id.into_owned(),
                };
                let frame = failure_frame(self.format, Kind::HandshakeReply, request_id, &error);
                let _ = self.frames.send(frame).await;
                None
            }
        }
    }

    /// Acts on one message after the handshake.
    async fn handle(
        &mut self,
        object: &Arc<Object>,
        message: Message,
    ) -> Result<(), ProtocolError> {
        let request_id = message.header.request_id;
        match message.header.kind {
            Kind::Invoke => self.start_call(object, message),
            Kind::Cancel => {
                if let Some(call) = self.in_flight.remove(&request_id) {
                    call.abort();
                }
                Ok(())
            }
            Kind::Ping => {
                let max = self.shared.config.max_body_len();
                let pong =
                    Message::encode(Kind::Pong, Flags::NONE, request_id, &message.body, max)?;
                let _ = self.frames.send(pong).await;
                Ok(())
            }
            Kind::Pong => Ok(()),
            kind => Err(ProtocolError::Unexpected {
                kind,
                context: "a client sends only invoke, cancel, ping and pong after its handshake",
            }),
        }
    }

    fn start_call(&mut self, object: &Arc<Object>, message: Message) -> Result<(), ProtocolError> {
        let header = message.header;
        let invoke = Invoke::decode(&message.body)?;
        let oneway = header.flags.contains(Flags::ONEWAY);
        if self.in_flight.contains_key(&header.request_id) {
            return Err(ProtocolError::Malformed {
                what: "invoke",
                detail: format!("request id {} is already in flight", header.request_id),
            });
        }
        let started = Instant::now();
        let call = Call {
            object: object.id(),
            method: invoke.method,
            args: invoke.args,
            format: self.format,
            request_id: header.request_id,
            oneway,
            max_body_len: self.shared.config.max_body_len(),
        };
        let future = if object.is_registered() {
            object
                .instance_for_call(&mut self.instance, invoke.method)
                .and_then(|instance| instance.dispatch(&call))
        } else {
            Err(RemoteError::UnknownObject {
                object: object.id().to_string(),
            })
        };
        let deadline = invoke.deadline;
        let frames = self.frames.clone();
        let format = self.format;
        let object_id = object.id().clone();
        let peer = self.peer.clone();
        let body = message.body.clone();
        let task = self.calls.spawn(async move {
            let outcome = match future {
                Ok(future) => {
                    let guarded = AssertUnwindSafe(future).catch_unwind();
                    let finished = match deadline {
                        Some(deadline) => tokio::time::timeout(deadline, guarded).await.ok(),
                        None => Some(guarded.await),
                    };
                    let method = || method_name(&body);
                    match finished {
                        None => Err(RemoteError::DeadlineExceeded { method: method() }),
                        Some(Ok(result)) => result,
                        Some(Err(panic)) => Err(RemoteError::Panicked {
                            method: method(),
                            message: panic_message(&*panic),
                        }),
                    }
                }
                Err(error) => Err(error),
            };
            tracing::debug!(
                target: "rpc_core::daemon",
                object = %object_id,
                method = %method_name(&body),
                %peer,
                request_id = header.request_id,
                elapsed_us = started.elapsed().as_micros() as u64,
                outcome = match &outcome { Ok(_) => "ok", Err(error) => error_kind(error) },
                "call"
            );
            if !oneway {
                let frame = outcome.unwrap_or_else(|error| {
                    failure_frame(format, Kind::Reply, header.request_id, &error)
                });
                // A failed send means the connection is gone; nobody is left to tell.
                let _ = frames.send(frame).await;
            }
            header.request_id
        });
        self.in_flight.insert(header.request_id, task);
        Ok(())
    }

    /// Tells the peer why the daemon closes the connection.
    async fn close(&mut self, error: ProtocolError) {
        tracing::debug!(target: "rpc_core::daemon", peer = %self.peer, %error, "closing connection");
        let error = RemoteError::Protocol {
            detail: error.to_string(),
        };
        let _ = self
            .frames
            .send(failure_frame(self.format, Kind::Close, 0, &error))
            .await;
    }
}

/// The method name of an invoke body that already decoded once.
fn method_name(body: &Bytes) -> String {
    Invoke::decode(body).map_or_else(|_| String::new(), |invoke| invoke.method.to_owned())
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

/// A frame carrying `error` in place of a value.
fn failure_frame(format: Format, kind: Kind, request_id: u64, error: &RemoteError) -> Bytes {
    let mut frame = crate::protocol::FrameBuilder::new(kind, Flags::FAILURE, request_id);
    // Encoding a `RemoteError` (strings and integers) into memory cannot fail, and its size
    // is bounded by the daemon's own strings, so the frame is built without a limit.
    let _ = format.encode_into(error, frame.body_mut());
    frame.finish(usize::MAX).unwrap_or_default()
}

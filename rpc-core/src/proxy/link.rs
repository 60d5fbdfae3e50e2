//! `Link`: one open connection of a proxy: its writer, and the reading that waiting callers share.
//!
//! The link drives a [`ClientConversation`], which holds the protocol's rules; the link moves
//! the bytes. Every reply reaches its caller one way: whoever reads it (the caller itself, or
//! another caller reading for everyone) hands it to [`Pending`], and the caller takes it from
//! there.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::lock::{Mutex, MutexGuard};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::pending::{Ended, Pending};
use super::socket::{ReadHalf, WriteHalf};
use super::tls_pump::{TlsFailure, over_tls};
use super::writer::Writer;
use crate::codec::Format;
use crate::config::Config;
use crate::connection::{FrameReader, ReadError};
use crate::error::{Disconnect, Error};
use crate::protocol::conversation::authentication::ClientAuth;
use crate::protocol::conversation::{ClientConversation, ClientEvent, Closing};
use crate::protocol::{Flags, Kind, Message, RemoteError};
use crate::secret::{Secret, fresh_nonce};
use crate::uri::Location;

/// An open, handshaken connection to one object at a daemon.
pub(crate) struct Link {
    pub(crate) writer: Arc<Writer>,
    pub(crate) pending: Arc<Pending>,
    pub(crate) format: Format,
    /// Read by whichever waiting caller holds the lock. (This mutex unlocks with one atomic
    /// operation when nobody waits; tokio's takes a lock every time.)
    reader: Mutex<Reading>,
    writing: JoinHandle<()>,
    /// Fails calls past their deadline, and pings the daemon if keepalive is on.
    watchdog: JoinHandle<()>,
    /// Over TLS: why the session failed, if it did, to report when the connection closes.
    tls_failure: Option<TlsFailure>,
}

/// The receiving side of a link: frames off the socket, and what they mean.
struct Reading {
    frames: FrameReader<ReadHalf>,
    conversation: ClientConversation,
}

impl Reading {
    /// Proves `secret` to the daemon and has it prove the secret back: one round trip, before
    /// the handshake. The proof is queued to leave with the handshake and the first call.
    async fn authenticate(&mut self, secret: &Secret, writer: &Writer) -> Result<(), Error> {
        let nonce = fresh_nonce()
            .map_err(|error| Error::ConnectionLost(Disconnect::Read(Arc::new(error))))?;
        let auth = self.conversation.start_auth(ClientAuth {
            secret: secret.clone(),
            nonce,
        });
        writer.send(auth)?;
        let ended = match self.frames.read_message().await {
            Ok(Some(message)) => match self.conversation.receive(message) {
                ClientEvent::Send(proof) => {
                    writer.send_with_next(proof);
                    return Ok(());
                }
                ClientEvent::Ended(closing) => Ended::from(closing),
                other => Ended::Protocol(crate::protocol::ProtocolError::Malformed {
                    what: "auth challenge",
                    detail: format!("the daemon answered the auth with {other:?}"),
                }),
            },
            Ok(None) => Ended::Lost(Disconnect::Closed),
            Err(error) => read_error(error),
        };
        Err(ended.to_error())
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The last proxy clone is gone: stop the tasks, and close the socket now rather than
        // when the aborted writer task is dropped, so the daemon frees its slot at once.
        self.reader.get_mut().frames.get_ref().shutdown();
        self.writing.abort();
        self.watchdog.abort();
    }
}

impl Link {
    /// Connects to `location`, queues the handshake for `object` to leave with the first
    /// frame, and starts the writer and the watchdog.
    pub(crate) async fn connect(
        location: &Location,
        object: &str,
        config: &Config,
    ) -> Result<Arc<Link>, Error> {
        let address = location.to_string();
        let connect_error = |source| Error::Connect {
            address: address.clone(),
            source,
        };
        let opening = async {
            match location {
                Location::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(connect_error)?;
                    // Small calls must not wait for Nagle's algorithm.
                    stream.set_nodelay(true).map_err(connect_error)?;
                    if let Some(tls) = &config.tls_client {
                        let (local, failure) =
                            over_tls(stream, host, tls)
                                .await
                                .map_err(|source| Error::Tls {
                                    address: address.clone(),
                                    source,
                                })?;
                        let (read, write) = local.into_split();
                        return Link::handshake(
                            ReadHalf::Unix(read),
                            WriteHalf::Unix(write),
                            object,
                            config,
                            Some(failure),
                        )
                        .await;
                    }
                    let (read, write) = stream.into_split();
                    Link::handshake(
                        ReadHalf::Tcp(read),
                        WriteHalf::Tcp(write),
                        object,
                        config,
                        None,
                    )
                    .await
                }
                Location::Unix(path) => {
                    let stream = UnixStream::connect(path).await.map_err(connect_error)?;
                    let (read, write) = stream.into_split();
                    Link::handshake(
                        ReadHalf::Unix(read),
                        WriteHalf::Unix(write),
                        object,
                        config,
                        None,
                    )
                    .await
                }
            }
        };
        match tokio::time::timeout(config.connect_timeout, opening).await {
            Ok(link) => link,
            Err(_) => Err(connect_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no connection within {:?} (see `Config::connect_timeout`)",
                    config.connect_timeout
                ),
            ))),
        }
    }

    /// Sets up a link over a connected socket, with the handshake for `object` queued; with a
    /// secret, after the auth exchange.
    async fn handshake(
        read: ReadHalf,
        write: WriteHalf,
        object: &str,
        config: &Config,
        tls_failure: Option<TlsFailure>,
    ) -> Result<Arc<Link>, Error> {
        let max_body_len = config.max_body_len();
        let hello = ClientConversation::handshake(object, max_body_len)?;
        let format = Format::Bincode;
        let mut reader = Reading {
            frames: FrameReader::new(read, max_body_len, config.frame_timeout),
            conversation: ClientConversation::new(format),
        };
        let pending = Arc::new(Pending::default());
        let (writer, writing) = Writer::start(write, pending.clone());
        if let Some(secret) = &config.secret
            && let Err(error) = reader.authenticate(secret, &writer).await
        {
            writing.abort();
            return Err(error);
        }
        // The handshake leaves with the first call (every use of a link starts with one), in
        // one write, and the daemon's answer is not awaited: it is read with the first reply,
        // saving a round trip. A refusal ends the connection and fails that call with the
        // daemon's reason.
        writer.send_with_next(hello);
        let keepalive = config
            .keepalive_interval
            .map(|interval| (interval, config.keepalive_timeout));
        Ok(Arc::new_cyclic(|link| {
            let watchdog = tokio::spawn(watchdog(
                link.clone(),
                pending.clone(),
                writer.clone(),
                keepalive,
            ));
            Link {
                writer,
                pending,
                format,
                reader: Mutex::new(reader),
                writing,
                watchdog,
                tls_failure,
            }
        }))
    }

    /// Whether the connection can still carry calls.
    ///
    /// A link whose writer task is gone (its runtime shut down, as happens when a proxy
    /// outlives the runtime that connected it) can carry nothing, though nothing ended it.
    pub(crate) fn is_open(&self) -> bool {
        !self.pending.has_ended() && !self.writing.is_finished()
    }

    /// Reads whatever has already arrived while no caller was reading, without waiting, so that
    /// a connection the daemon closed while this proxy was idle is found ended before a call
    /// is sent on it (and the proxy connects again instead). Costs no system call when nothing
    /// arrived: the socket's readiness says so.
    pub(crate) fn read_arrived(&self) {
        let Some(mut reader) = self.reader.try_lock() else {
            return;
        };
        while let Some(read) = reader.frames.try_read_message() {
            if self
                .handle_read(&mut reader.conversation, read, None)
                .is_err()
            {
                return;
            }
        }
    }

    /// Sends `frame` and waits for the frame that answers `request_id`, within `timeout`.
    /// A `cancellable` call the caller stops waiting for, or that times out, is cancelled at
    /// the daemon.
    pub(crate) async fn round_trip(
        &self,
        request_id: u64,
        frame: bytes::BytesMut,
        cancellable: bool,
        timeout: Duration,
    ) -> Result<Message, Error> {
        // The watchdog fails the call with `Error::Timeout` at its deadline, and tells the
        // daemon to stop working on it: no timer per call.
        let others_in_flight = self.pending.insert(request_id, timeout, cancellable)?;
        // From here on, the call's entry is removed when this future ends, however it ends.
        let _in_flight = InFlight {
            link: self,
            request_id,
            cancellable,
        };
        // A lone call is written at once; one among others joins the frames of the callers
        // that run in the same pass, to leave in one write.
        if others_in_flight == 0 {
            self.writer.send(frame)?;
        } else {
            self.writer.send_joined(frame)?;
        }
        self.receive(request_id).await
    }

    /// Acts on the outcome of one read made by the caller waiting for `reading_for`; `Err` when
    /// the connection ended.
    fn handle_read(
        &self,
        conversation: &mut ClientConversation,
        read: Result<Option<Message>, ReadError>,
        reading_for: Option<u64>,
    ) -> Result<(), ()> {
        let ended = match read {
            Ok(Some(message)) => match conversation.receive(message) {
                ClientEvent::Answer(answer) => {
                    // An answer nobody waits for belongs to a call that was cancelled or
                    // timed out, and is dropped.
                    self.pending.complete(answer, reading_for);
                    return Ok(());
                }
                ClientEvent::Send(pong) => {
                    // A failed send has already ended the connection.
                    let _ = self.writer.send(pong);
                    return Ok(());
                }
                ClientEvent::Nothing => return Ok(()),
                ClientEvent::Ended(closing) => Ended::from(closing),
            },
            Ok(None) => match self.tls_failure.as_ref().and_then(TlsFailure::get) {
                Some(error) => Ended::Lost(Disconnect::Tls(error)),
                None => Ended::Lost(Disconnect::Closed),
            },
            Err(error) => read_error(error),
        };
        tracing::debug!(target: "rpc_core::proxy", ?ended, "connection ended");
        self.pending.end(ended);
        Err(())
    }

    /// Waits for the reply to `request_id`, registered in `pending`. While no other caller
    /// reads the connection, this one does, for everyone: a lone caller reads its own reply,
    /// with no hand-off between tasks.
    async fn receive(&self, request_id: u64) -> Result<Message, Error> {
        // Nobody reading, the common case: read at once.
        if let Some(reader) = self.reader.try_lock() {
            return self.read_until_delivered(reader, request_id).await;
        }
        tokio::select! {
            biased;
            outcome = self.delivered(request_id) => outcome,
            reader = self.reader.lock() => self.read_until_delivered(reader, request_id).await,
        }
    }

    /// The outcome of `request_id` once the pending calls have it.
    async fn delivered(&self, request_id: u64) -> Result<Message, Error> {
        std::future::poll_fn(|cx| self.pending.poll_reply(request_id, cx)).await
    }

    /// Reads for everyone until the outcome of `request_id` is known: its reply, or the end of
    /// the connection (a failed keepalive, say), or its deadline.
    async fn read_until_delivered(
        &self,
        mut reader: MutexGuard<'_, Reading>,
        request_id: u64,
    ) -> Result<Message, Error> {
        let Reading {
            frames,
            conversation,
        } = &mut *reader;
        loop {
            tokio::select! {
                biased;
                outcome = self.delivered(request_id) => return outcome,
                read = frames.read_message() => {
                    let _ = self.handle_read(conversation, read, Some(request_id));
                }
            }
        }
    }
}

/// A call in flight on a link; its end, however it comes (a reply, an error, the caller
/// dropping its future), removes its entry from the pending calls, and tells the daemon to
/// stop a cancellable call that was still waiting.
struct InFlight<'a> {
    link: &'a Link,
    request_id: u64,
    cancellable: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.link.pending.remove(self.request_id) && self.cancellable {
            self.link.writer.cancel(self.request_id);
        }
    }
}

impl From<Closing> for Ended {
    fn from(closing: Closing) -> Ended {
        match closing {
            Closing::Refused(refusal) => Ended::Refused(refusal),
            Closing::Closed(reason) => Ended::Lost(Disconnect::ClosedBecause(reason)),
            Closing::Protocol(error) => Ended::Protocol(error),
        }
    }
}

/// Request ids of keepalive pings: the upper half of the id space, which a proxy's own
/// counter never reaches.
const KEEPALIVE_IDS: u64 = 1 << 63;

/// The link's background duty: fails calls past their deadline and, if `keepalive` gives an
/// interval and a timeout, pings the daemon. Holds the link only while pinging, so it does not
/// keep an unused link alive; the link aborts it when dropped.
async fn watchdog(
    link: Weak<Link>,
    pending: Arc<Pending>,
    writer: Arc<Writer>,
    keepalive: Option<(Duration, Duration)>,
) {
    let deadlines = expire_deadlines(&pending, &writer);
    match keepalive {
        Some((interval, timeout)) => {
            tokio::select! {
                () = deadlines => {}
                () = keep_alive(link, interval, timeout) => {}
            }
        }
        None => deadlines.await,
    }
}

/// Sleeps until the earliest deadline of the calls waiting, fails those past it and tells
/// the daemon to stop working on them; forever.
async fn expire_deadlines(pending: &Pending, writer: &Writer) {
    loop {
        match pending.next_deadline() {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = pending.deadline_changed() => {}
                }
            }
            None => pending.deadline_changed().await,
        }
        for request_id in pending.expire(Instant::now()) {
            writer.cancel(request_id);
        }
    }
}

/// Pings the daemon every `interval` while the link exists; a ping unanswered within `timeout`
/// ends the connection, failing every call on it.
async fn keep_alive(link: Weak<Link>, interval: Duration, timeout: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in KEEPALIVE_IDS.. {
        ticks.tick().await;
        let Some(link) = link.upgrade() else {
            return;
        };
        if !link.is_open() {
            return;
        }
        let Ok(ping) = Message::encode(Kind::Ping, Flags::NONE, n, &[], 0) else {
            return;
        };
        match link.round_trip(n, ping, false, timeout).await {
            Ok(_) => {}
            Err(Error::Timeout(_)) => {
                tracing::debug!(target: "rpc_core::proxy", ?timeout, "keepalive ping unanswered");
                link.pending
                    .end(Ended::Lost(Disconnect::KeepaliveUnanswered(timeout)));
                return;
            }
            Err(_) => return,
        }
    }
}

fn read_error(error: ReadError) -> Ended {
    match error {
        ReadError::Protocol(error) => Ended::Protocol(error),
        ReadError::Io(error) => Ended::Lost(Disconnect::Read(Arc::new(error))),
    }
}

/// Decodes the `RemoteError` in a failure frame.
pub(crate) fn decode_remote_error(format: Format, body: &[u8]) -> Result<RemoteError, Error> {
    format.decode(body).map_err(|source| Error::Codec {
        what: "the daemon's error report".into(),
        source,
    })
}

//! `Link`: one open connection of a proxy: its writer, and the reading that waiting callers share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::lock::{Mutex, MutexGuard};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::pending::{Ended, Pending};
use super::socket::{ReadHalf, WriteHalf};
use super::writer::Writer;
use crate::codec::Format;
use crate::connection::{FrameReader, ReadError};
use crate::protocol::{Flags, Kind, Message, ProtocolError, RemoteError};
use crate::{Config, Error, Location};

/// An open, handshaken connection to one object at a daemon.
pub(crate) struct Link {
    pub(crate) writer: Arc<Writer>,
    pub(crate) pending: Arc<Pending>,
    pub(crate) format: Format,
    /// Read by whichever waiting caller holds the lock. (This mutex unlocks with one atomic
    /// operation when nobody waits; tokio's takes a lock every time.)
    reader: Mutex<FrameReader<ReadHalf>>,
    writing: JoinHandle<()>,
    /// Fails calls past their deadline, and pings the daemon if keepalive is on.
    watchdog: JoinHandle<()>,
    /// Whether the daemon has accepted the handshake; its answer comes before anything else.
    handshaken: AtomicBool,
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
        self.reader.get_mut().get_ref().shutdown();
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
                    let (read, write) = stream.into_split();
                    Link::handshake(ReadHalf::Tcp(read), WriteHalf::Tcp(write), object, config)
                }
                Location::Unix(path) => {
                    let stream = UnixStream::connect(path).await.map_err(connect_error)?;
                    let (read, write) = stream.into_split();
                    Link::handshake(ReadHalf::Unix(read), WriteHalf::Unix(write), object, config)
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

    /// Sets up a link over a connected socket, with the handshake for `object` queued.
    fn handshake(
        read: ReadHalf,
        write: WriteHalf,
        object: &str,
        config: &Config,
    ) -> Result<Arc<Link>, Error> {
        let max_body_len = config.max_body_len();
        let hello = Message::encode(
            Kind::Handshake,
            Flags::NONE,
            0,
            object.as_bytes(),
            max_body_len,
        )?;
        // The handshake leaves with the first call (every use of a link starts with one), in
        // one write, and the daemon's answer is not awaited: it is read with the first reply,
        // saving a round trip. A refusal ends the connection and fails that call with the
        // daemon's reason.
        let reader = FrameReader::new(read, max_body_len, config.frame_timeout);
        let format = Format::Bincode;
        let pending = Arc::new(Pending::default());
        let (writer, writing) = Writer::start(write, pending.clone());
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
                handshaken: AtomicBool::new(false),
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
        while let Some(read) = reader.try_read_message() {
            if let Routed::Ended = self.handle_read(read, None) {
                return;
            }
        }
    }

    /// Acts on the outcome of one read by a caller waiting for the reply to `mine`.
    fn handle_read(&self, read: Result<Option<Message>, ReadError>, mine: Option<u64>) -> Routed {
        let ended = match read {
            Ok(Some(message)) => match self.route(message, mine) {
                Ok(Some(reply)) => return Routed::Mine(reply),
                Ok(None) => return Routed::Delivered,
                Err(ended) => ended,
            },
            Ok(None) => Ended::Lost("the daemon closed the connection".into()),
            Err(error) => read_error(error),
        };
        tracing::debug!(target: "rpc_core::proxy", ?ended, "connection ended");
        self.pending.end(ended);
        Routed::Ended
    }

    /// Waits for the reply to `request_id`, registered in `pending`. While no other caller
    /// reads the connection, this one does, routing every frame to its call: a lone caller
    /// reads its own reply, with no hand-off between tasks.
    pub(crate) async fn receive(&self, request_id: u64) -> Result<Message, Error> {
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

    /// Reads for everyone until the reply to `request_id` arrives, or is delivered by the end
    /// of the connection (a failed keepalive, say) or its deadline.
    async fn read_until_delivered(
        &self,
        mut reader: MutexGuard<'_, FrameReader<ReadHalf>>,
        request_id: u64,
    ) -> Result<Message, Error> {
        loop {
            let routed = tokio::select! {
                biased;
                outcome = self.delivered(request_id) => return outcome,
                read = reader.read_message() => self.handle_read(read, Some(request_id)),
            };
            if let Routed::Mine(message) = routed {
                self.pending.remove(request_id);
                return Ok(message);
            }
        }
    }

    /// Acts on one frame from the daemon: `Ok(Some)` for the reply to `mine`, which is left
    /// to its reader; `Err` when the frame ends the connection.
    fn route(&self, message: Message, mine: Option<u64>) -> Result<Option<Message>, Ended> {
        let header = message.header;
        let handshaken = self.handshaken.load(Ordering::Acquire);
        match header.kind {
            Kind::HandshakeReply if !handshaken => {
                if header.flags.contains(Flags::FAILURE) {
                    return Err(match decode_remote_error(self.format, &message.body) {
                        Ok(refusal) => Ended::Refused(refusal),
                        Err(error) => {
                            Ended::Lost(format!("the daemon refused the handshake: {error}"))
                        }
                    });
                }
                self.handshaken.store(true, Ordering::Release);
                Ok(None)
            }
            // Closed before the handshake was answered: the daemon read no call (it was full,
            // say), and says why.
            Kind::Close if !handshaken => {
                Err(match decode_remote_error(self.format, &message.body) {
                    Ok(refusal) => Ended::Refused(refusal),
                    Err(error) => Ended::Lost(format!(
                        "the daemon closed the connection with an unreadable reason: {error}"
                    )),
                })
            }
            kind if !handshaken => Err(Ended::Protocol(ProtocolError::Unexpected {
                kind,
                context: "the daemon must answer the handshake first",
            })),
            // A reply nobody waits for belongs to a call that was cancelled or timed out.
            Kind::Reply | Kind::Pong if mine == Some(header.request_id) => Ok(Some(message)),
            Kind::Reply | Kind::Pong => {
                self.pending.complete(header.request_id, message);
                Ok(None)
            }
            Kind::Ping => {
                let pong = Message::encode(
                    Kind::Pong,
                    Flags::NONE,
                    header.request_id,
                    &message.body,
                    usize::MAX,
                );
                if let Ok(pong) = pong {
                    // A failed send has already ended the connection.
                    let _ = self.writer.send(pong);
                }
                Ok(None)
            }
            Kind::Close => Err(Ended::Lost(
                match decode_remote_error(self.format, &message.body) {
                    Ok(remote) => format!("the daemon closed the connection: {remote}"),
                    Err(error) => format!(
                        "the daemon closed the connection with an unreadable reason: {error}"
                    ),
                },
            )),
            kind => Err(Ended::Protocol(ProtocolError::Unexpected {
                kind,
                context: "a daemon sends only replies, pings, pongs and close after the handshake",
            })),
        }
    }
}

/// What a read brought to the caller that made it.
enum Routed {
    /// A frame for another call, or none for a call.
    Delivered,
    /// The reply this caller waits for.
    Mine(Message),
    /// The connection ended.
    Ended,
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
        if link.pending.insert(n, timeout, false).is_err() {
            return;
        }
        let Ok(ping) = Message::encode(Kind::Ping, Flags::NONE, n, &[], 0) else {
            return;
        };
        if link.writer.send(ping).is_err() {
            return;
        }
        match link.receive(n).await {
            Ok(_) => {}
            Err(Error::Timeout(_)) => {
                tracing::debug!(target: "rpc_core::proxy", ?timeout, "keepalive ping unanswered");
                link.pending.end(Ended::Lost(format!(
                    "the daemon did not answer a keepalive ping within {timeout:?} (see `Config::keepalive_timeout`)"
                )));
                return;
            }
            Err(_) => return,
        }
    }
}

fn read_error(error: ReadError) -> Ended {
    match error {
        ReadError::Protocol(error) => Ended::Protocol(error),
        ReadError::Io(error) => Ended::Lost(error.to_string()),
    }
}

/// Decodes the `RemoteError` in a failure frame.
pub(crate) fn decode_remote_error(format: Format, body: &[u8]) -> Result<RemoteError, Error> {
    format.decode(body).map_err(|source| Error::Codec {
        what: "the daemon's error report".into(),
        source,
    })
}

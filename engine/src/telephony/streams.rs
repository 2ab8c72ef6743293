//! SIP over TCP and TLS for the endpoint task (RFC 3261 §18, §26.2): one connection per
//! peer address, opened when a request whose Via says TCP goes there
//! (bound to the SIP port, so the carrier sees the address genki's
//! Contact names and can send in-dialog requests back on it), accepted
//! from peers on the SIP port when listening, reused for everything to
//! that address, and opened again after it closes. Bytes are framed by
//! the sans-IO [`genki_sip::stream::Framer`]; keep-alive pings (CRLFCRLF,
//! RFC 5626 §3.5.1) are answered.
//!
//! TLS is genki as the client (rustls with ring, the trunk's certificate
//! checked against the Mozilla roots or a configured CA, for the trunk's
//! name; an optional client certificate): the carrier's in-dialog
//! requests come back on genki's connection, which leaves from the
//! address genki's Contact names. genki accepts no TLS connections (it
//! holds no server certificate).
//!
//! Each connection is a task that reads and writes; the endpoint task
//! hears of messages, openings and closings on one channel
//! ([`StreamEvent`]) and sends through [`Streams::send`], so its loop
//! stays the only owner of the SIP state.
//!
//! Depends on: genki-sip (framing), tokio, tokio-rustls, rustls-pki-types, webpki-roots.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use genki_sip::stream::{Frame, Framer, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The most connections kept at once (accepted and opened): beyond it
/// new ones are refused, so a flood cannot take every descriptor.
pub const MAX_CONNECTIONS: usize = 512;

/// What a connection tells the endpoint task.
#[derive(Debug)]
pub enum StreamEvent {
    /// A whole SIP message from `peer`.
    Message(SocketAddr, Vec<u8>),
    /// A peer connected to us: what to write to it goes to the sender.
    Accepted(SocketAddr, mpsc::UnboundedSender<Vec<u8>>),
    /// The connection to `peer` closed or could not be opened; `opened`
    /// is false when it never was (the peer is unreachable).
    Closed { peer: SocketAddr, opened: bool },
}

/// Why TLS cannot be set up (at start: the daemon refuses to run).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("{0:?} is not a name a certificate can be checked against")]
    Name(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// How genki opens TLS to the trunk.
pub struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl TlsClient {
    /// Check the trunk's certificate for `name` against the CA bundle at
    /// `ca` (PEM) or, without one, the Mozilla roots; present the client
    /// certificate `client` (PEM chain, PEM key) when given.
    pub fn new(
        name: &str,
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<TlsClient, TlsSetupError> {
        let file_err = |p: &Path, e: &dyn std::fmt::Display| TlsSetupError::File {
            path: p.display().to_string(),
            why: e.to_string(),
        };
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(p) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                    .map_err(|e| file_err(p, &e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| file_err(p, &e))?;
                if certs.is_empty() {
                    return Err(file_err(p, &"no certificate in it"));
                }
                for c in certs {
                    roots.add(c)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        let config = match client {
            Some((chain, key)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
                    .map_err(|e| file_err(chain, &e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| file_err(chain, &e))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, &e))?;
                builder.with_client_auth_cert(certs, key)?
            }
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from(name.to_string())
            .map_err(|_| TlsSetupError::Name(name.to_string()))?;
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient({:?})", self.name)
    }
}

/// The endpoint task's TCP and TLS connections.
pub struct Streams {
    local: SocketAddr,
    conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    events: mpsc::UnboundedSender<StreamEvent>,
    tls: Option<Arc<TlsClient>>,
}

impl Streams {
    /// Connections from `local` (the SIP address); events on the returned
    /// receiver. With `listen`, peers may connect to `local` too.
    pub fn start(
        local: SocketAddr,
        listen: bool,
        tls: Option<Arc<TlsClient>>,
    ) -> std::io::Result<(Streams, mpsc::UnboundedReceiver<StreamEvent>)> {
        let (events, rx) = mpsc::unbounded_channel();
        if listen {
            let sock = socket_for(local)?;
            sock.bind(local)?;
            let listener = sock.listen(128)?;
            tokio::spawn(accept_loop(listener, events.clone()));
        }
        Ok((
            Streams {
                local,
                conns: HashMap::new(),
                events,
                tls,
            },
            rx,
        ))
    }

    /// Whether a connection to `peer` is open (responses go back on it).
    pub fn has(&self, peer: SocketAddr) -> bool {
        self.conns.contains_key(&peer)
    }

    /// Send `data` to `peer` on its connection, opening one (over
    /// `transport`: TCP, or TLS) if needed.
    pub fn send(&mut self, peer: SocketAddr, data: Vec<u8>, transport: Transport) {
        if let Some(tx) = self.conns.get(&peer) {
            if tx.send(data.clone()).is_ok() {
                return;
            }
            self.conns.remove(&peer);
        }
        if self.conns.len() >= MAX_CONNECTIONS {
            warn!(%peer, "too many SIP connections; not opened");
            let _ = self.events.send(StreamEvent::Closed {
                peer,
                opened: false,
            });
            return;
        }
        let tls = match transport {
            Transport::Tls => match &self.tls {
                Some(t) => Some(t.clone()),
                None => {
                    warn!(%peer, "a TLS request but no TLS configured ([trunk] proxy sips:…)");
                    let _ = self.events.send(StreamEvent::Closed {
                        peer,
                        opened: false,
                    });
                    return;
                }
            },
            _ => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(data);
        self.conns.insert(peer, tx);
        tokio::spawn(open(self.local, peer, tls, rx, self.events.clone()));
    }

    /// Take in an event about the connections (before handing its message on).
    pub fn on_event(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Accepted(peer, tx) => {
                if self.conns.len() < MAX_CONNECTIONS {
                    self.conns.insert(*peer, tx.clone());
                }
            }
            StreamEvent::Closed { peer, .. } => {
                self.conns.remove(peer);
            }
            StreamEvent::Message(..) => {}
        }
    }
}

fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    #[cfg(unix)]
    s.set_reuseport(true)?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn accept_loop(listener: TcpListener, events: mpsc::UnboundedSender<StreamEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                if events.send(StreamEvent::Accepted(peer, tx)).is_err() {
                    return;
                }
                tokio::spawn(run(stream, peer, rx, events.clone()));
            }
            Err(e) => {
                debug!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Open a connection to `peer` from the SIP port (else from any port).
async fn open(
    local: SocketAddr,
    peer: SocketAddr,
    tls: Option<Arc<TlsClient>>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<StreamEvent>,
) {
    let from_sip_port = async {
        let s = socket_for(local)?;
        s.bind(local)?;
        s.connect(peer).await
    };
    let connect = async {
        match from_sip_port.await {
            Ok(c) => Ok(c),
            Err(e) => {
                debug!(%peer, error = %e, "TCP from the SIP port failed; from any port");
                TcpStream::connect(peer).await
            }
        }
    };
    let connect = async {
        let tcp = connect.await?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok::<_, std::io::Error>(Conn::Tcp(tcp)),
            Some(t) => {
                let s = t.connector.connect(t.name.clone(), tcp).await?;
                Ok(Conn::Tls(Box::new(s)))
            }
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(Conn::Tcp(s))) => run(s, peer, rx, events).await,
        Ok(Ok(Conn::Tls(s))) => run(*s, peer, rx, events).await,
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "SIP TCP connection failed");
            let _ = events.send(StreamEvent::Closed {
                peer,
                opened: false,
            });
        }
        Err(_) => {
            warn!(%peer, "SIP TCP connection timed out");
            let _ = events.send(StreamEvent::Closed {
                peer,
                opened: false,
            });
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Read and write one connection until either side ends.
async fn run<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<StreamEvent>,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let (pong_tx, mut pong_rx) = mpsc::unbounded_channel::<()>();
    let reader_events = events.clone();
    let reader = async move {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(m))) => {
                        debug!(%peer, bytes = m.len(), "SIP message on a stream");
                        if reader_events.send(StreamEvent::Message(peer, m)).is_err() {
                            return;
                        }
                    }
                    Ok(Some(Frame::Ping)) => {
                        let _ = pong_tx.send(());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(%peer, error = %e, "SIP stream unreadable; closing it");
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(data) => {
                        if w.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                Some(()) = pong_rx.recv() => {
                    if w.write_all(b"\r\n").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    debug!(%peer, "SIP TCP connection closed");
    let _ = events.send(StreamEvent::Closed { peer, opened: true });
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKa\r\nContent-Length: 0\r\n\r\n";

    /// A request out on a new connection from the SIP port, the peer's
    /// answer (split over two writes) and its ping back as events.
    #[tokio::test]
    async fn a_connection_carries_messages_both_ways() {
        let peer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = peer_listener.local_addr().unwrap();
        // A free UDP port's number may be some other test's TCP port:
        // pick again until the TCP side binds too.
        let (local, (mut streams, mut rx)) = (0..20)
            .find_map(|_| {
                let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let local = u.local_addr().unwrap();
                drop(u);
                Streams::start(local, true, None).ok().map(|s| (local, s))
            })
            .expect("a port free for both UDP and TCP");
        streams.send(peer, REQ.to_vec(), Transport::Tcp);
        let (mut conn, from) = peer_listener.accept().await.unwrap();
        assert_eq!(from, local, "opened from the SIP port");
        let mut buf = vec![0u8; REQ.len()];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, REQ);
        conn.write_all(&REQ[..20]).await.unwrap();
        conn.write_all(&REQ[20..]).await.unwrap();
        conn.write_all(b"\r\n\r\n").await.unwrap();
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a message event")
            .unwrap();
        match ev {
            StreamEvent::Message(src, m) => {
                assert_eq!(src, peer);
                assert_eq!(m, REQ);
            }
            other => panic!("{other:?}"),
        }
        let mut pong = [0u8; 2];
        conn.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\r\n", "the ping answered");
        drop(conn);
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(ev, StreamEvent::Closed { opened: true, .. }),
            "{ev:?}"
        );
    }
}

//! Mutual TLS on the master's gRPC port.
//!
//! The accept loop is the master's own (not tonic's) so that every request
//! carries its peer's address and verified certificate ([`PeerInfo`]), and
//! so that handshakes are bounded: each runs in its own task under a
//! timeout, at most [`MAX_HANDSHAKES`] at once and at most
//! [`MAX_HANDSHAKES_PER_IP`] from one address (more are closed at once) — a
//! slow or silent client holds its slots for at most [`HANDSHAKE_TIMEOUT`]
//! and cannot take everyone else's.
//!
//! A client certificate is optional at the TLS layer (an agent enrolling has
//! none yet) but, when presented, must chain to the cluster CA; the
//! verifier reports every refused certificate, with the address it came
//! from, to the audit log ([`refusals`]: the first from each source at
//! once, the rest counted). Which calls need which identity is decided per
//! call (`grpc::auth`).

pub mod refusals;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_HANDSHAKES: usize = 512;
pub const MAX_HANDSHAKES_PER_IP: usize = 64;

/// Handshakes in flight per source address.
#[derive(Default)]
struct PerIp(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PerIp {
    fn try_enter(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<PerIpGuard> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        *n += 1;
        Some(PerIpGuard(self.clone(), ip))
    }
}

struct PerIpGuard(Arc<PerIp>, std::net::IpAddr);

impl Drop for PerIpGuard {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// What every request knows about the connection it came on.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The client's end-entity certificate, verified against the CA.
    pub cert: Option<CertificateDer<'static>>,
}

/// A TLS connection, as tonic serves it.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid TLS material: {0}")]
    Material(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

tokio::task_local! {
    /// The address of the peer whose handshake this task runs, for the
    /// verifier (which rustls calls within it) to say where a refused
    /// certificate came from.
    static HANDSHAKE_FROM: std::net::IpAddr;
}

/// Where the verifier reports refused certificates: a bounded queue (a
/// refusal that finds it full is counted as dropped, never waited for).
#[derive(Debug, Clone)]
pub struct RefusalSink {
    pub tx: mpsc::Sender<refusals::Refusal>,
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl RefusalSink {
    pub fn new() -> (RefusalSink, mpsc::Receiver<refusals::Refusal>) {
        let (tx, rx) = mpsc::channel(refusals::QUEUE);
        (
            RefusalSink {
                tx,
                dropped: Default::default(),
            },
            rx,
        )
    }
}

/// Wraps the CA verifier to record refused client certificates.
#[derive(Debug)]
struct AuditingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    refused: RefusalSink,
}

fn describe(cert: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::*;
    match X509Certificate::from_der(cert) {
        Ok((_, c)) => format!("subject \"{}\", issuer \"{}\"", c.subject(), c.issuer()),
        Err(_) => "an unparsable certificate".into(),
    }
}

impl ClientCertVerifier for AuditingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| {
                let refusal = refusals::Refusal {
                    from: HANDSHAKE_FROM.try_with(|ip| *ip).ok(),
                    detail: format!("a client certificate ({}): {e}", describe(end_entity)),
                };
                if self.refused.tx.try_send(refusal).is_err() {
                    self.refused
                        .dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server side of mutual TLS: our chain (server certificate, then the
/// CA, so an enrolling agent can check the CA against its pinned
/// fingerprint) and a verifier of client certificates against the CA.
pub fn server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    ca_pem: &str,
    refused: RefusalSink,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let material = |e: &dyn std::fmt::Display| TlsError::Material(e.to_string());
    let mut chain = crate::pki::pem_certs(server_cert_pem).map_err(|e| material(&e))?;
    let ca = crate::pki::pem_certs(ca_pem).map_err(|e| material(&e))?;
    chain.extend(ca.iter().cloned());
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(|e| material(&e))?;
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| material(&e))?;
    let verifier = Arc::new(AuditingVerifier { inner, refused });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The HTTP side over HTTPS (`http_tls`): the master's chain, no client
/// certificates (browsers and curl authenticate with API tokens), HTTP/2
/// offered before HTTP/1.1.
pub fn http_server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let material = |e: &dyn std::fmt::Display| TlsError::Material(e.to_string());
    let mut chain = crate::pki::pem_certs(server_cert_pem).map_err(|e| material(&e))?;
    chain.extend(crate::pki::pem_certs(ca_pem).map_err(|e| material(&e))?);
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(|e| material(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS connections as axum's server takes them: handshakes done
/// concurrently, bounded in number and time, by [`incoming`].
pub struct HttpsListener {
    conns: ReceiverStream<Result<TlsConn, std::io::Error>>,
    local: std::net::SocketAddr,
}

impl HttpsListener {
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<HttpsListener> {
        let local = listener.local_addr()?;
        Ok(HttpsListener {
            conns: incoming(listener, config, shutdown),
            local,
        })
    }
}

/// The peer of an HTTPS connection, as handlers read it
/// (`ConnectInfo<HttpsPeer>`; plain HTTP gives `ConnectInfo<SocketAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct HttpsPeer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HttpsListener>>
    for HttpsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, HttpsListener>) -> HttpsPeer {
        HttpsPeer(*stream.remote_addr())
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsConn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (TlsConn, std::net::SocketAddr) {
        use tokio_stream::StreamExt as _;
        loop {
            match self.conns.next().await {
                Some(Ok(conn)) => {
                    let addr = conn.info.addr;
                    return (conn, addr);
                }
                Some(Err(_)) => continue,
                // Shut down: the server stops on its own signal.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections, completes TLS handshakes concurrently (bounded
/// in number and time) and yields the connections that made it.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let per_ip = Arc::new(PerIp::default());
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(ip_slot) = per_ip.try_enter(addr.ip()) else {
                tracing::debug!(%addr, "too many handshakes from this address; closed");
                continue; // dropping `tcp` closes it
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ip_slot = ip_slot;
                let handshake = HANDSHAKE_FROM.scope(addr.ip(), acceptor.accept(tcp));
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => {
                        let cert = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.clone().into_owned());
                        let info = PeerInfo { addr, cert };
                        let _ = tx
                            .send(Ok(TlsConn {
                                inner: stream,
                                info,
                            }))
                            .await;
                    }
                    Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

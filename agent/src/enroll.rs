//! The node's identity: a key made here that never leaves the node, and a
//! certificate the master signed for it. Kept in the data directory
//! (`node.key` 0600, `node.crt`, `ca.crt`).
//!
//! First start, in the manner of kubeadm's join: the CA is read from
//! `ca_file`, or fetched from the TLS chain of the master being tried and
//! accepted only if its SHA-256 matches `ca_fingerprint` (printed by
//! `clusterctl token create`). Then a CSR goes to that master's
//! `Enrollment` service over TLS verified against that CA — with a join
//! token it is signed at once; without one it waits as pending until
//! `clusterctl keys accept`. Which master is tried is the session's
//! choice (`session::Rotation`): each attempt names one.

use cluster_proto as pb;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::session::CONNECT_TIMEOUT;

/// The node's credentials, as PEM.
#[derive(Clone)]
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Credentials {
    /// TLS for talking to the master at `host`, as this node.
    pub fn tls(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(host)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no CA to trust: set ca_fingerprint (printed by `clusterctl token create`) or ca_file in the agent's config"
    )]
    NoCa,
    #[error("cannot fetch the CA from the master at {addr}: {reason}")]
    Fetch { addr: String, reason: String },
    #[error("cannot make the node's key or request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("cannot reach the master at {master} for enrollment: {reason}")]
    Connect { master: String, reason: String },
    #[error("enrollment refused: {0}")]
    Refused(String),
}

/// Where the files live and what to enroll with.
pub struct Enrollment {
    pub dir: PathBuf,
    pub node_id: String,
    pub ca_file: Option<PathBuf>,
    pub ca_fingerprint: Option<String>,
    pub token: Option<String>,
    /// The address connections to the masters leave from (the one the
    /// node advertises, when it is local); `None`: the system's choice.
    pub source: Option<std::net::IpAddr>,
}

pub enum Progress {
    Enrolled(Credentials),
    Pending(String),
}

fn read(path: &Path) -> Result<Option<String>, EnrollError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EnrollError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `path` atomically with `mode`.
fn write(path: &Path, contents: &str, mode: u32) -> Result<(), EnrollError> {
    let io = |source| EnrollError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `host` and `host:port` of an `https://host:port` URL.
pub fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest).to_owned();
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_owned(),
        None => hostport
            .rsplit_once(':')
            .map_or(hostport.clone(), |(h, _)| h.to_owned()),
    };
    (host, hostport)
}

impl Enrollment {
    /// The local address to connect to `master` from: the advertised one,
    /// except a loopback address towards a master that is not on loopback
    /// (it could not be reached from there).
    pub fn source_for(&self, master: &str) -> Option<std::net::IpAddr> {
        let source = self.source?;
        let master_on_loopback = host_port(master)
            .0
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || host_port(master).0 == "localhost";
        (!source.is_loopback() || master_on_loopback).then_some(source)
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    fn key_path(&self) -> PathBuf {
        self.dir.join("node.key")
    }
    fn cert_path(&self) -> PathBuf {
        self.dir.join("node.crt")
    }

    /// Credentials already on disk, if complete.
    pub fn existing(&self) -> Result<Option<Credentials>, EnrollError> {
        match (
            read(&self.ca_path())?,
            read(&self.cert_path())?,
            read(&self.key_path())?,
        ) {
            (Some(ca_pem), Some(cert_pem), Some(key_pem)) => Ok(Some(Credentials {
                ca_pem,
                cert_pem,
                key_pem,
            })),
            _ => Ok(None),
        }
    }

    /// Whether a CA can be had at all (checked once at start, so a missing
    /// setting is a start-up error rather than a retry loop).
    pub fn can_find_ca(&self) -> bool {
        self.ca_path().exists() || self.ca_file.is_some() || self.ca_fingerprint.is_some()
    }

    /// The CA: on disk, from `ca_file`, or pinned from `master`'s chain.
    async fn ca(&self, master: &str) -> Result<String, EnrollError> {
        if let Some(ca) = read(&self.ca_path())? {
            return Ok(ca);
        }
        let ca = if let Some(file) = &self.ca_file {
            read(file)?.ok_or_else(|| EnrollError::Io {
                path: file.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            })?
        } else if let Some(pin) = &self.ca_fingerprint {
            fetch_pinned_ca(master, pin).await?
        } else {
            return Err(EnrollError::NoCa);
        };
        write(&self.ca_path(), &ca, 0o644)?;
        Ok(ca)
    }

    fn key(&self) -> Result<rcgen::KeyPair, EnrollError> {
        if let Some(pem) = read(&self.key_path())? {
            return Ok(rcgen::KeyPair::from_pem(&pem)?);
        }
        let key = rcgen::KeyPair::generate()?;
        write(&self.key_path(), &key.serialize_pem(), 0o600)?;
        Ok(key)
    }

    /// A certificate request for the node's id with `key`.
    fn request(&self, key: &rcgen::KeyPair) -> Result<String, EnrollError> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.node_id.clone());
        Ok(params.serialize_request(key)?.pem()?)
    }

    /// A connection to `master` with `tls`, from the node's own address,
    /// within [`CONNECT_TIMEOUT`].
    async fn connect(
        &self,
        master: &str,
        tls: ClientTlsConfig,
    ) -> Result<tonic::transport::Channel, EnrollError> {
        let unreachable = |reason: String| EnrollError::Connect {
            master: master.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(master.to_owned())
            .map_err(|e| unreachable(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .local_address(self.source_for(master));
        tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(error_chain(&e)))
    }

    /// Drops the certificate the master no longer accepts (the key stays).
    pub fn forget_certificate(&self) {
        let _ = std::fs::remove_file(self.cert_path());
    }

    /// One attempt with `master` (`https://host:port`): enrolled, still
    /// pending, or an error worth retrying (with another master).
    /// `without_token`: ask as pending even if a token is configured.
    pub async fn attempt(
        &self,
        master: &str,
        without_token: bool,
    ) -> Result<Progress, EnrollError> {
        cluster_model::fs::private_dir(&self.dir).map_err(|source| EnrollError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let ca_pem = self.ca(master).await?;
        let key = self.key()?;
        let csr_pem = self.request(&key)?;
        let (host, _) = host_port(master);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca_pem))
            .domain_name(host);
        let channel = self.connect(master, tls).await?;
        let resp = pb::enrollment_client::EnrollmentClient::new(channel)
            .join(pb::JoinRequest {
                node_id: self.node_id.clone(),
                csr_pem,
                token: if without_token {
                    String::new()
                } else {
                    self.token.clone().unwrap_or_default()
                },
            })
            .await
            .map_err(|s| EnrollError::Refused(s.message().to_owned()))?
            .into_inner();
        match pb::JoinStatus::try_from(resp.status) {
            Ok(pb::JoinStatus::Accepted) => {
                write(&self.cert_path(), &resp.cert_pem, 0o644)?;
                Ok(Progress::Enrolled(Credentials {
                    ca_pem,
                    cert_pem: resp.cert_pem,
                    key_pem: key.serialize_pem(),
                }))
            }
            Ok(pb::JoinStatus::Pending) => Ok(Progress::Pending(resp.message)),
            _ => Err(EnrollError::Refused(resp.message)),
        }
    }
}

/// When a certificate (PEM) becomes valid and expires, ms since the epoch.
pub fn validity(cert_pem: &str) -> Result<(u64, u64), String> {
    use x509_parser::prelude::*;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let ms = |t: ASN1Time| (t.timestamp().max(0) as u64) * 1000;
    Ok((
        ms(cert.validity().not_before),
        ms(cert.validity().not_after),
    ))
}

impl Enrollment {
    /// A new certificate for the node's key from `master`, asked with the
    /// current one; written in place of it (atomically) and returned.
    pub async fn renew(
        &self,
        master: &str,
        current: &Credentials,
    ) -> Result<Credentials, EnrollError> {
        let key = self.key()?;
        let csr_pem = self.request(&key)?;
        let (host, _) = host_port(master);
        let channel = self.connect(master, current.tls(&host)).await?;
        let resp = pb::agent_service_client::AgentServiceClient::new(channel)
            .renew(pb::RenewRequest { csr_pem })
            .await
            .map_err(|s| EnrollError::Refused(s.message().to_owned()))?
            .into_inner();
        validity(&resp.cert_pem).map_err(EnrollError::Refused)?;
        write(&self.cert_path(), &resp.cert_pem, 0o644)?;
        Ok(Credentials {
            cert_pem: resp.cert_pem,
            ..current.clone()
        })
    }
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Accepts the master's chain only if it carries the pinned CA and the
/// server certificate verifies against it; remembers that CA.
#[derive(Debug)]
struct PinnedCa {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    found: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "no certificate in the master's chain has the pinned fingerprint {}",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified = verifier.verify_server_cert(end_entity, &[], server_name, ocsp, now)?;
        *self.found.lock().unwrap() = Some(ca.clone().into_owned());
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The CA (PEM) from the master's TLS chain, if it matches `pin`.
pub async fn fetch_pinned_ca(master: &str, pin: &str) -> Result<String, EnrollError> {
    let (host, addr) = host_port(master);
    let fail = |reason: String| EnrollError::Fetch {
        addr: addr.clone(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCa {
        pin: pin.trim().to_lowercase(),
        provider: provider.clone(),
        found: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| fail(e.to_string()))?;
    // TCP and the TLS handshake, within the one bound.
    tokio::time::timeout(CONNECT_TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| fail(e.to_string()))
    })
    .await
    .map_err(|_| fail(format!("no connection within {CONNECT_TIMEOUT:?}")))??;
    let der = verifier
        .found
        .lock()
        .unwrap()
        .take()
        .ok_or_else(|| fail("no CA seen".into()))?;
    Ok(pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_from_urls() {
        assert_eq!(
            host_port("https://127.0.0.1:7440"),
            ("127.0.0.1".into(), "127.0.0.1:7440".into())
        );
        assert_eq!(
            host_port("https://m.example.com:1/x"),
            ("m.example.com".into(), "m.example.com:1".into())
        );
        assert_eq!(
            host_port("https://[::1]:7440"),
            ("::1".into(), "[::1]:7440".into())
        );
    }
}

//! The master's certificate authority: pure functions over keys and
//! certificates (no files, no clock of their own — `now` is an argument).
//!
//! Identities live in the certificate subject: `O` says what kind of peer it
//! is (`clusterctl-node`, `clusterctl-admin`, `clusterctl-operator`,
//! `clusterctl-master`) and `CN`
//! names it (the node id, the user name). When signing a request the master
//! takes only its public key; subject, names, usages and validity are set
//! here, so a request cannot ask for more than it is given.
//!
//! - `files` — where the CA, the server certificate and the admin
//!   credentials live on disk (key files 0600).

pub mod files;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use std::time::{Duration, SystemTime};

pub const ORG_NODE: &str = "clusterctl-node";
pub const ORG_ADMIN: &str = "clusterctl-admin";
pub const ORG_OPERATOR: &str = "clusterctl-operator";
pub const ORG_READER: &str = "clusterctl-reader";
pub const ORG_MASTER: &str = "clusterctl-master";

/// How long issued certificates are valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

pub use cluster_model::Role;

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Node(String),
    /// Another master of the same cluster (several masters on etcd).
    Master(String),
    User {
        name: String,
        role: Role,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot create a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate signing request: {0}")]
    BadRequest(String),
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    #[error("the certificate subject is not a clusterctl identity: {0}")]
    NotAnIdentity(String),
}

/// `sha256:` and the hex digest of DER bytes (a certificate or a public key).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A fresh random serial number: 16 bytes, positive, and without a leading
/// zero byte (DER drops those, and the serial read back from the
/// certificate must be the one we keep).
pub fn new_serial() -> (SerialNumber, String) {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    bytes[0] &= 0x7f; // positive
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (SerialNumber::from_slice(&bytes), hex)
}

/// The serial of a certificate as [`identity`] reads it (hex, as encoded).
pub fn serial_of(der: &[u8]) -> Result<String, PkiError> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    Ok(cert.tbs_certificate.raw_serial_as_string().replace(':', ""))
}

fn offset(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

fn validity(params: &mut CertificateParams, now: SystemTime, valid_for: Duration) {
    // A little slack for clocks that disagree.
    params.not_before = offset(now - Duration::from_millis(cluster_model::access::CLOCK_SLACK_MS));
    params.not_after = offset(now + valid_for);
}

/// The cluster's CA: its certificate and the key that signs with it.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// How long a node's certificate is valid ([`LEAF_VALIDITY`] unless
    /// configured); agents renew theirs after two thirds of it.
    node_validity: Duration,
}

impl Ca {
    /// A new CA; returns it and its key as PEM (to be stored 0600).
    pub fn generate(cluster: &str, now: SystemTime) -> Result<(Ca, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("clusterctl CA ({cluster})"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(new_serial().0);
        validity(&mut params, now, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let ca = Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            node_validity: LEAF_VALIDITY,
        };
        Ok((ca, key_pem))
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert_der = pem_certs(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::BadCertificate("no certificate in the CA file".into()))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
            node_validity: LEAF_VALIDITY,
        })
    }

    /// Node certificates valid for `d` from now on.
    pub fn with_node_validity(mut self, d: Duration) -> Ca {
        self.node_validity = d;
        self
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// A key for `purpose` that every master of the cluster derives alike
    /// (they share the CA's key) and nobody without that key can: HMAC of
    /// the purpose under the CA key's digest. What the dashboard signs its
    /// session cookies with.
    pub fn derived_key(&self, purpose: &str) -> ring::hmac::Key {
        let der = self.issuer.key().serialize_der();
        let root = ring::digest::digest(&ring::digest::SHA256, &der);
        let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, root.as_ref());
        let derived = ring::hmac::sign(&root, purpose.as_bytes());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
    }

    /// A server certificate for `names` (DNS names or IP addresses), with a
    /// fresh key; returns (certificate PEM, key PEM).
    pub fn issue_server(
        &self,
        names: &[String],
        now: SystemTime,
    ) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "clusterctl master");
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName).map_err(|_| {
                    PkiError::BadRequest(format!("server name {n:?} is not a DNS name or IP"))
                }),
            })
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(new_serial().0);
        validity(&mut params, now, LEAF_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs the public key of `csr_pem` for `subject`; returns the
    /// certificate PEM and its serial (hex).
    pub fn issue_client(
        &self,
        csr_pem: &str,
        subject: &Subject,
        now: SystemTime,
    ) -> Result<(String, String), PkiError> {
        self.issue_client_with(csr_pem, subject, now, None)
    }

    fn issue_client_with(
        &self,
        csr_pem: &str,
        subject: &Subject,
        now: SystemTime,
        serial: Option<SerialNumber>,
    ) -> Result<(String, String), PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadRequest(e.to_string()))?;
        let mut params = CertificateParams::default();
        let (org, cn) = match subject {
            Subject::Node(id) => (ORG_NODE, id.as_str()),
            Subject::Master(name) => (ORG_MASTER, name.as_str()),
            Subject::User {
                name,
                role: Role::Admin,
            } => (ORG_ADMIN, name.as_str()),
            Subject::User {
                name,
                role: Role::Operator,
            } => (ORG_OPERATOR, name.as_str()),
            Subject::User {
                name,
                role: Role::Read,
            } => (ORG_READER, name.as_str()),
        };
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(serial.unwrap_or_else(|| new_serial().0));
        let valid_for = match subject {
            Subject::Node(_) => self.node_validity,
            _ => LEAF_VALIDITY,
        };
        validity(&mut params, now, valid_for);
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        // Keep the serial exactly as the certificate carries it: that is what
        // every later call presents.
        let serial = serial_of(cert.der())?;
        Ok((cert.pem(), serial))
    }
}

/// When a certificate (PEM, the first of the file) becomes valid and
/// stops being valid, in ms since the epoch.
pub fn validity_of(cert_pem: &str) -> Result<(u64, u64), PkiError> {
    use x509_parser::prelude::*;
    let der = pem_certs(cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::BadCertificate("no certificate".into()))?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let ms = |t: ASN1Time| (t.timestamp().max(0) as u64) * 1000;
    Ok((
        ms(cert.validity().not_before),
        ms(cert.validity().not_after),
    ))
}

pub use cluster_model::access::renew_from;

/// The public key fingerprint of a CSR (what `keys list` shows, and how a
/// pending node is recognised when it asks again).
pub fn csr_fingerprint(csr_pem: &str) -> Result<String, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::BadRequest(e.to_string()))?;
    Ok(fingerprint(rcgen::PublicKeyData::der_bytes(
        &csr.public_key,
    )))
}

/// A new key and a CSR for `cn`: what agents and clusterctl send.
pub fn new_key_and_csr(cn: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::BadCertificate(e.to_string()))
}

/// The identity and serial (hex) a verified certificate carries.
pub fn identity(der: &[u8]) -> Result<(Subject, String), PkiError> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let subject = cert.subject();
    let first = |attrs: &mut dyn Iterator<Item = &AttributeTypeAndValue>| {
        attrs
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned)
    };
    let org = first(&mut subject.iter_organization());
    let cn = first(&mut subject.iter_common_name())
        .ok_or_else(|| PkiError::NotAnIdentity(format!("no CN in {subject}")))?;
    let serial = cert.tbs_certificate.raw_serial_as_string().replace(':', "");
    let who = match org.as_deref() {
        Some(ORG_NODE) => Subject::Node(cn),
        Some(ORG_MASTER) => Subject::Master(cn),
        Some(ORG_ADMIN) => Subject::User {
            name: cn,
            role: Role::Admin,
        },
        Some(ORG_OPERATOR) => Subject::User {
            name: cn,
            role: Role::Operator,
        },
        Some(ORG_READER) => Subject::User {
            name: cn,
            role: Role::Read,
        },
        _ => return Err(PkiError::NotAnIdentity(subject.to_string())),
    };
    Ok((who, serial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn a_signed_request_carries_only_what_the_master_sets() {
        let (ca, _) = Ca::generate("test", now()).unwrap();
        // The request asks for CN "admin"; the master names it node web-1.
        let (_, csr) = new_key_and_csr("admin").unwrap();
        let (cert_pem, serial) = ca
            .issue_client(&csr, &Subject::Node("web-1".into()), now())
            .unwrap();
        let der = pem_certs(&cert_pem).unwrap().remove(0);
        let (who, got_serial) = identity(&der).unwrap();
        assert_eq!(who, Subject::Node("web-1".into()));
        assert_eq!(got_serial, serial);
    }

    #[test]
    fn the_kept_serial_is_the_one_the_certificate_presents_even_with_leading_zeros() {
        let (ca, _) = Ca::generate("test", now()).unwrap();
        let (_, csr) = new_key_and_csr("n").unwrap();
        // DER encodes integers minimally: a leading zero byte disappears.
        let serial = SerialNumber::from_slice(&[0, 0x05, 0xaa, 0xbb]);
        let (pem, kept) = ca
            .issue_client_with(&csr, &Subject::Node("n".into()), now(), Some(serial))
            .unwrap();
        let (_, presented) = identity(&pem_certs(&pem).unwrap()[0]).unwrap();
        assert_eq!(kept, presented);
        // And fresh serials never start with a zero byte.
        for _ in 0..2000 {
            assert!(!new_serial().1.starts_with("00"));
        }
    }

    #[test]
    fn user_roles_round_trip_through_the_certificate() {
        let (ca, _) = Ca::generate("test", now()).unwrap();
        for role in [Role::Admin, Role::Operator, Role::Read] {
            let (_, csr) = new_key_and_csr("alice").unwrap();
            let subject = Subject::User {
                name: "alice".into(),
                role,
            };
            let (pem, _) = ca.issue_client(&csr, &subject, now()).unwrap();
            assert_eq!(identity(&pem_certs(&pem).unwrap()[0]).unwrap().0, subject);
        }
    }

    #[test]
    fn a_ca_reloaded_from_pem_signs_the_same() {
        let (ca, key) = Ca::generate("test", now()).unwrap();
        let again = Ca::from_pem(&ca.cert_pem, &key).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        let (_, csr) = new_key_and_csr("x").unwrap();
        again
            .issue_client(&csr, &Subject::Node("x".into()), now())
            .unwrap();
    }

    #[test]
    fn garbage_requests_and_certificates_are_errors() {
        let (ca, _) = Ca::generate("test", now()).unwrap();
        let err = ca
            .issue_client(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                &Subject::Node("x".into()),
                now(),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid certificate signing request"),
            "{err}"
        );
        // A CA certificate is not an identity.
        assert!(matches!(
            identity(&ca.cert_der),
            Err(PkiError::NotAnIdentity(_))
        ));
        assert!(csr_fingerprint("nope").is_err());
    }

    #[test]
    fn the_same_key_gives_the_same_fingerprint() {
        let (_, csr) = new_key_and_csr("x").unwrap();
        assert_eq!(
            csr_fingerprint(&csr).unwrap(),
            csr_fingerprint(&csr).unwrap()
        );
        assert!(csr_fingerprint(&csr).unwrap().starts_with("sha256:"));
    }
}

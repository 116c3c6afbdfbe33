//! A person's key and certificate request, made where they work (`user
//! add`): an ECDSA P-256 key from ring (PKCS#8, PEM), and a PKCS#10
//! request for it written with yasna, the DER writer certificate tools
//! are built on. Only the request travels; the master takes its public
//! key and sets everything else in the certificate itself.

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use yasna::Tag;
use yasna::models::ObjectIdentifier;

#[derive(Debug, thiserror::Error)]
#[error("cannot make a key: {0}")]
pub struct KeyError(String);

const EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const PRIME256V1: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const COMMON_NAME: &[u64] = &[2, 5, 4, 3];

fn oid(parts: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(parts)
}

/// A new key (PEM, PKCS#8) and a certificate request for it naming `cn`
/// (PEM).
pub fn new_key_and_csr(cn: &str) -> Result<(String, String), KeyError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|e| KeyError(e.to_string()))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| KeyError(e.to_string()))?;
    let info = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0); // version 1
            w.next().write_sequence_of(|w| {
                w.next().write_set_of(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(COMMON_NAME));
                        w.next().write_utf8_string(cn);
                    });
                });
            });
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(EC_PUBLIC_KEY));
                    w.next().write_oid(&oid(PRIME256V1));
                });
                let point = key.public_key().as_ref();
                w.next().write_bitvec_bytes(point, point.len() * 8);
            });
            // No attributes.
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_set_of(|_| {}));
        });
    });
    let signature = key.sign(&rng, &info).map_err(|e| KeyError(e.to_string()))?;
    let csr = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&info);
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(ECDSA_WITH_SHA256));
            });
            let sig = signature.as_ref();
            w.next().write_bitvec_bytes(sig, sig.len() * 8);
        });
    });
    let pem_of = |tag: &str, der: Vec<u8>| pem::encode(&pem::Pem::new(tag, der));
    Ok((
        pem_of("PRIVATE KEY", pkcs8.as_ref().to_vec()),
        pem_of("CERTIFICATE REQUEST", csr),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_signed_by_its_key_and_names_the_user() {
        let (key_pem, csr_pem) = new_key_and_csr("olga").unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // A certificate tool reads it back: subject, public key, signature.
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&csr_pem).unwrap();
        let cn = csr
            .params
            .distinguished_name
            .get(&rcgen::DnType::CommonName)
            .cloned();
        assert_eq!(cn, Some(rcgen::DnValue::Utf8String("olga".into())));
        let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        assert_eq!(
            rcgen::PublicKeyData::der_bytes(&csr.public_key),
            key.public_key_raw(),
            "the request carries the key's own public point"
        );
    }
}

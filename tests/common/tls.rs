//! A throw-away PKI for TLS tests: a CA, a server certificate it signed for
//! `localhost` and `127.0.0.1`, and a second server certificate from a CA nobody
//! trusts, as PEM strings and as files in a temporary directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use oneaccess_sim::echo::Echo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The names every server certificate here is valid for: what tests dial.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A CA and server certificates, written to `dir` (removed on drop).
///
/// The server certificate is signed directly by the CA, so `cert_path` holds a
/// one-certificate chain (the leaf). Keys are ECDSA P-256, PKCS#8 PEM.
pub struct TestPki {
    /// The temporary directory holding the files below.
    pub dir: PathBuf,
    /// The trusted CA's certificate (`ca.pem`).
    pub ca_pem: String,
    pub ca_pem_path: PathBuf,
    /// The server's chain, leaf first (`server.pem`).
    pub cert_pem: String,
    pub cert_path: PathBuf,
    /// The server's private key (`server.key`).
    pub key_pem: String,
    pub key_path: PathBuf,
    /// A CA that no client here trusts (`untrusted-ca.pem`), and a server
    /// certificate it signed for the same names: verification against `ca_pem`
    /// must fail on it.
    pub untrusted_ca_pem: String,
    pub untrusted_ca_pem_path: PathBuf,
    pub untrusted_cert_pem: String,
    pub untrusted_cert_path: PathBuf,
    pub untrusted_key_pem: String,
    pub untrusted_key_path: PathBuf,
}

impl TestPki {
    /// Makes both CAs and both server certificates and writes them as PEM files
    /// into a new temporary directory.
    pub fn new() -> TestPki {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oag-pki-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));

        let (ca_pem, ca) = new_ca("oneaccess-gateway test CA");
        let (cert_pem, key_pem) = new_server(&ca);
        let (untrusted_ca_pem, untrusted_ca) = new_ca("untrusted test CA");
        let (untrusted_cert_pem, untrusted_key_pem) = new_server(&untrusted_ca);

        TestPki {
            ca_pem_path: write(&dir, "ca.pem", &ca_pem),
            cert_path: write(&dir, "server.pem", &cert_pem),
            key_path: write(&dir, "server.key", &key_pem),
            untrusted_ca_pem_path: write(&dir, "untrusted-ca.pem", &untrusted_ca_pem),
            untrusted_cert_path: write(&dir, "untrusted-server.pem", &untrusted_cert_pem),
            untrusted_key_path: write(&dir, "untrusted-server.key", &untrusted_key_pem),
            dir,
            ca_pem,
            cert_pem,
            key_pem,
            untrusted_ca_pem,
            untrusted_cert_pem,
            untrusted_key_pem,
        }
    }

    /// The echo upstream over HTTPS with the trusted server certificate, on an
    /// ephemeral loopback port.
    pub async fn echo(&self) -> Echo {
        Echo::start_tls(loopback(), &self.cert_pem, &self.key_pem)
            .await
            .expect("echo upstream over TLS")
    }

    /// The echo upstream over HTTPS with the untrusted CA's certificate.
    pub async fn untrusted_echo(&self) -> Echo {
        Echo::start_tls(
            loopback(),
            &self.untrusted_cert_pem,
            &self.untrusted_key_pem,
        )
        .await
        .expect("echo upstream over TLS (untrusted)")
    }

    /// A reqwest client (no redirects followed) that trusts this CA and nothing
    /// else: not the system's roots, not the untrusted CA.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA PEM");
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_only([ca])
            .build()
            .expect("client")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A self-signed CA allowed to sign server certificates: (PEM, issuer).
pub fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

/// A server certificate for [`SERVER_NAMES`] signed by `ca`: (certificate PEM,
/// key PEM).
fn new_server(ca: &Issuer<'static, KeyPair>) -> (String, String) {
    signed_cert(ca, "localhost", vec![ExtendedKeyUsagePurpose::ServerAuth])
}

/// A certificate for [`SERVER_NAMES`] (an IP string becomes an IP SAN) named
/// `common_name`, for `usage`, signed by `ca`: (certificate PEM, key PEM).
pub fn signed_cert(
    ca: &Issuer<'static, KeyPair>,
    common_name: &str,
    usage: Vec<ExtendedKeyUsagePurpose>,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(SERVER_NAMES.map(str::to_string).to_vec()).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usage;
    let cert = params.signed_by(&key, ca).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

/// Writes `pem` as `dir/name`.
pub fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

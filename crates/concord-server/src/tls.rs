//! Optional TLS on every port (rustls, `ring` crypto): off unless `--tls-cert`, `--tls-key` and
//! `--tls-ca` (or a `[tls]` table) are given.
//!
//! ```text
//!   peer port   mutual TLS: both sides show a certificate signed by the CA; the dialer checks the
//!               acceptor's certificate is valid for the IP address it dialed. The HMAC handshake of
//!               `crate::transport` then runs *inside* the session, so a peer needs the CA's
//!               signature and the cluster secret.
//!   RESP, HTTP  server-side TLS: clients check the node's certificate against the CA
//!               (`redis-cli --tls --cacert ca.pem`, `curl --cacert ca.pem https://…`). No client
//!               certificates: RESP has `requirepass`, HTTP admin calls the cluster secret.
//! ```
//!
//! One certificate per node serves all three ports, so it must be valid for the addresses peers and
//! clients use (IP subject-alternative names such as `127.0.0.1`) and for both server and client
//! authentication (peers also present it when they dial). `concord up --tls` makes such
//! certificates with a throwaway CA ([`crate::certgen`]).
//!
//! Everything that can be wrong with the files is found at startup, before a socket is opened, and
//! said plainly: an unreadable file, a file without the expected PEM block, a key that does not
//! belong to the certificate, a certificate the CA did not sign. Handshake failures at run time are
//! logged with the remote address and, where it is recognisable, the likely cause (a plaintext
//! client on a TLS port, a certificate from another CA).

use crate::config::TlsSettings;
use crate::log_limit::LogLimiter;
use crate::Error;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a client or peer may take to finish a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider, named explicitly: no process-wide default has to be installed, and no other
/// crate's choice of provider can change ours.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's TLS configurations, built once at startup from [`TlsSettings`].
pub struct NodeTls {
    /// The peer port: requires a client certificate signed by the CA.
    pub peer_acceptor: TlsAcceptor,
    /// Dialing peers: shows this node's certificate, checks theirs against the CA.
    pub peer_connector: TlsConnector,
    /// RESP and HTTP: this node's certificate; clients are not asked for one.
    pub client_acceptor: TlsAcceptor,
}

impl NodeTls {
    /// Read and check the three PEM files.
    pub fn load(settings: &TlsSettings) -> Result<NodeTls, Error> {
        let cert = read(&settings.cert, "certificate (--tls-cert)").map_err(Error::Tls)?;
        let key = read(&settings.key, "key (--tls-key)").map_err(Error::Tls)?;
        let ca = read(&settings.ca, "CA certificate (--tls-ca)").map_err(Error::Tls)?;
        NodeTls::from_pem(&cert, &key, &ca, settings)
    }

    /// Build from PEM text; `names` says which files the texts came from (for error messages).
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8], names: &TlsSettings) -> Result<NodeTls, Error> {
        node_tls(cert, key, ca, names).map_err(Error::Tls)
    }
}

/// [`NodeTls::from_pem`], with the error as the sentence it becomes.
fn node_tls(cert: &[u8], key: &[u8], ca: &[u8], names: &TlsSettings) -> Result<NodeTls, String> {
    let (cert_path, key_path, ca_path) = (names.cert.display(), names.key.display(), names.ca.display());
    let chain = certificates(cert, &format!("TLS certificate {cert_path} (--tls-cert)"))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        format!(
            "TLS key {key_path} (--tls-key) holds no usable private key ({e}); expected a PEM block \
                 such as BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY"
        )
    })?;
    let roots = Arc::new(root_store(ca, &format!("{ca_path} (--tls-ca)"))?);

    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| format!("CA certificate {ca_path}: {e}"))?;
    // Our own certificate must be one the other nodes accept: signed by the CA, usable for
    // client authentication. Checked here, so a wrong file fails now, not at every handshake.
    client_verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()).map_err(|e| {
        format!(
            "TLS certificate {cert_path} is not accepted by the CA {ca_path}: {e} (is it signed by this CA, \
                 valid now, and usable for client authentication?)"
        )
    })?;
    let single_cert_error = |e: rustls::Error| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("TLS key {key_path} does not belong to the certificate {cert_path} (the key and certificate do not match)")
        }
        e => format!("cannot use TLS key {key_path} with certificate {cert_path}: {e}"),
    };
    let peer_server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(single_cert_error)?;
    let client_server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(single_cert_error)?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| format!("CA certificate {ca_path}: {e}"))?;
    let peer_client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_webpki_verifier(server_verifier)
        .with_client_auth_cert(chain, key)
        .map_err(single_cert_error)?;
    Ok(NodeTls {
        peer_acceptor: TlsAcceptor::from(Arc::new(peer_server)),
        peer_connector: TlsConnector::from(Arc::new(peer_client)),
        client_acceptor: TlsAcceptor::from(Arc::new(client_server)),
    })
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read TLS {what} {}: {e}", path.display()))
}

/// Every `CERTIFICATE` block in `pem`; at least one.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no certificate (no BEGIN CERTIFICATE block)"));
    }
    Ok(certs)
}

/// The trust anchors in a CA file.
fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, &format!("CA certificate {what}"))? {
        roots.add(cert).map_err(|e| format!("CA certificate {what} is not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// A client configuration that trusts `ca_pem` (the CA file) and shows no certificate: what a
/// RESP or HTTP client of a TLS node uses (tests, `concord member --tls-ca`).
pub fn client_config(ca_path: &Path) -> Result<Arc<ClientConfig>, Error> {
    client_config_or_why(ca_path).map_err(Error::Tls)
}

fn client_config_or_why(ca_path: &Path) -> Result<Arc<ClientConfig>, String> {
    let ca = read(ca_path, "CA certificate")?;
    let roots = root_store(&ca, &ca_path.display().to_string())?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name a peer's certificate must be valid for: the IP address it is dialed at.
pub fn server_name(addr: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// A handshake error, with the likely cause when the error shows it.
pub fn describe(e: &io::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error, InvalidMessage};
    let hint = match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::InvalidMessage(InvalidMessage::InvalidContentType))
        | Some(Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)) => {
            " – the other side does not speak TLS (a plaintext client, or a node without --tls-cert?)"
        }
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            " – its certificate is not signed by this node's CA (--tls-ca)"
        }
        Some(Error::NoCertificatesPresented) => " – it showed no certificate (every peer needs --tls-cert)",
        Some(Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate)) => {
            " – the other side does not accept our certificate (is it signed by the CA the other side uses?)"
        }
        Some(Error::InvalidCertificate(CertificateError::NotValidForName))
        | Some(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
            " – the certificate does not name the address it was reached at (add that IP as a subject alternative name)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// The kind of a handshake error, as a short label (the log limiter's key: each kind is logged at
/// least once, whatever other kinds of failure the same address causes).
pub fn failure_kind(e: &io::Error) -> &'static str {
    use rustls::{AlertDescription, CertificateError, Error, InvalidMessage};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::InvalidMessage(InvalidMessage::InvalidContentType))
        | Some(Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)) => "tls_plaintext",
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => "tls_unknown_ca",
        Some(Error::NoCertificatesPresented) => "tls_no_certificate",
        Some(Error::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate)) => {
            "tls_our_certificate_refused"
        }
        Some(Error::InvalidCertificate(_)) => "tls_bad_certificate",
        Some(_) => "tls_other",
        None => "tls_io",
    }
}

/// RESP over TLS: the [`concord_resp::Acceptor`] that runs the server handshake.
pub struct RespTls {
    pub acceptor: TlsAcceptor,
}

impl concord_resp::Acceptor for RespTls {
    type Reader = ReadHalf<TlsStream<TcpStream>>;
    type Writer = WriteHalf<TlsStream<TcpStream>>;
    fn accept(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> concord_resp::BoxFuture<io::Result<(Self::Reader, Self::Writer)>> {
        let acceptor = self.acceptor.clone();
        Box::pin(async move {
            let stream = handshake(&acceptor, socket, peer, "RESP").await?;
            Ok(tokio::io::split(stream))
        })
    }
}

/// Failed TLS handshakes and accepts on the front doors: anyone can cause them, so their warnings
/// are rate-limited per source address and port kind ([`crate::log_limit`]).
static REFUSALS: std::sync::LazyLock<LogLimiter> = std::sync::LazyLock::new(LogLimiter::default);

/// The server side of a handshake, bounded in time; failures are logged with the remote address
/// (rate-limited).
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
    remote: SocketAddr,
    what: &'static str,
) -> io::Result<TlsStream<TcpStream>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => {
            let message =
                format!("{what} connection from {remote} refused: TLS handshake failed: {}", describe(&e));
            REFUSALS.warn(remote.ip(), what, failure_kind(&e), message);
            Err(e)
        }
        Err(_) => {
            let message = format!(
                "{what} connection from {remote} refused: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}"
            );
            REFUSALS.warn(remote.ip(), what, "tls_timeout", message);
            Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))
        }
    }
}

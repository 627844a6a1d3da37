//! A throwaway certificate authority for local TLS clusters (`concord up --tls`) and tests.
//!
//! [`Ca::new`] makes a self-signed CA; [`Ca::issue`] signs a node certificate valid for the given
//! IP addresses and DNS names, for both server and client authentication (a node shows the same
//! certificate to clients and, as a dialer, to peers). Keys are ECDSA P-256.
//!
//! The CA's private key is never written to disk by [`local_cluster`]: a CA that can sign nothing
//! more cannot be misused later. Asking for more nodes than the files cover makes a new CA (and new
//! certificates for every node) – fine for a throwaway cluster, and clients must then fetch the new
//! `ca.pem`. For anything else, bring certificates from a real CA with `--tls-cert/--tls-key/--tls-ca`.

use crate::config::TlsSettings;
use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::net::IpAddr;
use std::path::Path;

/// A certificate authority held in memory.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A signed certificate and its private key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Ca, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// The CA certificate (what clients and peers trust).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `name`, valid for these IP addresses and DNS names.
    pub fn issue(&self, name: &str, ips: &[IpAddr], dns: &[&str]) -> Result<Issued, rcgen::Error> {
        let sans: Vec<String> =
            ips.iter().map(IpAddr::to_string).chain(dns.iter().map(|d| d.to_string())).collect();
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Where node `id`'s files of a local cluster live under `dir` (DATA/tls).
pub fn node_files(dir: &Path, id: u32) -> TlsSettings {
    TlsSettings {
        cert: dir.join(format!("node{id}.pem")),
        key: dir.join(format!("node{id}.key")),
        ca: dir.join("ca.pem"),
    }
}

/// Make sure `dir` holds `ca.pem` and a certificate and key for nodes `1..=nodes`, each valid for
/// `bind`, 127.0.0.1 and `localhost`. Existing files are kept when they cover every node.
pub fn local_cluster(dir: &Path, cluster_id: &str, nodes: u32, bind: IpAddr) -> anyhow::Result<()> {
    let complete = dir.join("ca.pem").exists()
        && (1..=nodes).all(|id| {
            let f = node_files(dir, id);
            f.cert.exists() && f.key.exists()
        });
    if complete {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = Ca::new(&format!("{cluster_id} throwaway CA")).context("generating the CA")?;
    let mut ips = vec![bind];
    let loopback: IpAddr = [127, 0, 0, 1].into();
    if bind != loopback {
        ips.push(loopback);
    }
    for id in 1..=nodes {
        let issued = ca.issue(&format!("{cluster_id} node {id}"), &ips, &["localhost"])?;
        let files = node_files(dir, id);
        std::fs::write(&files.cert, issued.cert_pem)
            .with_context(|| format!("cannot write {}", files.cert.display()))?;
        crate::cluster::write_private(&files.key, &issued.key_pem)?;
    }
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).with_context(|| format!("cannot write {}", ca_path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_cluster_gets_certificates_each_node_accepts_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        local_cluster(&tls, "c1", 3, [127, 0, 0, 1].into()).unwrap();
        for id in 1..=3 {
            crate::tls::NodeTls::load(&node_files(&tls, id)).unwrap();
        }
        let ca = std::fs::read(tls.join("ca.pem")).unwrap();
        local_cluster(&tls, "c1", 3, [127, 0, 0, 1].into()).unwrap();
        assert_eq!(std::fs::read(tls.join("ca.pem")).unwrap(), ca, "complete files are reused");
        // One node more: a new CA, and node 1's new certificate is signed by it.
        local_cluster(&tls, "c1", 4, [127, 0, 0, 1].into()).unwrap();
        assert_ne!(std::fs::read(tls.join("ca.pem")).unwrap(), ca);
        for id in 1..=4 {
            crate::tls::NodeTls::load(&node_files(&tls, id)).unwrap();
        }
    }
}

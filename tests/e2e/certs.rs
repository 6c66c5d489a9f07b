//! A throw-away PKI for one control plane: a CA, the API server's serving certificate for
//! 127.0.0.1, an admin client certificate (group `system:masters`, so RBAC lets it do anything) and
//! the service-account signing key. ECDSA P-256 throughout: rustls, Go and kubectl all accept it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

pub struct Pki {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// PKCS#8 private key that signs service-account tokens, and its public half to verify them.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path, serving_ips: &[IpAddr]) -> Pki {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PKI file");
            path
        };

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ferrolb-e2e-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().expect("serving key");
        let mut serving = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        serving
            .subject_alt_names
            .extend(serving_ips.iter().map(|ip| SanType::IpAddress(*ip)));
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .expect("sign serving cert");

        let admin_key = KeyPair::generate().expect("admin key");
        let mut admin = CertificateParams::new(Vec::<String>::new()).expect("params");
        admin
            .distinguished_name
            .push(DnType::CommonName, "ferrolb-e2e-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin
            .signed_by(&admin_key, &issuer)
            .expect("sign admin cert");

        let sa_key = KeyPair::generate().expect("service-account key");

        Pki {
            ca_cert: write("ca.crt", ca_cert.pem()),
            serving_cert: write("apiserver.crt", serving_cert.pem()),
            serving_key: write("apiserver.key", serving_key.serialize_pem()),
            admin_cert: write("admin.crt", admin_cert.pem()),
            admin_key: write("admin.key", admin_key.serialize_pem()),
            service_account_key: write("sa.key", sa_key.serialize_pem()),
            service_account_pub: write("sa.pub", sa_key.public_key_pem()),
        }
    }
}

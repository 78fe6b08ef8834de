//! The self-signed certificate used by TLS listeners that name no `tls.certfile`, so
//! that the default config serves TLS out of the box.
//!
//! It is generated once (ECDSA P-256, subject alternative names `localhost`, the
//! configured hosts and `127.0.0.1`) into the data directory and reused on every later
//! start, so clients that pinned it keep working. Deleting both files yields a new one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the certificate in the data directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key in the data directory.
pub const KEY_FILE: &str = "key.pem";

/// Why the self-signed pair could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file or the directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The certificate exists but its key does not; refusing to overwrite either.
    #[error("{} exists but {} does not; remove {} to generate a new pair", cert.display(), key.display(), cert.display())]
    MissingKey {
        /// The certificate found.
        cert: PathBuf,
        /// The key not found.
        key: PathBuf,
    },
    /// rcgen refused a name or failed to sign.
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemPair {
    /// The certificate.
    pub cert_pem: Vec<u8>,
    /// The PKCS#8 private key.
    pub key_pem: Vec<u8>,
}

/// The names a self-signed certificate for `hosts` covers, without duplicates.
fn subject_alt_names(hosts: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    names.push("127.0.0.1".into());
    names
}

/// Generates a fresh self-signed pair for `hosts`.
pub fn generate(hosts: &[String]) -> Result<PemPair, CertError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(subject_alt_names(hosts))?;
    let common_name = hosts.first().map(String::as_str).unwrap_or("localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let cert = params.self_signed(&key)?;
    Ok(PemPair {
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    })
}

/// The pair in `dir`, generated there first if absent. Returns it and whether it was
/// generated now.
pub fn load_or_generate(dir: &Path, hosts: &[String]) -> Result<(PemPair, bool), CertError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Io { path, source }
    };
    if cert_path.exists() {
        if !key_path.exists() {
            return Err(CertError::MissingKey {
                cert: cert_path,
                key: key_path,
            });
        }
        let pair = PemPair {
            cert_pem: fs::read(&cert_path).map_err(io(&cert_path))?,
            key_pem: fs::read(&key_path).map_err(io(&key_path))?,
        };
        return Ok((pair, false));
    }
    create_private_dir(dir).map_err(io(dir))?;
    let pair = generate(hosts)?;
    // The key goes first: a present cert.pem means the pair is complete.
    write_atomically(&key_path, &pair.key_pem, 0o600).map_err(io(&key_path))?;
    write_atomically(&cert_path, &pair.cert_pem, 0o644).map_err(io(&cert_path))?;
    Ok((pair, true))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to a temporary file created with `mode` and renames it over `path`,
/// so that a crash never leaves a half-written file and the key is never readable by
/// others, not even for a moment.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("pem.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meerkat_engine::tls::TlsIdentity;

    fn hosts() -> Vec<String> {
        vec!["example.com".into(), "localhost".into()]
    }

    #[test]
    fn generated_pair_is_a_usable_identity_covering_the_hosts() {
        let pair = generate(&hosts()).unwrap();
        TlsIdentity::from_pem(&pair.cert_pem, &pair.key_pem, &[b"xmpp-client"]).unwrap();
        let names = subject_alt_names_of(&first_der(&pair.cert_pem));
        assert_eq!(names, vec!["localhost", "example.com", "127.0.0.1"]);
    }

    #[test]
    fn pair_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("meerkat-data");
        let (first, generated) = load_or_generate(&data, &hosts()).unwrap();
        assert!(generated);
        let (second, generated) = load_or_generate(&data, &hosts()).unwrap();
        assert!(!generated);
        assert_eq!(first, second);
        assert!(!data.join("key.pem.tmp").exists());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        load_or_generate(dir.path(), &hosts()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn certificate_without_key_is_an_error_not_an_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        load_or_generate(dir.path(), &hosts()).unwrap();
        let cert_before = fs::read(dir.path().join(CERT_FILE)).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = load_or_generate(dir.path(), &hosts()).unwrap_err();
        assert!(matches!(err, CertError::MissingKey { .. }), "{err}");
        assert_eq!(fs::read(dir.path().join(CERT_FILE)).unwrap(), cert_before);
    }

    /// The DER of the first certificate in `pem`.
    fn first_der(pem: &[u8]) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::pem_slice_iter(pem)
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    /// The subject alternative names of a DER certificate, as strings.
    fn subject_alt_names_of(der: &[u8]) -> Vec<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    std::net::IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string()
                }
                other => format!("{other:?}"),
            })
            .collect()
    }
}

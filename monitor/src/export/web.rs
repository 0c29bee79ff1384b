//! TLS and basic auth for the listener, in the Prometheus exporter-toolkit convention: the
//! same `web-config.yml` node_exporter takes (`--web.config.file`), read with serde_yaml_ng,
//! served with rustls, passwords checked with bcrypt. Nothing here is hand-written crypto.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::Deserialize;
use tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};

/// `web-config.yml` as the exporter toolkit defines it. Keys it has and l2watch does not
/// support are refused by name rather than ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    pub tls_server_config: Option<TlsServerConfig>,
    pub http_server_config: Option<HttpServerConfig>,
    /// User name to bcrypt hash (`htpasswd -nBC 10 "" | tr -d ':\n'`).
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Inline PEM instead of files, as the toolkit allows.
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub client_ca: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// Accepted for compatibility only when empty: rustls offers its own safe suites.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    pub prefer_server_cipher_suites: Option<bool>,
    /// Not supported (it needs the certificates' subject names); refused when set.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// HTTP/2 is not served (scrapes and the API are HTTP/1.1); `true` is accepted and
    /// logged, as Prometheus's default is to try it.
    pub http2: Option<bool>,
    /// Extra response headers (e.g. Strict-Transport-Security).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("web config {path}: {message}")]
pub struct WebConfigError {
    pub path: PathBuf,
    pub message: String,
}

/// What the listener applies: a TLS acceptor, the users, extra headers.
pub struct Web {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    pub http2_requested: bool,
}

impl Web {
    /// Plain HTTP, no auth: the listener without a web config.
    pub fn plain() -> Web {
        Web {
            tls: None,
            auth: None,
            headers: Vec::new(),
            http2_requested: false,
        }
    }

    /// Reads and checks `path`; every error names the key and the fix.
    pub fn load(path: &Path) -> Result<Web, WebConfigError> {
        let err = |message: String| WebConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(format!(
                "cannot read it: {e}; pass --web.config.file FILE (node_exporter's \
                 web-config.yml format) or leave it unset for plain HTTP"
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Web::parse(&text, dir).map_err(err)
    }

    /// Parses the YAML text; relative file names are taken from `dir`, as the toolkit does.
    pub fn parse(text: &str, dir: &Path) -> Result<Web, String> {
        let file: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| {
                format!(
                    "{e}; the keys are tls_server_config, http_server_config and \
                     basic_auth_users, as in node_exporter's web-config.yml"
                )
            })?
        };
        let tls = file
            .tls_server_config
            .map(|t| tls_acceptor(&t, dir))
            .transpose()?;
        let mut users = BTreeMap::new();
        for (user, hash) in file.basic_auth_users {
            if user.contains(':') {
                return Err(format!(
                    "basic_auth_users: {user:?}: a user name cannot contain ':'"
                ));
            }
            hash.parse::<bcrypt::HashParts>().map_err(|e| {
                format!(
                    "basic_auth_users.{user}: not a bcrypt hash ({e}); make one with \
                     `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )
            })?;
            users.insert(user, hash);
        }
        let auth = (!users.is_empty()).then(|| Arc::new(BasicAuth::new(users)));
        let http = file.http_server_config.unwrap_or_default();
        let mut headers = Vec::new();
        for (k, v) in &http.headers {
            let name = axum::http::HeaderName::try_from(k.as_str())
                .map_err(|e| format!("http_server_config.headers: {k:?}: {e}"))?;
            let value = axum::http::HeaderValue::try_from(v.as_str())
                .map_err(|e| format!("http_server_config.headers.{k}: {e}"))?;
            headers.push((name, value));
        }
        Ok(Web {
            tls,
            auth,
            headers,
            http2_requested: http.http2.unwrap_or(false),
        })
    }
}

fn pem_source(
    file: &Option<PathBuf>,
    inline: &Option<String>,
    dir: &Path,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: set {key}_file or {key}, not both"
        )),
        (Some(f), None) => {
            let p = dir.join(f);
            std::fs::read(&p)
                .map(Some)
                .map_err(|e| format!("tls_server_config.{key}_file: {}: {e}", p.display()))
        }
        (None, Some(s)) => Ok(Some(s.clone().into_bytes())),
        (None, None) => Ok(None),
    }
}

fn tls_acceptor(t: &TlsServerConfig, dir: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    for (key, set) in [
        ("cipher_suites", !t.cipher_suites.is_empty()),
        ("curve_preferences", !t.curve_preferences.is_empty()),
        ("client_allowed_sans", !t.client_allowed_sans.is_empty()),
    ] {
        if set {
            return Err(format!(
                "tls_server_config.{key}: not supported by l2watch (rustls chooses safe \
                 suites and groups itself); remove the key"
            ));
        }
    }
    let cert = pem_source(&t.cert_file, &t.cert, dir, "cert")?
        .ok_or("tls_server_config: cert_file is required (the server certificate chain, PEM)")?;
    let key = pem_source(&t.key_file, &t.key, dir, "key")?
        .ok_or("tls_server_config: key_file is required (the server's private key, PEM)")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: not PEM certificates: {e}"))?;
    if chain.is_empty() {
        return Err("tls_server_config.cert_file: no CERTIFICATE block in it".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| format!("tls_server_config.key_file: no usable private key: {e}"))?;
    let versions = tls_versions(t.min_version, t.max_version)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let ca = pem_source(&t.client_ca_file, &t.client_ca, dir, "client_ca")?;
    let needs_ca = matches!(
        t.client_auth_type,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    let builder = match (t.client_auth_type, ca) {
        (ClientAuth::NoClientCert, _) => builder.with_no_client_auth(),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, _) => {
            return Err(format!(
                "tls_server_config.client_auth_type: {:?} accepts any certificate, which \
                 rustls does not do; use RequireAndVerifyClientCert with client_ca_file",
                t.client_auth_type
            ))
        }
        (_, None) => {
            debug_assert!(needs_ca);
            return Err(format!(
                "tls_server_config.client_ca_file: required by client_auth_type {:?}",
                t.client_auth_type
            ));
        }
        (auth, Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| format!("tls_server_config.client_ca_file: not PEM: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::VerifyClientCertIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?,
            )
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not go together: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

fn tls_versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let min = min.unwrap_or(TlsVersion::TLS12);
    let max = max.unwrap_or(TlsVersion::TLS13);
    if max < TlsVersion::TLS12 {
        return Err(
            "tls_server_config.max_version: TLS 1.0 and 1.1 are not offered; use TLS12 or TLS13"
                .into(),
        );
    }
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mut v = Vec::new();
    if min <= TlsVersion::TLS12 {
        v.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::TLS13 {
        v.push(&rustls::version::TLS13);
    }
    Ok(v)
}

/// The users and a cache of checks already made: bcrypt costs tens of milliseconds by
/// design, and Prometheus sends the same credentials every scrape.
pub struct BasicAuth {
    /// One bcrypt check at a time: a stream of wrong passwords costs the agent one thread,
    /// never all of them (the rest wait, bounded by the connection cap).
    pub gate: tokio::sync::Semaphore,
    users: BTreeMap<String, String>,
    /// SHA-256 of (user, password, hash) for credentials that matched; bounded.
    good: Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// Matched credentials remembered; past it the cache starts again.
const AUTH_CACHE: usize = 256;

/// Checked for unknown users, so a wrong name costs as long as a wrong password.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| bcrypt::hash("l2watch", bcrypt::DEFAULT_COST).unwrap_or_default())
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            gate: tokio::sync::Semaphore::new(1),
            users,
            good: Mutex::new(Default::default()),
        }
    }

    fn cache_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [user, password, hash] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// True when these credentials matched before (no bcrypt needed).
    pub fn known_good(&self, user: &str, password: &str) -> bool {
        self.users.get(user).is_some_and(|hash| {
            let key = Self::cache_key(user, password, hash);
            self.good.lock().expect("auth cache").contains(&key)
        })
    }

    /// Whether `user`/`password` match; slow (bcrypt) the first time, so call it off the
    /// async threads, one at a time ([`BasicAuth::gate`]).
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            let _ = bcrypt::verify(password, dummy_hash());
            return false;
        };
        let key = Self::cache_key(user, password, hash);
        if self.good.lock().expect("auth cache").contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut g = self.good.lock().expect("auth cache");
            if g.len() >= AUTH_CACHE {
                g.clear();
            }
            g.insert(key);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_need_bcrypt_hashes_and_the_error_says_how_to_make_one() {
        let e = Web::parse("basic_auth_users:\n  alice: secret\n", Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("basic_auth_users.alice"), "{e}");
        assert!(e.contains("htpasswd"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Web::parse("tls_server_config:\n  certfile: x\n", Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("certfile"), "{e}");
        let e = Web::parse("basic_auth: {}\n", Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("basic_auth"), "{e}");
    }

    #[test]
    fn tls_needs_a_certificate_and_key() {
        let e = Web::parse(
            "tls_server_config:\n  key_file: k.pem\n",
            Path::new("/nonexistent"),
        )
        .err()
        .unwrap();
        assert!(e.contains("key_file") || e.contains("cert_file"), "{e}");
        let e = Web::parse(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            Path::new("."),
        )
        .err()
        .unwrap();
        assert!(e.contains("cipher_suites"), "{e}");
    }

    #[test]
    fn an_empty_file_is_plain_http() {
        let w = Web::parse("", Path::new(".")).unwrap();
        assert!(w.tls.is_none() && w.auth.is_none());
    }

    #[test]
    fn passwords_are_checked_with_bcrypt_and_cached() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let a = BasicAuth::new([("prom".to_string(), hash)].into());
        assert!(a.check("prom", "s3cret"));
        assert!(a.check("prom", "s3cret"), "cached");
        assert!(!a.check("prom", "wrong"));
        assert!(!a.check("nobody", "s3cret"));
        assert_eq!(a.good.lock().unwrap().len(), 1);
    }
}

//! Parsing a connection string (URL or `key=value` form) into a tokio-postgres config
//! plus the TLS settings tokio-postgres does not know (`verify-ca`, `verify-full`,
//! `sslrootcert`, `sslcert`, `sslkey`), with errors that say what is wrong and never
//! repeat the string (it may hold a password).

use std::path::PathBuf;

use crate::error::{describe, Error, Result};

/// How a connection uses TLS, as libpq's `sslmode` (without `allow`, which only
/// matters for servers that demand plain text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, without checking its certificate (libpq's
    /// default, and pglane's when `sslmode` is not given).
    #[default]
    Prefer,
    /// Always use TLS; check the server's certificate only if `sslrootcert` is given
    /// (then as `verify-ca`), as libpq does.
    Require,
    /// Always use TLS and check that the server's certificate is signed by a trusted CA
    /// (`sslrootcert`, else the system's roots), whatever host name it names.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The name used in connection strings.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::InvalidDatabaseUrl(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            )))
            }
        })
    }

    /// What tokio-postgres is told: it only knows whether TLS is off, tried or required.
    pub(crate) fn for_tokio_postgres(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCerts {
    /// The operating system's store (no `sslrootcert`, or `sslrootcert=system`).
    System,
    /// Only the certificates in this PEM file.
    File(PathBuf),
}

/// The TLS half of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub(crate) mode: SslMode,
    pub(crate) roots: RootCerts,
    /// `sslrootcert` was given (which makes `require` check the certificate).
    pub(crate) roots_given: bool,
    /// Client certificate chain and key (PEM files), sent when the server asks.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            mode: SslMode::Prefer,
            roots: RootCerts::System,
            roots_given: false,
            client_cert: None,
        }
    }
}

impl TlsOptions {
    /// The mode in effect: `require` with a given CA checks the certificate like
    /// `verify-ca` (libpq does the same).
    pub(crate) fn effective_mode(&self) -> SslMode {
        match self.mode {
            SslMode::Require if self.roots_given => SslMode::VerifyCa,
            m => m,
        }
    }
}

/// The TLS keys pglane reads itself; tokio-postgres would reject all but `sslmode`.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits a connection string into tokio-postgres's config and the TLS options.
pub(crate) fn parse(s: &str) -> Result<(tokio_postgres::Config, TlsOptions)> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(bad("the connection string is empty"));
    }
    let (rest, tls_pairs) = match trimmed.split_once("://") {
        Some((scheme, _)) if scheme != "postgres" && scheme != "postgresql" => {
            let scheme: String = scheme.chars().take(20).collect();
            return Err(bad(&format!(
                "`{scheme}://` is not a PostgreSQL URL: use postgres://user@host:port/database"
            )));
        }
        Some(_) => split_url(trimmed)?,
        None => split_key_values(trimmed)?,
    };
    let mut tls = TlsOptions::default();
    let (mut cert, mut key) = (None, None);
    for (k, v) in tls_pairs {
        match k.as_str() {
            "sslmode" => tls.mode = SslMode::parse(&v)?,
            "sslrootcert" if v == "system" => tls.roots_given = false,
            "sslrootcert" => {
                tls.roots = RootCerts::File(PathBuf::from(v));
                tls.roots_given = true;
            }
            "sslcert" => cert = Some(PathBuf::from(v)),
            "sslkey" => key = Some(PathBuf::from(v)),
            _ => unreachable!("only TLS_KEYS are split off"),
        }
    }
    tls.client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err(bad("sslcert is given without sslkey")),
        (None, Some(_)) => return Err(bad("sslkey is given without sslcert")),
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
        // tokio-postgres names the option but never its value: safe to show.
        bad(&describe(&e).replace("invalid connection string: ", ""))
    })?;
    config.ssl_mode(tls.mode.for_tokio_postgres());
    Ok((config, tls))
}

fn bad(reason: &str) -> Error {
    Error::InvalidDatabaseUrl(reason.to_string())
}

type Pairs = Vec<(String, String)>;

/// `postgres://…?a=1&sslmode=require` → the URL without the TLS parameters, and them.
fn split_url(url: &str) -> Result<(String, Pairs)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        if TLS_KEYS.contains(&k) {
            tls.push((k.to_string(), percent_decode(v)?));
        } else {
            kept.push(param);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, tls))
}

fn percent_decode(v: &str) -> Result<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("a TLS parameter has a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("a TLS parameter is not UTF-8 once %-decoded"))
}

/// `host=h sslmode=require` → the string without the TLS keys (values re-quoted), and
/// them. Values may be quoted with `'…'`; `\` escapes the next character, as in libpq.
fn split_key_values(s: &str) -> Result<(String, Pairs)> {
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(bad(
                "not a URL or key=value string: expected postgres://user@host:port/database \
                 or `host=… port=… dbname=…`",
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(bad(&format!("the value of `{key}` has no closing quote"))),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> String {
        match parse(s) {
            Err(Error::InvalidDatabaseUrl(r)) => r,
            other => panic!("{s:?} gave {other:?}"),
        }
    }

    #[test]
    fn what_is_wrong_is_said_and_the_string_is_not_repeated() {
        assert!(reason("not a url").contains("not a URL or key=value"));
        let mysql = reason("mysql://root:hunter2@db/app");
        assert!(
            mysql.contains("`mysql://` is not a PostgreSQL URL"),
            "{mysql}"
        );
        assert!(!mysql.contains("hunter2"));
        assert!(reason("").contains("empty"));
        let mode = reason("postgres://u@h/db?sslmode=verify_full");
        assert!(
            mode.contains("sslmode `verify_full` is not one of"),
            "{mode}"
        );
        let port = reason("postgres://u:hunter2@h:notaport/db");
        assert!(port.contains("port") && !port.contains("hunter2"), "{port}");
        assert!(reason("postgres://h/db?sslcert=/c.pem").contains("without sslkey"));
        assert!(reason("host=h sslrootcert='/x").contains("no closing quote"));
        assert!(reason("postgres://h/db?colour=blue").contains("unknown option `colour`"));
        assert!(Error::InvalidDatabaseUrl("x".into())
            .to_string()
            .starts_with("invalid database URL: "));
    }

    #[test]
    fn tls_options_come_out_of_urls() {
        let (pg, tls) = parse(
            "postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write&sslmode=verify-full\
             &sslrootcert=/etc/ca%20dir/ca.pem&sslcert=/c.pem&sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.roots, RootCerts::File("/etc/ca dir/ca.pem".into()));
        assert_eq!(
            tls.client_cert,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert_eq!(pg.get_hosts().len(), 2);
        assert_eq!(
            pg.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);

        let (pg, tls) = parse("postgres://u@h/db").unwrap();
        assert_eq!(tls, TlsOptions::default());
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        let (_, tls) = parse("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.effective_mode(), SslMode::VerifyCa);
        let (_, tls) = parse("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(tls.effective_mode(), SslMode::Require);
    }

    #[test]
    fn tls_options_come_out_of_key_value_strings() {
        let (pg, tls) =
            parse("host=h port=6543 password='a b\\'c' sslmode = disable sslrootcert='/a b/ca.pem' dbname=x")
                .unwrap();
        assert_eq!(tls.mode, SslMode::Disable);
        assert_eq!(tls.roots, RootCerts::File("/a b/ca.pem".into()));
        assert_eq!(pg.get_ports(), [6543]);
        assert_eq!(pg.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(pg.get_dbname(), Some("x"));
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }
}

//! Secrets in connection strings: the one place that decides what is
//! secret, used for every message, log line and run record that may hold a
//! store URI.
//!
//! A value is secret when it is the password of the URI's user info, or
//! the value of a query option whose name contains `password`, `secret`,
//! `token` or `key` (case-insensitive: `tlsCertificateKeyFilePassword`,
//! `sslPEMKeyPassword`, `apiKey`...), or of `authMechanismProperties`
//! (which carries e.g. `AWS_SESSION_TOKEN:…`).

/// Whether a URI query option carries a secret.
pub fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key", "authmechanismproperties"]
        .iter()
        .any(|word| name.contains(word))
}

/// `uri` with its secrets replaced by `***`: the user info's password and
/// every secret option's value. Anything that is not a URI is returned as
/// it is.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_owned();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(uri.len());
    out.push_str(&uri[..scheme_end + 3]);
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            out.push_str(user);
            out.push_str(":***");
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((key, _)) if is_secret_option(key) => format!("{key}=***"),
                _ => part.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

/// Removes a URI's secrets (as [`redact_uri`] finds them, raw and
/// percent-decoded) and the URI itself from any text, such as a driver's
/// error message, which may quote them.
#[derive(Clone, Debug)]
pub struct Scrubber {
    uri: String,
    redacted: String,
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber for the secrets of `uri`.
    pub fn new(uri: &str) -> Scrubber {
        let mut secrets = Vec::new();
        if let Some(scheme_end) = uri.find("://") {
            let rest = &uri[scheme_end + 3..];
            let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
            if let Some(at) = authority.rfind('@') {
                if let Some((_, password)) = authority[..at].split_once(':') {
                    secrets.push(password.to_owned());
                }
            }
            if let Some((_, query)) = rest.split_once('?') {
                for part in query.split('&') {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    if !is_secret_option(key) {
                        continue;
                    }
                    secrets.push(value.to_owned());
                    // `AWS_SESSION_TOKEN:abc,SERVICE_NAME:x`: each value
                    // may be quoted alone.
                    let decoded = percent_decode(value);
                    for pair in decoded.split(',') {
                        if let Some((_, v)) = pair.split_once(':') {
                            secrets.push(v.to_owned());
                        }
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is removed
        // whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Scrubber { uri: uri.to_owned(), redacted: redact_uri(uri), secrets }
    }

    /// `msg` without secrets, on one line.
    pub fn scrub(&self, msg: &str) -> String {
        let mut out = msg.replace(&self.uri, &self.redacted);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        let one_line: Vec<&str> = out.split_whitespace().collect();
        one_line.join(" ")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_and_every_secret_option() {
        assert_eq!(
            redact_uri("mongodb://admin:hunter2@db:27017/vex?authSource=admin&password=x"),
            "mongodb://admin:***@db:27017/vex?authSource=admin&password=***"
        );
        assert_eq!(redact_uri("mongodb://db:27017"), "mongodb://db:27017");
        assert_eq!(redact_uri("./backfill.db"), "./backfill.db");
        assert!(!redact_uri("mongodb+srv://u:p%40ss@c.example.net/").contains("p%40ss"));
        for key in [
            "tlsCertificateKeyFilePassword",
            "sslPEMKeyPassword",
            "authMechanismProperties",
            "clientSecret",
            "accessToken",
            "apiKey",
            "PASSWORD",
        ] {
            let uri = format!("mongodb://db/?tls=true&{key}=hunter2&appName=x");
            let r = redact_uri(&uri);
            assert_eq!(r, format!("mongodb://db/?tls=true&{key}=***&appName=x"), "{key}");
        }
        // No path before the query, user info without a password.
        assert_eq!(
            redact_uri("mongodb://u@db?authMechanismProperties=AWS_SESSION_TOKEN:t0k"),
            "mongodb://u:***@db?authMechanismProperties=***"
        );
    }

    #[test]
    fn scrubber_removes_raw_decoded_and_nested_secrets() {
        let s = Scrubber::new(
            "mongodb://admin:p%40ss@db:27017/vex?authSource=admin&token=abc&\
             authMechanismProperties=AWS_SESSION_TOKEN:s3ss%2Cion,SERVICE_NAME:svc",
        );
        let m = s.scrub("auth failed for p@ss and p%40ss, token abc, session s3ss,ion, svc");
        for secret in ["p@ss", "p%40ss", "abc", "s3ss,ion", "svc"] {
            assert!(!m.contains(secret), "{secret} in {m}");
        }
        assert_eq!(s.scrub("line one\nline two"), "line one line two");
        assert_eq!(Scrubber::new("mongodb://db").scrub("x"), "x");
    }
}

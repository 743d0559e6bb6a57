//! The `Authorization` header: `Basic base64(principal:secret)` (RFC 7617;
//! the secret is what follows the first `:`) or `Bearer <token>` (RFC
//! 6750). Schemes are case-insensitive. Anything else is refused with a
//! reason, never guessed at.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::AuthnError;
use super::tokens::{MAX_TOKEN_BYTES, TokenError};

/// Longest `Authorization` header read.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Credentials a request carries.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    Basic { principal: String, secret: String },
    Bearer(String),
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authorization::Basic { principal, .. } => write!(f, "Basic({principal})"),
            Authorization::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

fn malformed(reason: &str) -> AuthnError {
    AuthnError::Malformed(reason.to_string())
}

impl Authorization {
    /// The request's credentials, if it has an `Authorization` header.
    pub fn read(headers: &HeaderMap) -> Result<Option<Authorization>, AuthnError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(malformed("more than one Authorization header"));
        }
        if value.len() > MAX_HEADER_BYTES {
            return Err(malformed(&format!("longer than {MAX_HEADER_BYTES} bytes")));
        }
        let text = value.to_str().map_err(|_| malformed("not visible ASCII"))?;
        Self::parse(text).map(Some)
    }

    fn parse(text: &str) -> Result<Authorization, AuthnError> {
        let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            if rest.is_empty() {
                return Err(malformed("Basic without credentials"));
            }
            let decoded = STANDARD
                .decode(rest)
                .map_err(|_| malformed("Basic credentials are not base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| malformed("Basic credentials are not UTF-8"))?;
            let (principal, secret) = decoded.split_once(':').ok_or_else(|| {
                malformed("Basic credentials lack the ':' between principal and secret")
            })?;
            if principal.is_empty() {
                return Err(malformed("Basic credentials with an empty principal"));
            }
            return Ok(Authorization::Basic {
                principal: principal.to_string(),
                secret: secret.to_string(),
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Err(malformed("Bearer without a token"));
            }
            if rest.len() > MAX_TOKEN_BYTES {
                return Err(AuthnError::Token(TokenError::TooLong));
            }
            return Ok(Authorization::Bearer(rest.to_string()));
        }
        let shown: String = scheme.chars().take(32).collect();
        Err(AuthnError::Scheme(shown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn read(values: &[&[u8]]) -> Result<Option<Authorization>, AuthnError> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        Authorization::read(&h)
    }

    fn basic(text: &str) -> String {
        format!("Basic {}", STANDARD.encode(text))
    }

    #[test]
    fn basic_and_bearer() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(
            read(&[basic("fw:se:cret").as_bytes()]),
            Ok(Some(Authorization::Basic {
                principal: "fw".into(),
                secret: "se:cret".into()
            }))
        );
        let lower = basic("fw:s").replacen("Basic", "basic", 1);
        assert!(matches!(
            read(&[lower.as_bytes()]),
            Ok(Some(Authorization::Basic { .. }))
        ));
        assert_eq!(
            read(&[b"Bearer  keel1.abc "]),
            Ok(Some(Authorization::Bearer("keel1.abc".into())))
        );
    }

    #[test]
    fn malformed_headers_say_why() {
        let too_long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        let huge = format!("Basic {}", "a".repeat(MAX_HEADER_BYTES));
        for (values, needle) in [
            (vec![&b"Basic"[..]], "Basic without credentials"),
            (vec![b"Basic !!!"], "not base64"),
            (vec![basic("nocolon").as_bytes()], "lack the ':'"),
            (vec![basic(":secret").as_bytes()], "empty principal"),
            (vec![b"Bearer"], "Bearer without a token"),
            (vec![too_long.as_bytes()], "token longer than 256 bytes"),
            (vec![huge.as_bytes()], "longer than 4096 bytes"),
            (
                vec![b"Digest x=1"],
                "unsupported authorization scheme 'Digest'",
            ),
            (vec![b"Bearer a", b"Bearer b"], "more than one"),
            (vec![b"Basic \xff"], "not visible ASCII"),
        ] {
            let err = read(&values).unwrap_err().to_string();
            assert!(err.contains(needle), "{values:?}: {err}");
        }
        let garbled = format!("Basic {}", STANDARD.encode([0xff, b':', b'x']));
        assert!(
            read(&[garbled.as_bytes()])
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
    }
}

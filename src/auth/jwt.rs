//! JWT access tokens (RFC 9068) checked against the issuer's JWKS, with the engine's clock: the
//! signature with `jsonwebtoken` (its own clock checks off), the claims here.
//!
//! The host finds the JWKS through the issuer's metadata ([`metadata_urls`], then `jwks_uri`),
//! parses it with [`Keys::parse`] and keeps it; a token naming an unknown `kid` is refused with
//! [`super::Denial::unknown_key`] set, and the host refetches (bounded by
//! [`super::JWKS_REFETCH_MS`]).

use crate::prelude::*;

use super::{Denial, SKEW_S};
use crate::principal::Principal;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Algorithms accepted: asymmetric only (never `none`, never HMAC, whose key would be public).
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Keys kept from one JWKS, at most this many.
pub const MAX_KEYS: usize = 32;

/// Where an issuer's metadata is (RFC 8414, then OpenID Connect discovery).
pub fn metadata_urls(issuer: &str) -> [String; 2] {
    let i = issuer.trim_end_matches('/');
    [format!("{i}/.well-known/oauth-authorization-server"), format!("{i}/.well-known/openid-configuration")]
}

/// The issuer's usable signing keys.
pub struct Keys {
    keys: Vec<(Option<String>, Option<Algorithm>, DecodingKey)>,
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|(k, a, _)| (k, a))).finish()
    }
}

impl Keys {
    /// Parse a JWKS document: its asymmetric signing keys (`use` absent or `sig`), at most
    /// [`MAX_KEYS`]; symmetric (`oct`) keys are ignored.
    pub fn parse(jwks: &[u8]) -> Result<Keys, String> {
        let set: JwkSet = serde_json::from_slice(jwks).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for k in set.keys.iter().take(MAX_KEYS) {
            if matches!(k.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            if k.common
                .public_key_use
                .as_ref()
                .is_some_and(|u| !matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
            {
                continue;
            }
            let alg = k.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
            if let Ok(dk) = DecodingKey::from_jwk(k) {
                keys.push((k.common.key_id.clone(), alg, dk));
            }
        }
        if keys.is_empty() {
            return Err("the JWKS has no usable signing key".into());
        }
        Ok(Keys { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The `jwks_uri` of an issuer's metadata document, which must name that issuer.
pub fn jwks_uri(metadata: &[u8], issuer: &str) -> Result<String, String> {
    let v: Value = serde_json::from_slice(metadata).map_err(|e| format!("the issuer's metadata is not JSON: {e}"))?;
    if v.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(format!("the metadata names another issuer than {issuer}"));
    }
    match v.get("jwks_uri").and_then(Value::as_str) {
        Some(u) if super::is_url(u) => Ok(u.to_string()),
        _ => Err("the issuer's metadata has no usable jwks_uri".into()),
    }
}

/// Check a JWT access token; `now_s` is wall-clock seconds.
pub fn verify(token: &str, keys: &Keys, issuer: &str, audience: &str, now_s: u64) -> Result<Principal, Denial> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| Denial::invalid("not a JWT with a usable algorithm"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(Denial::invalid(format!("algorithm {:?} is not accepted", header.alg)));
    }
    match header.typ.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("at+jwt") | Some("application/at+jwt") | Some("jwt") => {}
        Some(_) => return Err(Denial::invalid("not an access token (typ)")),
    }
    let candidates: Vec<&DecodingKey> = keys
        .keys
        .iter()
        .filter(|(kid, _, _)| header.kid.is_none() || kid == &header.kid)
        .filter(|(_, alg, _)| alg.is_none_or(|a| a == header.alg))
        .map(|(_, _, k)| k)
        .collect();
    if candidates.is_empty() {
        let mut d = Denial::invalid("signed with a key the authorization server does not publish");
        d.unknown_key = Some(header.kid.clone().unwrap_or_default());
        return Err(d);
    }
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims: Value = candidates
        .iter()
        .find_map(|k| jsonwebtoken::decode::<Value>(token, k, &v).ok())
        .ok_or_else(|| Denial::invalid("bad signature"))?
        .claims;
    check_claims(&claims, issuer, audience, now_s)
}

fn check_claims(c: &Value, issuer: &str, audience: &str, now_s: u64) -> Result<Principal, Denial> {
    if c.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(Denial::invalid("issued by another authorization server"));
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(Denial::invalid("issued for another resource (aud)"));
    }
    match c.get("exp").and_then(Value::as_u64) {
        Some(exp) if now_s <= exp.saturating_add(SKEW_S) => {}
        Some(_) => return Err(Denial::invalid("expired")),
        None => return Err(Denial::invalid("no exp")),
    }
    if c.get("nbf").and_then(Value::as_u64).is_some_and(|nbf| now_s.saturating_add(SKEW_S) < nbf) {
        return Err(Denial::invalid("not valid yet (nbf)"));
    }
    let name = c
        .get("client_id")
        .or_else(|| c.get("sub"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Denial::invalid("no client_id or sub"))?;
    let scopes = match (c.get("scope"), c.get("scp")) {
        (Some(Value::String(s)), _) => s.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect(),
        (_, Some(Value::Array(a))) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        (_, Some(Value::String(s))) => s.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(Principal::new(name, scopes))
}

use crate::prelude::*;

use super::*;

fn auth(tokens: &[(&str, &str, &[&str])]) -> Auth {
    Auth::new(AuthConfig {
        issuer: None,
        audience: "https://pi.local:8787/mcp".into(),
        scopes: vec!["mcp".into()],
        admin_scopes: vec!["mcp:admin".into()],
        tokens: tokens
            .iter()
            .map(|(p, s, sc)| StaticToken {
                principal: p.to_string(),
                secret: s.to_string(),
                scopes: sc.iter().map(|x| x.to_string()).collect(),
            })
            .collect(),
    })
}

fn check(a: &Auth, h: Option<&str>, q: bool, need: Need) -> Result<Principal, Denial> {
    a.check(
        h,
        q,
        need,
        1_000,
        #[cfg(feature = "jwt")]
        None,
    )
}

#[test]
fn static_tokens_name_their_principal_and_scopes_decide() {
    let a = auth(&[("kitchen", "k-secret", &["mcp"]), ("ops", "o-secret", &["mcp", "mcp:admin"])]);
    assert_eq!(check(&a, Some("Bearer k-secret"), false, Need::Mcp).unwrap().name, "kitchen");
    assert_eq!(check(&a, Some("bearer  o-secret "), false, Need::Admin).unwrap().name, "ops");
    let d = check(&a, Some("Bearer k-secret"), false, Need::Admin).unwrap_err();
    assert_eq!((d.status, d.error), (403, Some("insufficient_scope")));
    let c = a.challenge(&d, "https://pi.local:8787/.well-known/oauth-protected-resource/mcp", Need::Admin);
    assert!(c.starts_with("Bearer error=\"insufficient_scope\"") && c.ends_with("scope=\"mcp:admin\""), "{c}");
    for bad in ["Bearer k-secre", "Bearer k-secretx", "Basic k-secret", "Bearer ", "k-secret"] {
        assert_eq!(check(&a, Some(bad), false, Need::Mcp).unwrap_err().status, 401, "{bad}");
    }
    let none = check(&a, None, false, Need::Mcp).unwrap_err();
    assert_eq!((none.status, none.error), (401, None));
    let c = a.challenge(&none, "https://x/.well-known/oauth-protected-resource/mcp", Need::Mcp);
    assert_eq!(c, "Bearer resource_metadata=\"https://x/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\"");
    let q = check(&a, Some("Bearer k-secret"), true, Need::Mcp).unwrap_err();
    assert_eq!(
        (q.status, q.error),
        (401, Some("invalid_request")),
        "a token in the URL is refused, whatever the header"
    );
}

#[test]
fn metadata_names_the_resource_and_its_server() {
    let mut a = auth(&[]);
    a.cfg.issuer = Some("https://auth.example".into());
    let m = a.metadata();
    assert_eq!(m["resource"], "https://pi.local:8787/mcp");
    assert_eq!(m["authorization_servers"], serde_json::json!(["https://auth.example"]));
    assert_eq!(m["scopes_supported"], serde_json::json!(["mcp", "mcp:admin"]));
}

#[test]
fn config_errors_name_the_key() {
    use serde_json::json;
    let d = "http://127.0.0.1:8787/mcp";
    for (v, says) in [
        (json!({"issuer": "http://auth.example"}), "auth.issuer"),
        (json!({"issuer": "https://a", "audence": "x"}), "auth.audence"),
        (json!({}), "at least one [[auth.tokens]]"),
        (json!({"issuer": "https://a", "scopes": "mcp"}), "auth.scopes"),
    ] {
        let e = read_auth(&v, d).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
    let c = read_auth(&json!({"issuer": "http://127.0.0.1:9/"}), d).unwrap();
    assert_eq!((c.audience.as_str(), c.scopes.clone()), (d, vec!["mcp".to_string()]));
    for (v, says) in [
        (json!({"tokens": [{"principal": "a", "token": "s3cret"}]}), "auth.tokens[0].token: a token is never written"),
        (json!({"tokens": [{"principal": "a"}]}), "exactly one of token_env or token_file"),
        (json!({"tokens": [{"token_env": "X"}]}), "auth.tokens[0].principal"),
        (
            json!({"tokens": [{"principal": "a", "token_env": "X"}, {"principal": "a", "token_env": "Y"}]}),
            "named twice",
        ),
    ] {
        let e = read_token_entries(&v).unwrap_err();
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("s3cret"), "a secret never appears in an error");
    }
}

#[test]
fn urls_are_https_or_loopback_http() {
    for ok in ["https://auth.example", "http://127.0.0.1:9000", "http://localhost/x", "http://[::1]:8/"] {
        assert!(is_url(ok), "{ok}");
    }
    for bad in ["http://auth.example", "ftp://x", "https://", "http://127.0.0.1.evil.example", "localhost"] {
        assert!(!is_url(bad), "{bad}");
    }
}

#[cfg(feature = "jwt")]
mod jwt_tokens {
    use super::super::jwt::{verify, Keys};
    use super::super::Denial;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use ring::signature::KeyPair;
    use serde_json::{json, Value};

    const ISS: &str = "https://auth.example";
    const AUD: &str = "https://pi.local:8787/mcp";

    fn keypair() -> (EncodingKey, Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let kp = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = crate::cursor::base64url_encode(kp.public_key().as_ref());
        (
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "use": "sig"}),
        )
    }

    fn sign(k: &EncodingKey, claims: Value, kid: &str) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, &claims, k).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "exp": 2_000, "iat": 900, "client_id": "agent", "scope": "mcp other"})
    }

    #[test]
    fn a_good_token_names_its_client_and_scopes() {
        let (k, jwk) = keypair();
        let keys = Keys::parse(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
        let p = verify(&sign(&k, claims(), "k1"), &keys, ISS, AUD, 1_000).unwrap();
        assert_eq!((p.name.as_str(), p.scopes.clone()), ("agent", vec!["mcp".to_string(), "other".to_string()]));
    }

    #[test]
    fn wrong_issuer_audience_time_key_or_algorithm_is_refused() {
        let (k, jwk) = keypair();
        let keys = Keys::parse(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
        let bad = |c: Value, now: u64| verify(&sign(&k, c, "k1"), &keys, ISS, AUD, now).unwrap_err();
        let mut c = claims();
        c["iss"] = json!("https://other.example");
        assert!(bad(c, 1_000).description.contains("another authorization server"));
        let mut c = claims();
        c["aud"] = json!(["https://elsewhere/mcp"]);
        assert!(bad(c, 1_000).description.contains("aud"));
        assert!(bad(claims(), 2_061).description.contains("expired"), "past exp + skew");
        assert!(verify(&sign(&k, claims(), "k1"), &keys, ISS, AUD, 2_059).is_ok(), "within the skew");
        let mut c = claims();
        c["nbf"] = json!(1_100);
        assert!(bad(c, 1_000).description.contains("nbf"));
        let unknown: Denial = verify(&sign(&k, claims(), "k2"), &keys, ISS, AUD, 1_000).unwrap_err();
        assert_eq!(unknown.unknown_key.as_deref(), Some("k2"));
        // A tampered payload.
        let t = sign(&k, claims(), "k1");
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut c = claims();
        c["scope"] = json!("mcp mcp:admin");
        parts[1] = crate::cursor::base64url_encode(c.to_string().as_bytes());
        assert!(verify(&parts.join("."), &keys, ISS, AUD, 1_000).unwrap_err().description.contains("signature"));
        // alg none, and HMAC keyed with anything.
        let none = format!(
            "{}.{}.",
            crate::cursor::base64url_encode(br#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#),
            crate::cursor::base64url_encode(claims().to_string().as_bytes())
        );
        assert_eq!(verify(&none, &keys, ISS, AUD, 1_000).unwrap_err().status, 401);
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(b"public")).unwrap();
        assert!(verify(&hs, &keys, ISS, AUD, 1_000).unwrap_err().description.contains("not accepted"));
    }

    #[test]
    fn a_jwks_without_signing_keys_is_refused() {
        assert!(Keys::parse(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(Keys::parse(b"[]").is_err());
    }
}

//! The resource server's token checks: an arbitrary JWKS document, issuer metadata and token (and
//! `Authorization` header) must never panic, and a token that is not signed by a key of the JWKS
//! is never accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::auth::jwt::{jwks_uri, verify, Keys};
use mcp_edge_gateway::auth::{Auth, AuthConfig, Need, StaticToken};

const ISS: &str = "https://auth.example";
const AUD: &str = "https://pi.local:8787/mcp";

/// A real RSA public key (the test JWKS of RFC 7517 A.1), so signature checks run.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"2011-04-29","use":"sig","alg":"RS256","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}"#;

fuzz_target!(|data: &[u8]| {
    // Bytes before the first 0 are a document (JWKS, metadata), the rest a token.
    let (doc, token) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let token = String::from_utf8_lossy(token);
    let _ = jwks_uri(doc, ISS);
    if let Ok(keys) = Keys::parse(doc) {
        let _ = verify(&token, &keys, ISS, AUD, 1_700_000_000);
    }
    // Against the fixed RSA key: nothing the fuzzer writes carries a valid signature by it.
    let keys = Keys::parse(JWKS.as_bytes()).expect("the RFC 7517 key parses");
    assert!(verify(&token, &keys, ISS, AUD, 1_700_000_000).is_err(), "accepted a token nobody signed");
    let auth = Auth::new(AuthConfig {
        issuer: Some(ISS.into()),
        audience: AUD.into(),
        scopes: vec!["mcp".into()],
        admin_scopes: vec!["mcp:admin".into()],
        tokens: vec![StaticToken {
            principal: "p".into(),
            secret: "static-token-0123456789".into(),
            scopes: vec!["mcp".into()],
        }],
    });
    let header = String::from_utf8_lossy(doc);
    let _ = auth.check(Some(&header), false, Need::Mcp, 1_700_000_000, Some(&keys));
    let _ = auth.check(Some(&format!("Bearer {token}")), false, Need::Admin, 1_700_000_000, Some(&keys));
});

//! Static bearer tokens: each names a principal and its scopes; the secret comes from the
//! environment or a file (the host reads it), and is compared in constant time.

use crate::prelude::*;

use crate::principal::Principal;
use subtle::ConstantTimeEq;

/// A static token with its secret read.
#[derive(Clone)]
pub struct StaticToken {
    pub principal: String,
    pub secret: String,
    pub scopes: Vec<String>,
}

impl core::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "StaticToken({}, <redacted>, {:?})", self.principal, self.scopes)
    }
}

/// The principal of the static token equal to `token`. Every token is compared (in constant time),
/// so the time taken does not say which one matched, or how much of one.
pub(super) fn find(tokens: &[StaticToken], token: &str) -> Option<Principal> {
    let mut found = None;
    for t in tokens {
        let same: bool = t.secret.as_bytes().ct_eq(token.as_bytes()).into();
        if same && found.is_none() {
            found = Some(Principal::new(t.principal.clone(), t.scopes.clone()));
        }
    }
    found
}

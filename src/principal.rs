//! Who is calling: the principal an authenticated request carries into the engine, with its scopes.
//! Hosts establish it (a verified JWT, a static token); the engine uses it for tool policy, rate
//! limits, and as the auth context of private cache entries and queued calls.

use crate::prelude::*;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A JWT's `client_id` (else `sub`), or a static token's configured name.
    pub name: String,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn new(name: impl Into<String>, scopes: Vec<String>) -> Self {
        Principal { name: name.into(), scopes }
    }

    /// Whether `required` was granted. Scopes are compared exactly: `mcp` does not grant
    /// `mcp:admin` (the configuration's own example keeps admin apart from use).
    pub fn has_scope(&self, required: &str) -> bool {
        self.scopes.iter().any(|g| g == required)
    }

    /// Whether every scope of `required` is covered.
    pub fn has_scopes(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.has_scope(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_compared_exactly() {
        let p = Principal::new("a", vec!["mcp".into()]);
        assert!(p.has_scope("mcp") && !p.has_scope("mcp:admin"));
        assert!(!p.has_scope("mcpx") && !p.has_scope("other"));
        let admin = Principal::new("b", vec!["mcp:admin".into()]);
        assert!(!admin.has_scope("mcp"));
        assert!(admin.has_scopes(&["mcp:admin".into()]));
    }
}

//! `tools/call` arguments checked against the tool's `inputSchema` before they are forwarded.
//!
//! The engine asks an [`ArgumentValidator`] the host installs ([`crate::Gateway::set_validator`]);
//! with none, arguments go upstream unchecked (the upstream checks them). With the `validate`
//! feature, [`SchemaValidator`] is one built on the `boon` crate: JSON Schema 2020-12 when
//! `$schema` is absent (as the MCP spec says), no `$ref` is ever fetched (network or file: every
//! external reference fails to resolve, and such a schema is not used), patterns use the linear-time
//! `regex` engine, schemas over [`MAX_SCHEMA_BYTES`] are not compiled, and at most
//! [`MAX_COMPILED`] compiled schemas are kept. `format` is an annotation in 2020-12 and 2019-09
//! (not asserted); a schema that declares draft-07 or older gets that draft's format assertions.
//!
//! boon rather than the `jsonschema` crate (which this used before): jsonschema checks every schema
//! it compiles against a meta-schema validator it builds on first use, 7.7 MiB of heap kept for the
//! process's life, with no public switch to skip it; boon's meta-schemas cost about 2 MiB (README,
//! Performance, "Where the idle memory goes").

use crate::prelude::*;

use serde_json::Value;

/// Why arguments were refused: where (a JSON pointer into the arguments) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

pub trait ArgumentValidator: Send {
    /// `Err` when `args` do not satisfy `schema`; `Ok` also when the schema cannot be used.
    fn validate(&mut self, schema: &Value, args: &Value) -> Result<(), Invalid>;
}

/// Larger schemas are not compiled (their calls go unchecked).
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Compiled schemas kept; beyond, the cache starts again.
pub const MAX_COMPILED: usize = 512;

#[cfg(feature = "validate")]
pub use with_boon::SchemaValidator;

#[cfg(feature = "validate")]
mod with_boon {
    use super::*;
    use crate::prelude::HashMap;

    /// Refuses every external reference: nothing is fetched, from the network or from files.
    struct NoLoader;

    impl boon::UrlLoader for NoLoader {
        fn load(&self, url: &str) -> Result<Value, Box<dyn core::error::Error>> {
            Err(format!("external $ref {url} is not fetched").into())
        }
    }

    /// The `boon`-based validator. Compiled schemas live in one [`boon::Schemas`] and are found by
    /// their text; both start again together when [`MAX_COMPILED`] is reached.
    #[derive(Default)]
    pub struct SchemaValidator {
        schemas: boon::Schemas,
        compiled: HashMap<String, Option<boon::SchemaIndex>>,
    }

    impl SchemaValidator {
        pub fn new() -> Self {
            Self::default()
        }
    }

    /// Compiles `schema` into `schemas` as resource number `n`; `None` when it cannot be used.
    fn compile(schemas: &mut boon::Schemas, schema: &Value, n: usize) -> Option<boon::SchemaIndex> {
        let mut c = boon::Compiler::new();
        c.set_default_draft(boon::Draft::V2020_12);
        c.use_loader(Box::new(NoLoader));
        let url = format!("urn:mcp-edge-gateway:input-schema:{n}");
        c.add_resource(&url, schema.clone()).ok()?;
        c.compile(&url, schemas).ok()
    }

    impl ArgumentValidator for SchemaValidator {
        fn validate(&mut self, schema: &Value, args: &Value) -> Result<(), Invalid> {
            let key = schema.to_string();
            if key.len() > MAX_SCHEMA_BYTES {
                return Ok(());
            }
            let Self { schemas, compiled } = self;
            if compiled.len() >= MAX_COMPILED && !compiled.contains_key(&key) {
                compiled.clear();
                *schemas = boon::Schemas::new();
            }
            let n = compiled.len();
            let Some(index) = *compiled.entry(key).or_insert_with(|| compile(schemas, schema, n)) else {
                return Ok(());
            };
            let Err(mut e) = schemas.validate(args, index) else { return Ok(()) };
            // The innermost first cause is the keyword that failed, at the value it failed on.
            while !e.causes.is_empty() {
                e = e.causes.swap_remove(0);
            }
            Err(Invalid { path: e.instance_location.to_string(), message: e.kind.to_string() })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn invalid_arguments_name_their_path() {
            let mut v = SchemaValidator::new();
            let s = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["n"]});
            assert!(v.validate(&s, &json!({"n": 2, "tags": ["a"]})).is_ok());
            let e = v.validate(&s, &json!({"n": 2, "tags": ["a", 3]})).unwrap_err();
            assert_eq!(e.path, "/tags/1");
            assert_eq!(v.validate(&s, &json!({"n": 0})).unwrap_err().path, "/n");
            assert!(v.validate(&s, &json!({})).unwrap_err().message.contains("missing properties 'n'"));
        }

        #[test]
        fn external_refs_are_never_fetched_and_such_schemas_are_not_used() {
            let mut v = SchemaValidator::new();
            for r in ["https://127.0.0.1:9/s.json", "file:///etc/passwd"] {
                let s = json!({"type": "object", "properties": {"a": {"$ref": r}}});
                assert!(v.validate(&s, &json!({"a": 1})).is_ok());
            }
            // Local references work.
            let s = json!({"$defs": {"n": {"type": "integer"}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/n"}}});
            assert_eq!(v.validate(&s, &json!({"a": "x"})).unwrap_err().path, "/a");
        }

        #[test]
        fn unusable_schemas_go_unchecked_and_the_cache_starts_again() {
            let mut v = SchemaValidator::new();
            assert!(v.validate(&json!({"type": 5}), &json!("x")).is_ok());
            assert!(v
                .validate(&json!({"$schema": "https://example.com/meta", "type": "integer"}), &json!("x"))
                .is_ok());
            for i in 0..MAX_COMPILED + 3 {
                let p = format!("p{i}");
                let s = json!({"type": "object", "properties": {p.clone(): {"type": "integer"}}});
                assert_eq!(v.validate(&s, &json!({p.clone(): "x"})).unwrap_err().path, format!("/{p}"));
            }
            // Compiled before the restart: compiled again into the new store, not looked up in it.
            let s = json!({"type": "object", "properties": {"p0": {"type": "integer"}}});
            assert_eq!(v.validate(&s, &json!({"p0": "x"})).unwrap_err().path, "/p0");
            assert!(v.validate(&s, &json!({"p0": 1})).is_ok());
        }

        #[test]
        fn schemas_with_the_same_id_stay_apart() {
            // Two upstreams' tools may reuse one `$id`: each schema is its own document here.
            let mut v = SchemaValidator::new();
            let a =
                json!({"$id": "https://example.com/args", "type": "object", "properties": {"n": {"type": "integer"}}});
            let b =
                json!({"$id": "https://example.com/args", "type": "object", "properties": {"n": {"type": "string"}}});
            assert!(v.validate(&a, &json!({"n": 1})).is_ok());
            assert!(v.validate(&b, &json!({"n": "x"})).is_ok());
            assert_eq!(v.validate(&b, &json!({"n": 1})).unwrap_err().path, "/n");
            assert_eq!(v.validate(&a, &json!({"n": "x"})).unwrap_err().path, "/n");
        }

        #[test]
        fn draft_2020_12_is_the_default() {
            let mut v = SchemaValidator::new();
            // prefixItems exists in 2020-12 only.
            let s = json!({"type": "array", "prefixItems": [{"type": "integer"}]});
            assert!(v.validate(&s, &json!(["x"])).is_err());
            let s7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "prefixItems": [{"type": "integer"}]});
            assert!(v.validate(&s7, &json!(["x"])).is_ok());
        }
    }
}

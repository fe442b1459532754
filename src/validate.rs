//! `tools/call` arguments checked against the tool's `inputSchema` before they are forwarded.
//!
//! The engine asks an [`ArgumentValidator`] the host installs ([`crate::Gateway::set_validator`]);
//! with none, arguments go upstream unchecked (the upstream checks them). With the `validate`
//! feature, [`SchemaValidator`] is one built on the `jsonschema` crate: JSON Schema 2020-12 when
//! `$schema` is absent (as the MCP spec says), no `$ref` is ever fetched (network or file: every
//! external reference fails to resolve, and such a schema is not used), patterns use the linear-time
//! `regex` engine, schemas over [`MAX_SCHEMA_BYTES`] are not compiled, and at most
//! [`MAX_COMPILED`] compiled schemas are kept.

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
pub use with_jsonschema::SchemaValidator;

#[cfg(feature = "validate")]
mod with_jsonschema {
    use super::*;
    use crate::prelude::HashMap;

    /// Refuses every external reference: nothing is fetched, from the network or from files.
    struct NoRetrieval;

    impl jsonschema::Retrieve for NoRetrieval {
        fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn core::error::Error + Send + Sync>> {
            Err(format!("external $ref {} is not fetched", uri.as_str()).into())
        }
    }

    /// The `jsonschema`-based validator; compiled schemas are kept by their text.
    #[derive(Default)]
    pub struct SchemaValidator {
        compiled: HashMap<String, Option<jsonschema::Validator>>,
    }

    impl SchemaValidator {
        pub fn new() -> Self {
            Self::default()
        }
    }

    impl ArgumentValidator for SchemaValidator {
        fn validate(&mut self, schema: &Value, args: &Value) -> Result<(), Invalid> {
            let key = schema.to_string();
            if key.len() > MAX_SCHEMA_BYTES {
                return Ok(());
            }
            if self.compiled.len() >= MAX_COMPILED && !self.compiled.contains_key(&key) {
                self.compiled.clear();
            }
            let v = self.compiled.entry(key).or_insert_with(|| {
                jsonschema::options()
                    .with_retriever(NoRetrieval)
                    .with_pattern_options(jsonschema::PatternOptions::regex())
                    .should_validate_formats(false)
                    .build(schema)
                    .ok()
            });
            let Some(v) = v else { return Ok(()) };
            match v.iter_errors(args).next() {
                None => Ok(()),
                Some(e) => Err(Invalid { path: e.instance_path.as_str().to_string(), message: e.to_string() }),
            }
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
            assert!(v.validate(&s, &json!({})).unwrap_err().message.contains("required"));
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

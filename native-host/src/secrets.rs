//! The gateway's own secrets, read at start-up: static bearer tokens of `[[auth.tokens]]`, and
//! `${ENV_VAR}` / `${file:/path}` references in upstream `headers`. A secret is never written in the
//! config file, never logged, never in `/status` or an error message; what is missing stops the
//! start-up naming the key at fault (not the value).

use mcp_edge_gateway::auth::{Secret, StaticToken, TokenEntry};

/// Read one secret from where it is.
pub fn read(at: &str, s: &Secret, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    match s {
        Secret::Env(var) => match env(var) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(format!("{at}: the environment variable {var} is not set")),
        },
        Secret::File(f) => match std::fs::read_to_string(f) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(format!("{at}: {f} is empty")),
            Err(e) => Err(format!("{at}: cannot read {f}: {}", e.kind())),
        },
    }
}

/// The static tokens with their secrets.
pub fn tokens(
    at: &str,
    entries: &[TokenEntry],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<StaticToken>, String> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let key = match e.source {
                Secret::Env(_) => "token_env",
                Secret::File(_) => "token_file",
            };
            let secret = read(&format!("{at}[{i}].{key}"), &e.source, env)?;
            if secret.len() < 16 {
                return Err(format!("{at}[{i}]: the token of {} is shorter than 16 characters", e.principal));
            }
            Ok(StaticToken { principal: e.principal.clone(), secret, scopes: e.scopes.clone() })
        })
        .collect()
}

/// Expand `${NAME}` (an environment variable) and `${file:/path}` (a file's trimmed content) in a
/// header value. `$$` is a literal `$`.
pub fn expand(at: &str, value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else { return Err(format!("{at}: an unclosed ${{ in the value")) };
        let name = &body[..end];
        let secret = match name.strip_prefix("file:") {
            Some(path) => Secret::File(path.to_string()),
            None if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                Secret::Env(name.to_string())
            }
            None => return Err(format!("{at}: ${{{name}}} is neither ${{ENV_VAR}} nor ${{file:/path}}")),
        };
        out.push_str(&read(at, &secret, env)?);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_missing_ones_name_the_key() {
        let env = |k: &str| (k == "UP_TOKEN").then(|| "s3cret-value".to_string());
        assert_eq!(expand("h", "Bearer ${UP_TOKEN}", &env).unwrap(), "Bearer s3cret-value");
        assert_eq!(expand("h", "a $$ b $x", &env).unwrap(), "a $ b $x");
        let e = expand("upstreams.w.headers.Authorization", "Bearer ${NOPE}", &env).unwrap_err();
        assert!(e.contains("upstreams.w.headers.Authorization") && e.contains("NOPE"));
        assert!(expand("h", "${a-b}", &env).is_err() && expand("h", "${X", &env).is_err());
        let dir = std::env::temp_dir().join(format!("gw-secret-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        assert_eq!(expand("h", &format!("Bearer ${{file:{}}}", dir.display()), &env).unwrap(), "Bearer from-file");
        let _ = std::fs::remove_file(&dir);
    }
}

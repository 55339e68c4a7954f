//! The error codes as documented: every stable code the service can answer is listed under
//! "Errors" in docs/support.md, read from the service's source so that a new one is not left
//! out (`gate_managed`, `rollout_changed` and `invalid_run` were).

use std::collections::BTreeSet;
use std::path::Path;

/// The stable error codes docs/support.md lists under "Errors".
pub(crate) fn documented_error_codes() -> Vec<String> {
    let support = include_str!("../../../../docs/support.md");
    let errors = support.split("## Errors").nth(1).expect("an Errors section");
    let list = errors.split("\n\n").find(|paragraph| paragraph.contains("stable code")).expect("the list");
    list.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Every `.rs` file under `directory`, read.
fn sources(directory: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).expect("source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(std::fs::read_to_string(&path).expect("source file"));
        }
    }
    found
}

/// The string literal `text` starts with, after white space.
fn literal_at(text: &str) -> Option<&str> {
    let (literal, _) = text.trim_start().strip_prefix('"')?.split_once('"')?;
    Some(literal)
}

/// The codes the service's source answers with: every literal given as an error's code
/// (`bad_request("…"`, `code: "…"`), and the fixed ones `ApiError::status_and_code` pairs with
/// a status (`StatusCode::…, "…"`).
fn answered_error_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for source in sources(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))) {
        for marker in ["bad_request(", "code:", "StatusCode::"] {
            for (at, _) in source.match_indices(marker) {
                let rest = &source[at + marker.len()..];
                let rest = match marker {
                    "StatusCode::" => {
                        rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_').strip_prefix(',')
                    }
                    _ => Some(rest),
                };
                let code =
                    rest.and_then(literal_at).filter(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
                codes.extend(code.map(str::to_owned));
            }
        }
    }
    codes
}

#[test]
fn every_error_code_the_service_answers_is_documented() {
    let answered = answered_error_codes();
    for code in ["unauthorized", "body_too_large", "internal", "invalid_query", "loop_guard", "gate_refused"] {
        assert!(answered.contains(code), "the source is read: {code} in {answered:?}");
    }
    let documented = documented_error_codes();
    let missing: Vec<&String> = answered.iter().filter(|code| !documented.contains(code)).collect();
    assert!(missing.is_empty(), "docs/support.md's Errors leave out {missing:?}");
}

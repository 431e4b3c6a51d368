//! Two rules of the code in `src/`, checked on its text (issue 16):
//! - the modules depend on one another in one direction only, the order of
//!   [`LAYERS`];
//! - the unsafe boundary is visible: no function whose signature lacks
//!   `unsafe` takes a raw pointer or `NonNull`, no callback handed to C (a
//!   private `extern "C" fn`) is safe, and no struct has a public pointer
//!   field (the C mirror types of `src/host/types.rs` show theirs to
//!   `crate::host` only).
//!
//! Run alone: `cargo test --test source_rules`.

use std::fs;
use std::path::{Path, PathBuf};

/// The modules of `src/`, each using only those of later rows.
const LAYERS: &[&[&str]] = &[
    &["exports"],
    &["resize"],
    &["manager"],
    &["backlog"],
    &["node_pool"],
    &["drain"],
    &["conn"],
    &["tls", "pending", "event_loop"],
    &["reentry", "alloc"],
    &["host"],
    &["sys"],
];

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// The module a file belongs to: `src/host/types.rs` is `host`'s.
fn module_of(path: &Path) -> String {
    let rel = path
        .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .expect("under src/");
    let first = rel.components().next().expect("a file name");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

fn rel(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("in the crate")
        .to_string_lossy()
        .into_owned()
}

/// The code of a file without comments and string literals.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every module a file's code names as `crate::module` (in paths and in
/// `use crate::{a, b::c}` groups).
fn crate_refs(code: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        refs.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            refs.push(item);
        } else {
            refs.push(rest.to_owned());
        }
    }
    refs.iter()
        .map(|r| {
            r.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

#[test]
fn modules_depend_one_way() {
    let mut wrong = Vec::new();
    for path in sources() {
        let module = module_of(&path);
        if module == "lib" {
            continue;
        }
        let Some(own) = layer(&module) else {
            wrong.push(format!("{}: module {module} is not in LAYERS", rel(&path)));
            continue;
        };
        let text = fs::read_to_string(&path).expect("readable");
        for target in crate_refs(&code(&text)) {
            if target == module {
                continue;
            }
            match layer(&target) {
                Some(l) if l > own => {}
                _ => wrong.push(format!("{}: {module} uses {target}", rel(&path))),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "modules must use only later layers:\n{}",
        wrong.join("\n")
    );
}

/// Each `fn` item's qualifiers and parameter list, skipping foreign
/// declarations (`extern "C" { ... }` blocks) and function-pointer types.
fn functions(code: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut foreign_depth: Option<i32> = None;
    let mut depth = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                let before = code[..i].trim_end();
                if foreign_depth.is_none() && before.ends_with("extern \"\"") {
                    foreign_depth = Some(depth);
                }
                depth += 1;
            }
            b'}' => {
                depth -= 1;
                if foreign_depth == Some(depth) {
                    foreign_depth = None;
                }
            }
            _ => {}
        }
        let is_fn = code[i..].starts_with("fn ")
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_');
        if is_fn && foreign_depth.is_none() {
            let rest = &code[i + 3..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                let line_start = code[..i].rfind('\n').map_or(0, |p| p + 1);
                let quals = code[line_start..i].to_owned();
                let open = rest.find('(').expect("a parameter list");
                let mut d = 0;
                let mut params = String::new();
                for c in rest[open..].chars() {
                    params.push(c);
                    match c {
                        '(' => d += 1,
                        ')' => {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push((name, quals, params));
            }
        }
        i += 1;
    }
    out
}

#[test]
fn unsafe_boundary_is_visible() {
    let mut wrong = Vec::new();
    for path in sources() {
        let file = rel(&path);
        let text = code(&fs::read_to_string(&path).expect("readable"));
        for (name, quals, params) in functions(&text) {
            let is_unsafe = quals.split_whitespace().any(|w| w == "unsafe");
            if is_unsafe {
                continue;
            }
            // Exports (public) without pointers may be safe; callbacks may not.
            if quals.contains("extern") && !quals.contains("pub") {
                wrong.push(format!("{file}: fn {name} is a safe extern \"C\" fn"));
            }
            // A parameter's own type, not a function pointer it takes.
            let takes_pointer = params.split(',').any(|p| {
                let ty = p.split_once(':').map_or("", |(_, t)| t).trim();
                !ty.contains("fn(")
                    && (ty.starts_with("*const")
                        || ty.starts_with("*mut")
                        || ty.contains("NonNull<"))
            });
            if takes_pointer {
                wrong.push(format!("{file}: safe fn {name} takes a pointer: {params}"));
            }
        }
        for line in text.lines() {
            let line = line.trim();
            let Some(field) = line.strip_prefix("pub ") else {
                continue;
            };
            let Some((name, ty)) = field.split_once(':') else {
                continue;
            };
            let ty = ty.trim();
            let named = name.chars().all(|c| c.is_alphanumeric() || c == '_');
            if named && (ty.starts_with('*') || ty.contains("NonNull<")) {
                wrong.push(format!("{file}: public pointer field {line}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the unsafe boundary rule is broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn rules_catch_what_they_forbid() {
    let bad = code(
        "fn deref(p: NonNull<u8>) {}\nextern \"C\" fn cb(h: *mut u8) {}\npub unsafe fn ok(p: *mut u8) {}\nfn hook(f: unsafe fn(*mut u8)) {}",
    );
    let found: Vec<_> = functions(&bad)
        .into_iter()
        .map(|(n, q, _)| (n, q))
        .collect();
    assert_eq!(found.len(), 4);
    assert!(!found[0].1.contains("unsafe") && !found[1].1.contains("unsafe"));
    assert!(found[2].1.contains("unsafe"));
    assert_eq!(
        crate_refs("use crate::{conn::{ConnRef, Held}, drain};\ncrate::host::log"),
        ["conn", "drain", "host"]
    );
}

//! The dependency rule of `src/lib.rs`, checked: every module of the crate has a layer,
//! and a module uses (through `crate::` or `super::` paths, outside its tests) only
//! modules of earlier layers, or its own folder's siblings where a folder (the client,
//! the HTTP server, JetStream, the testing kit) is one layer. A new module must be given
//! a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, earliest first. A name is a file's module path (`app::endpoint`) or a
/// folder taken as one layer (`client`, `http`).
const LAYERS: &[&[&str]] = &[
    &["error", "encoding", "buffer", "sync", "log", "rfc3339"],
    &["message", "payload", "creds", "nkeys"],
    &["client"],
    &["jetstream"],
    &["app::state", "app::trace"],
    &["app::reply", "app::executor"],
    &["app::middleware", "app::stats"],
    &["app::runtime"],
    &["app::context"],
    &["app::extract"],
    &["app::runner"],
    &["app::endpoint", "app::stream_endpoint", "app::service"],
    &["http"],
    &["app::metrics"],
    &["app::tasks"],
    &["app::builder"],
    &["app::shutdown"],
    &["app::run"],
    &["app::record::error", "app::record::line"],
    &["app::record::writer"],
    &["app::record::recorder"],
    &["app::record::compare", "app::record::recording"],
    &["app::record::replay"],
    &["app::record"],
    &["app"],
    &["testing"],
];

/// The layer of a module path: its own entry, else its folder's.
fn layer(module: &str) -> Option<usize> {
    let find = |name: &str| LAYERS.iter().position(|l| l.contains(&name));
    let top = module.split("::").next()?;
    find(module).or_else(|| FOLDERS.contains(&top).then(|| find(top)).flatten())
}

/// The folders taken as one layer each.
const FOLDERS: &[&str] = &["error", "client", "http", "jetstream", "testing"];

/// The folder a module belongs to when that folder is one layer (`client::task` → `client`).
fn group(module: &str) -> &str {
    let top = module.split("::").next().unwrap_or(module);
    if FOLDERS.contains(&top) {
        top
    } else {
        module
    }
}

/// Every `.rs` file under `src/` as (module path, text before `#[cfg(test)]`, comments out).
fn modules() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut mods = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts == ["lib"] {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read file");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        mods.push((parts.join("::"), code));
    }
    mods
}

/// The names `src/app/mod.rs` re-exports, and the file each comes from.
fn app_reexports(mods: &[(String, String)]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let app = &mods
        .iter()
        .find(|(m, _)| m == "app")
        .expect("src/app/mod.rs")
        .1;
    for stmt in app.split(';') {
        let Some(rest) = stmt.trim().split("use ").nth(1) else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_matches(|c| c == '{' || c == '}' || char::is_whitespace(c));
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            names.insert(item.to_string(), format!("app::{module}"));
        }
    }
    names
}

/// The modules `code` (of `module`) refers to through `crate::` and `super::` paths.
fn uses(module: &str, code: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = module.split("::").collect();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", parent[..parent.len() - 1].to_vec()),
    ] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut parts: Vec<&str> = base.clone();
            parts.extend(path.split("::").filter(|p| !p.is_empty()));
            // The module part: the leading lowercase segments that name a module.
            let mut target = String::new();
            let mut items = Vec::new();
            for (n, p) in parts.iter().enumerate() {
                let longer = if target.is_empty() {
                    p.to_string()
                } else {
                    format!("{target}::{p}")
                };
                if p.starts_with(|c: char| c.is_lowercase())
                    && (n == 0
                        || layer(&longer).is_some()
                        || longer.starts_with("client")
                        || longer.starts_with("http"))
                {
                    target = longer;
                } else {
                    items.push(p.to_string());
                    break;
                }
            }
            // `crate::app::{A, b}`: the items of a brace group.
            if items.is_empty() {
                if let Some(group) = rest[path.len()..].strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or("");
                    items = group.split(',').map(|s| s.trim().to_string()).collect();
                }
            }
            // What `app` re-exports resolves to the file it comes from.
            let targets: Vec<String> = if target == "app" {
                items
                    .iter()
                    .filter_map(|item| reexports.get(item.as_str()).cloned())
                    .collect()
            } else {
                vec![target]
            };
            for target in targets {
                if !target.is_empty() && group(&target) != group(module) {
                    out.insert(target);
                }
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_earlier_layers() {
    let mods = modules();
    let reexports = app_reexports(&mods);
    let mut broken = Vec::new();
    for (module, code) in &mods {
        let Some(own) = layer(module) else {
            broken.push(format!(
                "{module}: no layer (add it to LAYERS in tests/layers.rs)"
            ));
            continue;
        };
        for target in uses(module, code, &reexports) {
            match layer(&target) {
                Some(l) if l < own || (l == own && module == "app") => {}
                Some(_) => broken.push(format!("{module} uses {target}, a later layer")),
                None => broken.push(format!("{module} uses {target}, which has no layer")),
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the dependency rule is broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_sees_a_use_of_a_later_layer() {
    let mods = modules();
    let reexports = app_reexports(&mods);
    let code = "use crate::app::AppHandle;\nuse super::builder::App;";
    let seen = uses("app::context", code, &reexports);
    assert!(seen.contains("app::builder"), "{seen:?}");
    assert!(layer("app::builder") > layer("app::context"));
    let seen = uses("client::task", "use crate::app::AppHandle;", &reexports);
    assert!(seen.contains("app::context"), "{seen:?}");
}

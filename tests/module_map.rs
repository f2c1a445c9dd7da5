//! The README's map of the code is the rule for imports: every module of
//! `src/` is in one layer of it, and a module may use (`crate::...`) only
//! modules of its own layer or below, with no cycle between modules. This
//! test reads the map from README.md and the `crate::` paths of every source
//! file, so the map cannot go stale and an import against it fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The map's layers, bottom first: (layer, its modules), from the README's
/// section "The map of the code", rows `| N name | `a`, `b` | ... |`.
fn map(readme: &str) -> Vec<(String, Vec<String>)> {
    let section = readme
        .split("### The map of the code")
        .nth(1)
        .expect("README.md has a section \"The map of the code\"");
    let mut layers = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(layer), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        if !layer.starts_with(|c: char| c.is_ascii_digit()) {
            continue; // the header and its rule
        }
        let modules = modules
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_string())
            .filter(|m| !m.is_empty())
            .collect();
        layers.push((layer.to_string(), modules));
    }
    layers
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/cpu/fast/x86.rs`:
/// `cpu`), or `None` for the crate root and the binary (`lib.rs`, `main.rs`,
/// `cli/`: the binary sees only the library's public API).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main" | "cli")).then_some(name)
}

/// The crate-level names a source text uses: `crate::a`, `$crate::a`, and
/// the first names inside `crate::{a, b::c}`; comments left out. With the
/// line of each.
fn crate_names(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // the group may span lines: take what this line has
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name = item.trim().split("::").next().unwrap_or("").trim();
                    if !name.is_empty() {
                        out.push((name.to_string(), n + 1));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((name, n + 1));
                }
            }
        }
    }
    // a group over several lines: `use crate::{\n    a::X,\n    b,\n};`
    let mut in_group = false;
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("").trim();
        if code.ends_with("crate::{") {
            in_group = true;
            continue;
        }
        if in_group {
            if code.starts_with('}') {
                in_group = false;
                continue;
            }
            for item in code.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.push((name.to_string(), n + 1));
                }
            }
        }
    }
    out
}

/// Names at the crate root that are not modules, and the module each is
/// defined in (`#[macro_export]` macros live at the root).
const ROOT_ITEMS: &[(&str, &str)] = &[("for_each_format", "formats"), ("with_out_elem", "out")];

#[test]
fn no_module_imports_against_the_readme_map() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layers = map(&readme);
    assert!(layers.len() >= 3, "the map has {} layers", layers.len());
    let mut layer_of = BTreeMap::new();
    for (i, (name, modules)) in layers.iter().enumerate() {
        for m in modules {
            let before = layer_of.insert(m.clone(), i);
            assert!(before.is_none(), "the map lists `{m}` twice ({name})");
        }
    }

    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let unmapped: Vec<_> = modules
        .iter()
        .filter(|m| !layer_of.contains_key(*m))
        .collect();
    assert!(
        unmapped.is_empty(),
        "modules missing from the README's map: {unmapped:?}"
    );
    let stale: Vec<_> = layer_of.keys().filter(|m| !modules.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "the README's map lists modules src/ lacks: {stale:?}"
    );

    let mut wrong = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (name, line) in crate_names(&text) {
            let target = if modules.contains(&name) {
                name
            } else if let Some((_, home)) = ROOT_ITEMS.iter().find(|(item, _)| *item == name) {
                home.to_string()
            } else {
                wrong.push(format!(
                    "{}:{line}: `crate::{name}` is not a module (the crate root only \
                     declares modules and re-exports: use the module that defines it)",
                    f.display()
                ));
                continue;
            };
            if target == m {
                continue;
            }
            if layer_of[&target] > layer_of[&m] {
                wrong.push(format!(
                    "{}:{line}: `{m}` ({}) uses `{target}` ({}), a layer above it",
                    f.display(),
                    layers[layer_of[&m]].0,
                    layers[layer_of[&target]].0
                ));
            }
            edges.entry(m.clone()).or_default().insert(target);
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the map:\n{}",
        wrong.join("\n")
    );

    // no cycle: a depth-first search for a back edge
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("modules that use each other: {}", cycle.join(" -> "));
        }
    }
}

/// The checks see what they should: a use of a higher layer, a group over
/// several lines, and a root item are all found.
#[test]
fn the_map_check_sees_imports() {
    let text = "use crate::gpu::Gpu; // crate::ignored\n\
                use crate::{\n    error::Error,\n    types,\n};\n\
                let v = crate::try_vec(3); $crate::cpu::x();\n\
                use crate::{out::OutElem, pool};\n";
    let names: Vec<String> = crate_names(text).into_iter().map(|(n, _)| n).collect();
    for want in ["gpu", "error", "types", "try_vec", "cpu", "out", "pool"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not seen in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "ignored"), "{names:?}");
    let layers = map("### The map of the code\n\n| layer | modules |\n|---|---|\n| 0 base | `a`, `b` |\n| 1 top | `c` |\n\nafter\n| 9 | `z` |\n");
    assert_eq!(
        layers,
        vec![
            ("0 base".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("1 top".to_string(), vec!["c".to_string()]),
        ]
    );
}

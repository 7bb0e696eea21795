//! The layout rules of ARCHITECTURE.md, checked on the source text: no import cycle between
//! the files of `src/`, Kubernetes types only in `sources/kubernetes`, `geo` importing
//! nothing of the crate, and listeners depending on the query path, never the reverse.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/` except the binary, by module path (`dns::fast`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src/") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|f| {
            let rel = f.strip_prefix(&src).expect("under src/");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            (parts.join("::"), f)
        })
        .collect()
}

/// The module paths a file names through `crate::`, `super::` and `self::`, each cut to the
/// longest prefix that is a file of its own.
fn references(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    // The module `self::` means inside this file: its own path.
    let here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let start_ok = i == 0 || !ident(bytes[i - 1]) && bytes[i - 1] != b':';
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|r| start_ok && rest.starts_with(r));
        let Some(root) = root else {
            i += 1;
            continue;
        };
        // The path's segments, as far as they are identifiers.
        let mut segments: Vec<&str> = Vec::new();
        let mut j = i + root.len();
        loop {
            let s = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if s == j {
                break;
            }
            segments.push(&code[s..j]);
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        i = j.max(i + 1);
        let mut base: Vec<&str> = match root {
            "crate::" => Vec::new(),
            // In a mod.rs, `super` is the folder's parent; in a.rs, it is a's parent too.
            "super::" => here[..here.len().saturating_sub(1)].to_vec(),
            _ => here.clone(),
        };
        base.extend(segments);
        while !base.is_empty() {
            let p = base.join("::");
            if known.contains_key(&p) {
                if p != module {
                    out.insert(p);
                }
                break;
            }
            base.pop();
        }
    }
    out
}

/// Import edges between the files of `src/`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .map(|(m, f)| {
            let text = std::fs::read_to_string(f).expect("read source");
            // Test modules may use anything; only the code that ships counts.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or("");
            (m.clone(), references(m, shipped, &known))
        })
        .collect()
}

/// A cycle of the graph, if it has one (depth-first search: a node reached again while
/// still on the stack closes a cycle).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<&'a str>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        stack.push(n);
        for m in g.get(n).into_iter().flatten() {
            if let Some(at) = stack.iter().position(|s| s == m) {
                let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(m.clone());
                return Some(cycle);
            }
            if !done.contains(m.as_str())
                && let Some(c) = visit(m, g, done, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| {
        (!done.contains(n.as_str())).then(|| visit(n, g, &mut done, &mut Vec::new()))?
    })
}

#[test]
fn no_import_cycle_between_source_files() {
    let g = graph();
    assert!(
        g.len() > 40,
        "found only {} modules: {:?}",
        g.len(),
        g.keys()
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checks_see_paths_and_cycles() {
    let known: BTreeMap<String, PathBuf> = ["a", "b", "a::c"]
        .into_iter()
        .map(|m| {
            (
                m.to_owned(),
                PathBuf::from(format!("src/{}.rs", m.replace("::", "/"))),
            )
        })
        .collect();
    let refs = references(
        "a",
        "use crate::b::Thing;\nfn f() { crate::a::c::g(); }",
        &known,
    );
    assert_eq!(refs, BTreeSet::from(["b".to_owned(), "a::c".to_owned()]));
    let refs = references("a::c", "use super::X; // crate::b in a comment", &known);
    assert_eq!(refs, BTreeSet::from(["a".to_owned()]));
    let edges = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn dependencies_point_down_the_data_flow() {
    let g = graph();
    let uses = |from: &str, to: &str| {
        g.iter()
            .filter(|(m, _)| *m == from || m.starts_with(&format!("{from}::")))
            .flat_map(|(m, refs)| refs.iter().map(move |r| (m.clone(), r.clone())))
            .filter(|(_, r)| r == to || r.starts_with(&format!("{to}::")))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        uses("dns", "listen"),
        [],
        "the query path must not know its listeners"
    );
    let outside_geo: Vec<_> = g
        .iter()
        .filter(|(m, _)| m.starts_with("geo"))
        .flat_map(|(m, refs)| refs.iter().map(move |r| (m, r)))
        .filter(|(_, r)| !r.starts_with("geo"))
        .collect();
    assert_eq!(
        outside_geo,
        [] as [(&String, &String); 0],
        "geo imports nothing of the crate"
    );
    for m in [
        "ops", "health", "metrics", "answer", "dns", "snapshot", "store",
    ] {
        assert_eq!(uses(m, "app"), [], "{m} must not reach into app's wiring");
    }
    assert_eq!(
        uses("health", "metrics"),
        [],
        "the prober writes only its table"
    );
}

#[test]
fn kubernetes_types_stay_in_the_kubernetes_source() {
    for (m, f) in modules() {
        if m.starts_with("sources::kubernetes") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source");
        for needle in ["k8s_openapi", "kube::"] {
            assert!(!text.contains(needle), "{} uses {needle}", f.display());
        }
    }
}

//! `cargo xtask check-layers`: fails when the top-level modules of a library crate depend on
//! each other in a cycle, naming the `file:line` of each edge of one concrete cycle.
//!
//! Every `.rs` file under `src/` belongs to a top-level module (`src/foo.rs` and `src/foo/**`
//! to `foo`); `src/lib.rs` is the crate root and not a module, and `src/main.rs` and `src/bin/`
//! are other crates and skipped. A file depends on module `bar` when its code names
//! `crate::bar` (in a `use` or inline; see [`scan`] for what is read and what is not), or an
//! item that `lib.rs` re-exports from `bar` (`crate::KernelTime` when `lib.rs` has
//! `pub use clock::KernelTime`). A module that uses itself is fine; a cycle through two or more
//! modules is the failure.
//!
//! Test code is left out, since tests may reach across layers: `#[cfg(test)] mod name { … }`
//! blocks, the files of `#[cfg(test)] mod name;` declarations (with their subfolders), files
//! that start with `#![cfg(test)]`, and, whatever declares them, files named `tests.rs` and
//! files under a `tests/` folder. Other items marked `#[cfg(test)]` (a lone `use` or `fn`)
//! still count. `#[path]` attributes, glob re-exports in `lib.rs` and paths built by macros
//! are not followed.
//!
//! ```text
//! cargo xtask check-layers                          # nettrace-user and nettrace-model
//! cargo xtask check-layers --crate-dir nettrace-user --graph
//! ```
mod graph;
mod scan;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// The crates checked when no `--crate-dir` is given (those that exist).
pub(crate) const DEFAULT_CRATES: &[&str] = &["nettrace-user", "nettrace-model"];

/// Checks each crate, printing its summary (and with `graph`, its edges); fails if any has a
/// cycle.
pub(crate) fn run(root: &Path, crate_dirs: &[PathBuf], graph: bool) -> Result<()> {
    let crate_dirs: Vec<PathBuf> = if crate_dirs.is_empty() {
        DEFAULT_CRATES
            .iter()
            .map(|name| root.join(name))
            .filter(|dir| dir.join("src").is_dir())
            .collect()
    } else {
        crate_dirs.to_vec()
    };
    let mut failed = Vec::new();
    for dir in &crate_dirs {
        let layers = Layers::load(root, dir)?;
        if graph {
            print!("{}", layers.graph_text());
        }
        let (report, ok) = layers.report();
        print!("{report}");
        if !ok {
            failed.push(layers.name);
        }
    }
    if !failed.is_empty() {
        // The report above says it all: exit without an error's backtrace.
        eprintln!("module cycles in {}", failed.join(", "));
        std::process::exit(1);
    }
    Ok(())
}

/// Where a dependency is written.
#[derive(Clone, Debug)]
struct Site {
    /// The file, relative to the workspace root when it is inside it.
    file: String,
    line: usize,
    /// The path as written (`use crate::client::ConnInfo`).
    text: String,
}

/// The top-level modules of one crate and the references between them.
#[derive(Debug)]
struct Layers {
    /// The crate folder as shown (`nettrace-user`).
    name: String,
    modules: BTreeSet<String>,
    /// Every reference from one module to another, in file and line order.
    edges: BTreeMap<(String, String), Vec<Site>>,
}

/// A file of the crate and what it says.
struct SourceFile {
    /// Path below `src/`.
    relative: PathBuf,
    shown: String,
    scan: scan::Scan,
}

impl Layers {
    fn load(root: &Path, crate_dir: &Path) -> Result<Self> {
        let src = crate_dir.join("src");
        if !src.join("lib.rs").is_file() {
            bail!(
                "{} is not a library crate: no src/lib.rs",
                crate_dir.display()
            );
        }
        // Paths as shown: relative to the workspace root when inside it.
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let shown = |path: &Path| -> String {
            let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            canonical
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        };
        let mut paths = Vec::new();
        collect_sources(&src, &src, &mut paths)?;
        paths.sort();
        let mut files = Vec::new();
        for relative in paths {
            let path = src.join(&relative);
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let depth = module_depth(&relative);
            files.push(SourceFile {
                shown: shown(&path),
                scan: scan::scan(&text, depth),
                relative,
            });
        }

        // Files of `#[cfg(test)] mod name;` declarations: `name.rs` and the folder `name/`.
        let mut test_files = BTreeSet::new();
        let mut test_folders = BTreeSet::new();
        for file in &files {
            let children = child_folder(&file.relative);
            for name in &file.scan.test_modules {
                test_files.insert(children.join(format!("{name}.rs")));
                test_folders.insert(children.join(name));
            }
        }
        let is_test = |file: &SourceFile| {
            file.scan.test_only
                || file.relative.file_name().is_some_and(|n| n == "tests.rs")
                || file
                    .relative
                    .parent()
                    .is_some_and(|p| p.iter().any(|c| c == "tests"))
                || test_files.contains(&file.relative)
                || test_folders.iter().any(|f| file.relative.starts_with(f))
        };
        let files: Vec<SourceFile> = files.into_iter().filter(|f| !is_test(f)).collect();

        let module_of = |relative: &Path| -> Option<String> {
            let first = relative.iter().next()?.to_str()?;
            if relative.iter().count() == 1 {
                (first != "lib.rs").then(|| first.trim_end_matches(".rs").to_owned())
            } else {
                Some(first.to_owned())
            }
        };
        let modules: BTreeSet<String> = files
            .iter()
            .filter_map(|f| module_of(&f.relative))
            .collect();
        // Items the root re-exports from a module: `pub use clock::KernelTime` maps
        // `KernelTime` to `clock`.
        let mut re_exports = BTreeMap::new();
        for file in files.iter().filter(|f| f.relative == Path::new("lib.rs")) {
            for (path, bound) in &file.scan.uses {
                let path: Vec<&String> = path
                    .iter()
                    .skip_while(|s| *s == "crate" || *s == "self")
                    .collect();
                if path.len() >= 2 && modules.contains(path[0]) && bound != "*" {
                    re_exports.insert(bound.clone(), path[0].clone());
                }
            }
        }

        let mut edges: BTreeMap<(String, String), Vec<Site>> = BTreeMap::new();
        for file in &files {
            let Some(from) = module_of(&file.relative) else {
                continue;
            };
            for reference in &file.scan.references {
                let to = if modules.contains(&reference.target) {
                    &reference.target
                } else if let Some(module) = re_exports.get(&reference.target) {
                    module
                } else {
                    // An extern crate re-exported by the root (`crate::model`), or an item
                    // `lib.rs` defines itself.
                    continue;
                };
                if *to == from {
                    continue;
                }
                edges
                    .entry((from.clone(), to.clone()))
                    .or_default()
                    .push(Site {
                        file: file.shown.clone(),
                        line: reference.line,
                        text: reference.text.clone(),
                    });
            }
        }
        Ok(Self {
            name: shown(crate_dir),
            modules,
            edges,
        })
    }

    fn adjacency(&self) -> graph::Edges {
        let mut adjacency: graph::Edges = self
            .modules
            .iter()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        for (from, to) in self.edges.keys() {
            adjacency
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
        adjacency
    }

    /// Each module and what it depends on, with the number of references.
    fn graph_text(&self) -> String {
        let mut text = format!("{}: module dependencies\n", self.name);
        for module in &self.modules {
            let deps: Vec<String> = self
                .edges
                .iter()
                .filter(|((from, _), _)| from == module)
                .map(|((_, to), sites)| format!("{to} ({})", sites.len()))
                .collect();
            let deps = if deps.is_empty() {
                "(none)".to_owned()
            } else {
                deps.join(", ")
            };
            let _ = writeln!(text, "  {module} -> {deps}");
        }
        text
    }

    /// The one-line summary, or each cycle with the places that make it; and whether the crate
    /// has no cycle.
    fn report(&self) -> (String, bool) {
        let adjacency = self.adjacency();
        let cycles = graph::cycles(&adjacency);
        let counts = format!("{} modules, {} edges", self.modules.len(), self.edges.len());
        if cycles.is_empty() {
            return (format!("{}: {counts}, no cycles\n", self.name), true);
        }
        let mut text = format!(
            "{}: {counts}, {} cycle{} (strongly connected components)\n",
            self.name,
            cycles.len(),
            if cycles.len() == 1 { "" } else { "s" }
        );
        for (n, component) in cycles.iter().enumerate() {
            let _ = writeln!(
                text,
                "\ncycle {}: {} modules: {}",
                n + 1,
                component.len(),
                component.join(", ")
            );
            let _ = writeln!(text, "  one cycle through it:");
            for pair in graph::cycle_through(component, &adjacency).windows(2) {
                let (from, to) = (&pair[0], &pair[1]);
                let site = &self.edges[&(from.clone(), to.clone())][0];
                let _ = writeln!(
                    text,
                    "    {from} -> {to} ({}:{} {})",
                    site.file, site.line, site.text
                );
            }
            let _ = writeln!(text, "  all edges inside it (references, first one):");
            let inside: BTreeSet<&String> = component.iter().collect();
            for ((from, to), sites) in &self.edges {
                if inside.contains(from) && inside.contains(to) {
                    let site = &sites[0];
                    let _ = writeln!(
                        text,
                        "    {from} -> {to} ({}, {}:{} {})",
                        sites.len(),
                        site.file,
                        site.line,
                        site.text
                    );
                }
            }
        }
        (text, false)
    }
}

/// Adds the `.rs` files below `folder` (relative to `src`) to `out`, leaving out `src/bin/` and
/// `src/main.rs`, which are other crates.
fn collect_sources(src: &Path, folder: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(folder).with_context(|| format!("listing {}", folder.display()))? {
        let path = entry?.path();
        let relative = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
        if relative == Path::new("bin") || relative == Path::new("main.rs") {
            continue;
        }
        if path.is_dir() {
            collect_sources(src, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(relative);
        }
    }
    Ok(())
}

/// How many modules below the root a file is: `lib.rs` 0, `a.rs` and `a/mod.rs` 1, `a/b.rs` 2.
fn module_depth(relative: &Path) -> usize {
    let count = relative.iter().count();
    match relative.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs") if count == 1 => 0,
        Some("mod.rs") => count - 1,
        _ => count,
    }
}

/// The folder that holds the files of the modules a file declares: `src/` for `lib.rs`, `a/`
/// for `a/mod.rs` and for `a.rs`.
fn child_folder(relative: &Path) -> PathBuf {
    let parent = relative.parent().unwrap_or(Path::new("")).to_path_buf();
    match relative.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs" | "lib.rs") => parent,
        _ => parent.join(relative.file_stem().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway crate folder with the given files under `src/`.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("nettrace-layers-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            for (path, text) in files {
                let path = dir.join("src").join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, text).unwrap();
            }
            Self(dir)
        }

        fn load(&self) -> Layers {
            Layers::load(self.0.parent().unwrap(), &self.0).unwrap()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn edge_list(layers: &Layers) -> Vec<String> {
        layers
            .edges
            .keys()
            .map(|(from, to)| format!("{from}->{to}"))
            .collect()
    }

    #[test]
    fn a_cycle_is_reported_with_file_and_line() {
        let fixture = Fixture::new(
            "cycle",
            &[
                (
                    "lib.rs",
                    "mod client;\nmod dns;\nmod event;\npub use event::Event;\n",
                ),
                ("event/mod.rs", "//! [`crate::dns::Resolver`]\nmod sink;\n"),
                (
                    "event/sink.rs",
                    "use std::fmt;\n\nuse crate::client::ConnInfo;\n",
                ),
                ("client.rs", "use crate::{\n    dns::Resolver,\n};\n"),
                ("dns/mod.rs", "fn f(e: crate::Event) {}\n"),
                ("clock.rs", "use crate::event::Event;\n"),
            ],
        );
        let layers = fixture.load();
        assert_eq!(
            edge_list(&layers),
            ["client->dns", "clock->event", "dns->event", "event->client"]
        );
        let (report, ok) = layers.report();
        assert!(!ok);
        let name = &layers.name;
        assert!(
            report.contains("cycle 1: 3 modules: client, dns, event\n"),
            "{report}"
        );
        assert!(
            report.contains(&format!(
                "    event -> client ({name}/src/event/sink.rs:3 use crate::client::ConnInfo)\n"
            )),
            "{report}"
        );
        assert!(
            report.contains(&format!(
                "    client -> dns ({name}/src/client.rs:2 use crate::dns::Resolver)\n"
            )),
            "{report}"
        );
        assert!(
            report.contains(&format!(
                "    dns -> event ({name}/src/dns/mod.rs:1 crate::Event)\n"
            )),
            "{report}"
        );
    }

    #[test]
    fn test_code_bins_and_self_uses_are_left_out() {
        let fixture = Fixture::new(
            "tests",
            &[
                ("lib.rs", "mod a;\nmod b;\n#[cfg(test)]\nmod testutil;\n"),
                (
                    "a/mod.rs",
                    "use crate::a::X;\n#[cfg(test)]\nmod fixture;\n#[cfg(test)]\nmod tests;\n",
                ),
                ("a/fixture.rs", "use crate::b::Y;\n"),
                ("a/fixture/deep.rs", "use crate::b::Y;\n"),
                ("a/tests.rs", "use crate::b::Y;\n"),
                ("a/tests/more.rs", "use crate::b::Y;\n"),
                (
                    "b.rs",
                    "#[cfg(test)]\nmod tests {\n    use crate::a::X;\n}\n",
                ),
                ("testutil.rs", "use crate::a::X;\n"),
                ("bin/tool.rs", "use crate::a::X;\n"),
                ("main.rs", "use crate::a::X;\n"),
            ],
        );
        let layers = fixture.load();
        assert_eq!(
            layers.modules,
            BTreeSet::from(["a".to_owned(), "b".to_owned()])
        );
        assert!(edge_list(&layers).is_empty(), "{:?}", layers.edges);
        let (report, ok) = layers.report();
        assert!(ok);
        assert_eq!(
            report,
            format!("{}: 2 modules, 0 edges, no cycles\n", layers.name)
        );
    }

    #[test]
    fn depths_and_child_folders() {
        assert_eq!(module_depth(Path::new("lib.rs")), 0);
        assert_eq!(module_depth(Path::new("a.rs")), 1);
        assert_eq!(module_depth(Path::new("a/mod.rs")), 1);
        assert_eq!(module_depth(Path::new("a/b.rs")), 2);
        assert_eq!(child_folder(Path::new("lib.rs")), Path::new(""));
        assert_eq!(child_folder(Path::new("a/mod.rs")), Path::new("a"));
        assert_eq!(child_folder(Path::new("a/b.rs")), Path::new("a/b"));
    }
}

//! Reads one source file for the top-level modules it names through `crate::` paths.
//!
//! This is a rough lexer, not a Rust parser. It blanks out comments (doc comments too, so an
//! intra-doc link like ``[`crate::recorder::Recorder`]`` is not a dependency), string and char
//! literals, then splits what is left into identifiers, `::` and single punctuation. It drops
//! every `#[cfg(test)] mod name { ... }` block and `#[cfg(test)] mod name;` declaration (the
//! latter are returned so that the caller can skip their files), and then reads every path that
//! starts at the crate root:
//!
//! - `crate::NAME...` anywhere in code, in `use` (also `pub use`, `pub(crate) use`, grouped and
//!   nested: `use crate::{a::X, b::{c, d}}` names `a` and `b`) and inline (`crate::a::f()`);
//! - `super::...` only when it climbs to the crate root (`super::super::NAME` in
//!   `src/a/b.rs`); a shorter `super::` stays inside the module and is ignored.
//!
//! ```text
//! let found = scan("use crate::{a::X, b::{c, d}};\nfn f() { crate::e::g() }", 1);
//! // found.references: a (line 1), b (line 1), e (line 2)
//! ```

/// A path from the crate root found in code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The first segment after the crate root (a module, or an item the root re-exports).
    pub(crate) target: String,
    /// 1-based line of that segment.
    pub(crate) line: usize,
    /// The path as written, one leaf of a grouped `use`: `use crate::client::ConnInfo`.
    pub(crate) text: String,
}

/// What [`scan`] finds in a file.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Every path from the crate root, in source order.
    pub(crate) references: Vec<Reference>,
    /// Names of the `#[cfg(test)] mod name;` declarations (their files are test code).
    pub(crate) test_modules: Vec<String>,
    /// The file starts with `#![cfg(test)]`.
    pub(crate) test_only: bool,
    /// The leaves of the `use` items at the file's top level, as `(path, bound name)`; read in
    /// `lib.rs` to resolve `crate::Item` through the root's re-exports.
    pub(crate) uses: Vec<(Vec<String>, String)>,
}

/// Scans `source`, a file `depth` modules below the crate root (`lib.rs` is 0, `src/a.rs` and
/// `src/a/mod.rs` are 1, `src/a/b.rs` is 2).
pub(crate) fn scan(source: &str, depth: usize) -> Scan {
    let tokens = tokenize(&strip(source));
    let (tokens, test_modules, test_only) = drop_test_modules(tokens);
    let mut found = Scan {
        test_modules,
        test_only,
        ..Scan::default()
    };
    // Brace depth, and the depths at which the enclosing inline `mod name {` blocks opened.
    let mut braces = 0usize;
    let mut inline_modules: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let previous = i.checked_sub(1).map(|p| &tokens[p].kind);
        // `pub(in crate::a)` restricts visibility; it does not use `a`.
        let starts_path = !matches!(previous, Some(Kind::PathSep))
            && !matches!(previous, Some(Kind::Ident(w)) if w == "in")
            && tokens.get(i + 1).map(|t| &t.kind) == Some(&Kind::PathSep);
        match &tokens[i].kind {
            Kind::Punct('{') => braces += 1,
            Kind::Punct('}') => {
                if inline_modules.last() == Some(&braces) {
                    inline_modules.pop();
                }
                braces = braces.saturating_sub(1);
            }
            Kind::Ident(word) if word == "mod" => {
                if let (Some(Kind::Ident(_)), Some(Kind::Punct('{'))) = (
                    tokens.get(i + 1).map(|t| &t.kind),
                    tokens.get(i + 2).map(|t| &t.kind),
                ) {
                    inline_modules.push(braces + 1);
                }
            }
            Kind::Ident(word) if word == "use" && braces == 0 => {
                // The `crate::` paths of this tree are read on the next turns.
                let mut leaves = Vec::new();
                use_tree(&tokens, i + 1, Vec::new(), &mut leaves);
                found.uses.extend(leaves.into_iter().filter_map(|leaf| {
                    let mut path: Vec<String> = leaf.path.into_iter().map(|s| s.0).collect();
                    if path.last().is_some_and(|s| s == "self") {
                        path.pop();
                    }
                    let bound = leaf.alias.or_else(|| path.last().cloned())?;
                    Some((path, bound))
                }));
            }
            Kind::Ident(word) if word == "crate" && starts_path => {
                i = root_path(&tokens, i, 1, &mut found.references);
                continue;
            }
            Kind::Ident(word) if word == "super" && starts_path => {
                let climbs = tokens[i..]
                    .chunks(2)
                    .take_while(|pair| {
                        matches!(&pair[0].kind, Kind::Ident(w) if w == "super")
                            && pair.get(1).map(|t| &t.kind) == Some(&Kind::PathSep)
                    })
                    .count();
                if climbs == depth + inline_modules.len() {
                    i = root_path(&tokens, i, climbs, &mut found.references);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Reads the use tree or path at `start`, whose first `root_segments` segments lead to the
/// crate root, into `references`; returns the index after it.
fn root_path(
    tokens: &[Token],
    start: usize,
    root_segments: usize,
    out: &mut Vec<Reference>,
) -> usize {
    let in_use = start
        .checked_sub(1)
        .is_some_and(|p| matches!(&tokens[p].kind, Kind::Ident(w) if w == "use"));
    let mut leaves = Vec::new();
    let end = use_tree(tokens, start, Vec::new(), &mut leaves);
    for leaf in leaves {
        let Some((target, line)) = leaf.path.get(root_segments) else {
            continue;
        };
        if !is_identifier(target) || target == "self" {
            continue;
        }
        let path: Vec<&str> = leaf.path.iter().map(|s| s.0.as_str()).collect();
        out.push(Reference {
            target: target.clone(),
            line: *line,
            text: format!("{}{}", if in_use { "use " } else { "" }, path.join("::")),
        });
    }
    end.max(start + 1)
}

/// One leaf of a use tree: `crate::b::{c, d as e}` has leaves `crate::b::c` and
/// `crate::b::d as e`. An inline path (`crate::a::f()`) is a tree with one leaf.
#[derive(Debug)]
struct Leaf {
    /// Segments with their lines.
    path: Vec<(String, usize)>,
    alias: Option<String>,
}

/// Reads a use tree at `i` below `prefix` into `out`; returns the index after it.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    mut prefix: Vec<(String, usize)>,
    out: &mut Vec<Leaf>,
) -> usize {
    let kind = |i: usize| tokens.get(i).map(|t| &t.kind);
    loop {
        match kind(i) {
            Some(Kind::Ident(name)) => {
                prefix.push((name.clone(), tokens[i].line));
                i += 1;
                if kind(i) == Some(&Kind::PathSep) {
                    i += 1;
                    continue;
                }
                let mut alias = None;
                if let (Some(Kind::Ident(word)), Some(Kind::Ident(name))) = (kind(i), kind(i + 1))
                    && word == "as"
                {
                    alias = Some(name.clone());
                    i += 2;
                }
                out.push(Leaf {
                    path: prefix,
                    alias,
                });
                return i;
            }
            Some(Kind::Punct('*')) => {
                prefix.push(("*".to_owned(), tokens[i].line));
                out.push(Leaf {
                    path: prefix,
                    alias: None,
                });
                return i + 1;
            }
            Some(Kind::Punct('{')) => {
                i += 1;
                loop {
                    match kind(i) {
                        None => return i,
                        Some(Kind::Punct('}')) => return i + 1,
                        Some(Kind::Punct(',')) => i += 1,
                        Some(_) => {
                            let next = use_tree(tokens, i, prefix.clone(), out);
                            // Skip what a use tree cannot hold rather than loop on it.
                            i = next.max(i + 1);
                        }
                    }
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.push(Leaf {
                        path: prefix,
                        alias: None,
                    });
                }
                return i;
            }
        }
    }
}

/// Removes `#[cfg(test)] mod name { ... }` blocks and `#[cfg(test)] mod name;` declarations;
/// returns the remaining tokens, the declared names and whether the file is `#![cfg(test)]`.
fn drop_test_modules(tokens: Vec<Token>) -> (Vec<Token>, Vec<String>, bool) {
    let kind = |i: usize| tokens.get(i).map(|t| &t.kind);
    let is_ident = |i: usize, word: &str| matches!(kind(i), Some(Kind::Ident(w)) if w == word);
    let is_cfg_test = |i: usize| {
        kind(i) == Some(&Kind::Punct('['))
            && is_ident(i + 1, "cfg")
            && kind(i + 2) == Some(&Kind::Punct('('))
            && is_ident(i + 3, "test")
            && kind(i + 4) == Some(&Kind::Punct(')'))
            && kind(i + 5) == Some(&Kind::Punct(']'))
    };
    let mut kept = Vec::with_capacity(tokens.len());
    let mut names = Vec::new();
    let mut test_only = false;
    let mut i = 0;
    while i < tokens.len() {
        if kind(i) == Some(&Kind::Punct('#'))
            && kind(i + 1) == Some(&Kind::Punct('!'))
            && is_cfg_test(i + 2)
        {
            test_only = true;
        }
        if kind(i) == Some(&Kind::Punct('#')) && is_cfg_test(i + 1) {
            let mut j = i + 7;
            // Further attributes, then the visibility.
            while kind(j) == Some(&Kind::Punct('#')) && kind(j + 1) == Some(&Kind::Punct('[')) {
                j = matching(&tokens, j + 1, '[', ']');
            }
            if is_ident(j, "pub") {
                j += 1;
                if kind(j) == Some(&Kind::Punct('(')) {
                    j = matching(&tokens, j, '(', ')');
                }
            }
            if is_ident(j, "mod")
                && let Some(Kind::Ident(name)) = kind(j + 1)
            {
                match kind(j + 2) {
                    Some(Kind::Punct(';')) => {
                        names.push(name.clone());
                        i = j + 3;
                        continue;
                    }
                    Some(Kind::Punct('{')) => {
                        i = matching(&tokens, j + 2, '{', '}');
                        continue;
                    }
                    _ => {}
                }
            }
        }
        kept.push(tokens[i].clone());
        i += 1;
    }
    (kept, names, test_only)
}

/// The index after the bracket that closes the one at `open`.
fn matching(tokens: &[Token], open: usize, left: char, right: char) -> usize {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        if token.kind == Kind::Punct(left) {
            depth += 1;
        } else if token.kind == Kind::Punct(right) {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    tokens.len()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Ident(String),
    PathSep,
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    line: usize,
}

fn is_identifier(word: &str) -> bool {
    word.chars()
        .next()
        .is_some_and(|c| c == '_' || c.is_alphabetic())
}

/// Splits stripped source into identifiers (and numbers), `::` and single punctuation.
fn tokenize(code: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = code.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c == '_' || c.is_alphanumeric() {
            let mut end = start + c.len_utf8();
            while let Some(&(at, next)) = chars.peek() {
                if next != '_' && !next.is_alphanumeric() {
                    break;
                }
                end = at + next.len_utf8();
                chars.next();
            }
            tokens.push(Token {
                kind: Kind::Ident(code[start..end].to_owned()),
                line,
            });
        } else if c == ':' && chars.peek().map(|p| p.1) == Some(':') {
            chars.next();
            tokens.push(Token {
                kind: Kind::PathSep,
                line,
            });
        } else if !c.is_whitespace() {
            tokens.push(Token {
                kind: Kind::Punct(c),
                line,
            });
        }
    }
    tokens
}

/// Blanks comments and string and char literals with spaces, keeping newlines (so lines keep
/// their numbers) and lifetimes.
fn strip(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = bytes.to_vec();
    let blank = |out: &mut [u8], from: usize, to: usize| {
        for byte in &mut out[from..to] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let is_ident = |b: u8| b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let end = if c == b'/' && at(i + 1) == b'/' {
            bytes[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| i + p)
        } else if c == b'/' && at(i + 1) == b'*' {
            let (mut j, mut depth) = (i + 2, 1);
            while j < bytes.len() && depth > 0 {
                if at(j) == b'/' && at(j + 1) == b'*' {
                    depth += 1;
                    j += 2;
                } else if at(j) == b'*' && at(j + 1) == b'/' {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            j.min(bytes.len())
        } else if c == b'"' {
            string_end(bytes, i + 1)
        } else if c == b'\'' {
            let escaped = at(i + 1) == b'\\';
            let width = source[i + 1..].chars().next().map_or(1, char::len_utf8);
            if escaped {
                let close = bytes
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&b| b == b'\''));
                close.map_or(bytes.len(), |p| i + 3 + p + 1)
            } else if at(i + 1 + width) == b'\'' {
                i + 2 + width
            } else {
                // A lifetime or a label.
                i + 1
            }
        } else if is_ident(c) {
            // A raw string (`r"…"`, `br#"…"#`, `cr"…"`) or a whole identifier.
            let r = if c == b'r' {
                Some(i)
            } else if (c == b'b' || c == b'c') && at(i + 1) == b'r' {
                Some(i + 1)
            } else {
                None
            };
            let hashes = r.map_or(0, |r| {
                bytes[r + 1..].iter().take_while(|&&b| b == b'#').count()
            });
            match r {
                Some(r) if at(r + 1 + hashes) == b'"' => {
                    raw_string_end(bytes, r + 2 + hashes, hashes)
                }
                _ => {
                    let mut j = i;
                    while j < bytes.len() && is_ident(bytes[j]) {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
            }
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The index after the `"` that closes a string whose contents start at `i`.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the `"##…` that closes a raw string whose contents start at `i`.
fn raw_string_end(bytes: &[u8], mut i: usize, hashes: usize) -> usize {
    while i < bytes.len() {
        if bytes[i] == b'"'
            && bytes[i + 1..].len() >= hashes
            && bytes[i + 1..i + 1 + hashes].iter().all(|&b| b == b'#')
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(target, line)` of every reference.
    fn targets(source: &str, depth: usize) -> Vec<(String, usize)> {
        scan(source, depth)
            .references
            .into_iter()
            .map(|r| (r.target, r.line))
            .collect()
    }

    fn names(list: &[(&str, usize)]) -> Vec<(String, usize)> {
        list.iter().map(|&(n, l)| (n.to_owned(), l)).collect()
    }

    #[test]
    fn simple_and_visible_uses() {
        let source = "use crate::a::X;\npub use crate::b::Y;\npub(crate) use crate::c;\n\
                      pub(super) use crate::d::{self};\n";
        assert_eq!(
            targets(source, 1),
            names(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)])
        );
        let found = scan(source, 1);
        assert_eq!(found.references[0].text, "use crate::a::X");
        assert_eq!(found.references[3].text, "use crate::d::self");
    }

    #[test]
    fn grouped_and_nested_uses() {
        let source = "use crate::{a::X, b::{c, d::{E, F}}, e};\n";
        assert_eq!(
            targets(source, 1),
            names(&[("a", 1), ("b", 1), ("b", 1), ("b", 1), ("e", 1)])
        );
        let texts: Vec<String> = scan(source, 1)
            .references
            .into_iter()
            .map(|r| r.text)
            .collect();
        assert_eq!(texts[0], "use crate::a::X");
        assert_eq!(texts[2], "use crate::b::d::E");
    }

    #[test]
    fn multi_line_group_names_each_line() {
        let source = "use std::fmt;\n\nuse crate::{\n    a,\n    b::Y,\n    c::{\n        Z as W,\n    },\n};\n";
        assert_eq!(targets(source, 1), names(&[("a", 4), ("b", 5), ("c", 6)]));
        assert_eq!(scan(source, 1).references[2].text, "use crate::c::Z");
    }

    #[test]
    fn inline_paths_in_code() {
        let source = "fn f() -> crate::a::T {\n    let x = crate::b::g::<u8>();\n    \
                      crate::c::m!(x);\n    Box<crate::d::E>\n}\nstruct S(#[source] crate::e::Err);\n";
        assert_eq!(
            targets(source, 1),
            names(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 6)])
        );
        assert_eq!(scan(source, 1).references[1].text, "crate::b::g");
    }

    #[test]
    fn comments_doc_links_and_literals_do_not_count() {
        let source = r##"//! See [`crate::recorder::Recorder`].
/// Uses [`crate::client::Client`] and [crate::dns].
// use crate::old::Thing;
/* use crate::block::{A, /* nested */ B}; */
#[doc = "crate::attr::Doc"]
fn f() {
    let s = "use crate::string::S;";
    let r = r#"crate::raw::R "quoted""#;
    let c = '"';
    let brace = '{';
    let l: &'static str = "x";
    crate::real::call(); // crate::trailing
}
"##;
        assert_eq!(targets(source, 1), names(&[("real", 12)]));
    }

    #[test]
    fn cfg_test_modules_are_excluded() {
        let source = "use crate::a::X;\n\n#[cfg(test)]\nmod tests {\n    use crate::b::Y;\n    \
                      fn f() { if true { crate::c::g() } }\n}\n\n#[cfg(test)]\npub(crate) mod fixture;\n\
                      #[cfg(test)]\n#[allow(dead_code)]\nmod helpers { use crate::d; }\nfn after() { crate::e::f() }\n";
        let found = scan(source, 1);
        let targets: Vec<&str> = found.references.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["a", "e"]);
        assert_eq!(found.test_modules, ["fixture"]);
        assert!(!found.test_only);
        // Other items under `cfg(test)` still count.
        assert_eq!(targets_of("#[cfg(test)]\nuse crate::f::G;\n"), ["f"]);
        assert!(scan("#![cfg(test)]\nuse crate::a;\n", 2).test_only);
    }

    fn targets_of(source: &str) -> Vec<String> {
        scan(source, 1)
            .references
            .into_iter()
            .map(|r| r.target)
            .collect()
    }

    #[test]
    fn super_counts_only_when_it_reaches_the_root() {
        // In `src/a/b.rs` (depth 2): `super::` is `a`, `super::super::` is the root.
        let source = "use super::sibling;\nuse super::super::c::X;\nuse super::super::{d, e::F};\n\
                      mod inner {\n    use super::super::g;\n    use super::super::super::h::I;\n}\n";
        assert_eq!(
            targets(source, 2),
            names(&[("c", 2), ("d", 3), ("e", 3), ("h", 6)])
        );
    }

    #[test]
    fn visibility_and_root_self_are_not_dependencies() {
        assert!(
            targets_of(
                "pub(in crate::a) fn f() {}\nuse crate::{self as root};\nextern crate core;\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn top_level_uses_are_listed_for_re_exports() {
        let found = scan(
            "mod a;\npub use a::{X, Y as Z};\npub use b::W;\nuse nettrace_model as model;\nfn f() { use c::V; }\n",
            0,
        );
        let uses: Vec<(String, String)> = found
            .uses
            .into_iter()
            .map(|(path, bound)| (path.join("::"), bound))
            .collect();
        let expected = [
            ("a::X", "X"),
            ("a::Y", "Z"),
            ("b::W", "W"),
            ("nettrace_model", "model"),
        ];
        assert_eq!(uses, expected.map(|(p, b)| (p.to_owned(), b.to_owned())));
    }
}

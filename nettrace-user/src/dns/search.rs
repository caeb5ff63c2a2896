//! The names tried for a host, in order: the search list and `ndots` as glibc applies them.
//!
//! - A name with a trailing dot is absolute: only it is tried.
//! - A name with at least `ndots` dots is tried as it is first, then with each search domain.
//! - Any other name is tried with each search domain first, then as it is.
//!
//! Every candidate is fully qualified; candidates that are not valid DNS names (too long, an
//! empty or over-long label) are left out. Non-ASCII names are converted to IDNA (`xn--`).
//!
//! ```ignore
//! // crate-internal
//! let names = candidates("db", &["corp.example".into()], 1)?;
//! assert_eq!(names[0].to_ascii(), "db.corp.example.");
//! assert_eq!(names[1].to_ascii(), "db.");
//! ```
use hickory_proto::rr::Name;

use super::ResolveError;

/// The fully qualified names to try for `host`, in order.
pub(crate) fn candidates(
    host: &str,
    search: &[String],
    ndots: u8,
) -> Result<Vec<Name>, ResolveError> {
    let invalid = |reason: &str| ResolveError::InvalidName {
        name: host.to_owned(),
        reason: reason.to_owned(),
    };
    if host.is_empty() || host == "." {
        return Err(invalid("empty name"));
    }
    let texts = if host.ends_with('.') {
        vec![host.to_owned()]
    } else {
        let as_is = format!("{host}.");
        let searched = search.iter().map(|domain| {
            let domain = domain.trim_end_matches('.');
            format!("{host}.{domain}.")
        });
        let dots = host.matches('.').count();
        if dots >= usize::from(ndots) {
            std::iter::once(as_is).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(as_is)).collect()
        }
    };
    let mut first_error = None;
    let mut names = Vec::with_capacity(texts.len());
    for text in &texts {
        match to_name(text) {
            Ok(name) => names.push(name),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if names.is_empty() {
        return Err(invalid(
            &first_error.unwrap_or_else(|| "no name to query".into()),
        ));
    }
    Ok(names)
}

/// A fully qualified DNS name from text ending with a dot.
fn to_name(text: &str) -> Result<Name, String> {
    let name = if text.is_ascii() {
        Name::from_ascii(text)
    } else {
        Name::from_utf8(text)
    }
    .map_err(|e| e.to_string())?;
    // hickory checks labels while parsing; the total length only on the wire.
    if name.len() > 254 {
        return Err(format!("name longer than 253 characters: {text}"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(host: &str, search: &[&str], ndots: u8) -> Vec<String> {
        let search: Vec<String> = search.iter().map(|s| (*s).to_owned()).collect();
        candidates(host, &search, ndots)
            .unwrap()
            .iter()
            .map(Name::to_ascii)
            .collect()
    }

    #[test]
    fn ndots_orders_search_list_and_absolute_names() {
        let search = ["a.example", "b.example."];
        assert_eq!(
            names("db", &search, 1),
            ["db.a.example.", "db.b.example.", "db."]
        );
        assert_eq!(
            names("db.lab", &search, 1),
            ["db.lab.", "db.lab.a.example.", "db.lab.b.example."]
        );
        assert_eq!(
            names("db.lab", &search, 2),
            ["db.lab.a.example.", "db.lab.b.example.", "db.lab."]
        );
        assert_eq!(names("db.lab.", &search, 5), ["db.lab."]);
        assert_eq!(names("db", &[], 1), ["db."]);
        assert_eq!(names("bücher.example", &[], 1), ["xn--bcher-kva.example."]);
    }

    #[test]
    fn invalid_names_are_rejected_or_left_out() {
        for bad in ["", ".", "a..b", &"x".repeat(64)] {
            assert!(
                matches!(
                    candidates(bad, &[], 1),
                    Err(ResolveError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        let long_domain = format!("{}.{}", "d".repeat(60), "e".repeat(60));
        let host = format!("{0}.{0}.{0}", "h".repeat(60));
        assert_eq!(names(&host, &[&long_domain], 1), [format!("{host}.")]);
    }
}

//! [`error_chain`]: an error and its sources as one line of text, for the trace, logs and the
//! daemon's answers. The one renderer of the crate; it needs nothing but `std`.
//!
//! Many errors already put their cause into their own message (`"{op} failed: {source}"`) and
//! keep it as `source()` too: such a source is skipped rather than repeated.
//!
//! ```ignore
//! let error = std::io::Error::other("no route");
//! assert_eq!(error_chain(&error), "no route");
//! ```

/// `error` and its sources as one line (`"a: b: c"`), skipping a source whose text the line
/// already contains.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// An error with a fixed message and an optional source.
    #[derive(Debug)]
    struct Layer {
        message: &'static str,
        source: Option<Box<Layer>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.message)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source.as_deref().map(|e| e as _)
        }
    }

    fn layers(messages: &[&'static str]) -> Layer {
        let mut source = None;
        for message in messages.iter().rev() {
            source = Some(Box::new(Layer { message, source }));
        }
        *source.unwrap_or_else(|| panic!("no layers"))
    }

    #[test]
    fn a_single_error_is_its_message() {
        assert_eq!(error_chain(&layers(&["refused"])), "refused");
    }

    #[test]
    fn sources_are_joined_with_colons() {
        let error = layers(&["loading failed", "map events", "permission denied"]);
        assert_eq!(
            error_chain(&error),
            "loading failed: map events: permission denied"
        );
    }

    #[test]
    fn a_source_already_in_the_text_is_skipped() {
        // `"{op} failed: {source}"` with the source kept as `source()` too.
        let error = layers(&[
            "read failed: connection reset",
            "connection reset",
            "os error 104",
        ]);
        assert_eq!(
            error_chain(&error),
            "read failed: connection reset: os error 104"
        );
    }

    #[test]
    fn a_skipped_source_still_leads_to_its_own_sources() {
        let error = layers(&["a: b", "b", "c", "a: b"]);
        assert_eq!(error_chain(&error), "a: b: c");
    }
}

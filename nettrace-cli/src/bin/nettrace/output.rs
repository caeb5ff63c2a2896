//! Standard output and input as a pipeline expects them: a reader that went away (`| head`)
//! ends the output quietly, and input is read up to a stated size.
use std::io::{self, Read, Write};

use anyhow::{Context, Result, bail};

/// Writes `text` to standard output. A closed pipe is not an error: whoever read the output
/// has what they wanted.
pub(crate) fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("writing to standard output"),
    }
}

/// Reads `input` whole as UTF-8 text, refusing more than `limit` bytes (`what` names the
/// input in errors).
pub(crate) fn read_bounded(input: impl Read, limit: u64, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{what} is larger than {} MiB, the most a trace file may hold",
            limit >> 20
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{what} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_up_to_the_limit_is_read_and_beyond_it_refused() {
        assert_eq!(read_bounded(&b"abcd"[..], 4, "x").unwrap(), "abcd");
        let error = read_bounded(&b"abcde"[..], 4, "x").unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
        assert!(read_bounded(&[0xff_u8][..], 4, "x").is_err());
    }
}

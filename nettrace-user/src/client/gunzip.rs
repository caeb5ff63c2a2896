//! [`Gunzip`]: decodes a gzip-encoded response body in bounded steps, for [`ResponseBody`].
//!
//! Received chunks go in with [`Gunzip::push`]; decoded frames come out of
//! [`Gunzip::next_frame`], each at most [`MAX_FRAME`] (64 KiB) long, however much one chunk
//! expands: the decoder is fed only as much input as fills its 32 KiB output buffer at a time.
//! So memory stays bounded by a few frames whatever the body holds.
//!
//! **Decompression-ratio guard.** Once more than [`RATIO_FROM`] (8 MiB) has been decoded, a
//! body whose decoded size exceeds [`MAX_RATIO`] (500) times the compressed bytes consumed
//! fails with [`BodyError::GzipRatio`]. Deflate cannot exceed about 1032:1 (a body of one
//! repeated byte, which is what a "gzip bomb" is), while text, JSON, HTML and logs compress
//! 3–50:1 and very repetitive data a few hundred to one; the first 8 MiB always pass, so
//! small bodies of zeros do too. A body that is legitimately this compressible (a sparse disk
//! image sent with `Content-Encoding: gzip`) can be read undecoded: set
//! `disable_compression`, or send an `Accept-Encoding` header of your own (the client then
//! decodes nothing, as Go).
//!
//! ```ignore
//! let mut gunzip = Gunzip::new();
//! gunzip.push(chunk);
//! while let Some(frame) = gunzip.next_frame()? { /* frame.len() <= MAX_FRAME */ }
//! gunzip.end_input();
//! while let Some(frame) = gunzip.next_frame()? { /* the rest */ }
//! assert!(gunzip.is_done());
//! ```
//!
//! [`ResponseBody`]: super::ResponseBody
use std::io::Write;

use bytes::{Buf, Bytes};
use flate2::write::GzDecoder;

use super::BodyError;

/// The longest decoded frame handed to the caller.
pub(crate) const MAX_FRAME: usize = 64 * 1024;

/// The most decoded bytes per compressed byte a body may reach (past [`RATIO_FROM`]).
pub const MAX_RATIO: u64 = 500;

/// Decoded bytes below which the ratio is not checked.
pub const RATIO_FROM: u64 = 8 * 1024 * 1024;

/// A gzip decoder fed chunk by chunk, giving out bounded frames.
pub(crate) struct Gunzip {
    decoder: GzDecoder<Vec<u8>>,
    /// Received bytes not yet taken by the decoder.
    input: Bytes,
    /// Decoded bytes not yet handed out.
    output: Bytes,
    /// The body has ended: no more input comes.
    end_of_input: bool,
    /// The decoder was told the input ended (and checked the trailer).
    finished: bool,
    /// Compressed bytes taken by the decoder.
    encoded: u64,
    /// Bytes decoded.
    decoded: u64,
}

impl Gunzip {
    pub(crate) fn new() -> Self {
        Self {
            decoder: GzDecoder::new(Vec::new()),
            input: Bytes::new(),
            output: Bytes::new(),
            end_of_input: false,
            finished: false,
            encoded: 0,
            decoded: 0,
        }
    }

    /// A received chunk of the encoded body. Call only when [`Self::next_frame`] said it
    /// needs input (`Ok(None)`).
    pub(crate) fn push(&mut self, data: Bytes) {
        if self.input.is_empty() {
            self.input = data;
        } else {
            // Not reached by `ResponseBody`, which drains before pushing; kept correct anyway.
            let mut joined = Vec::with_capacity(self.input.len() + data.len());
            joined.extend_from_slice(&self.input);
            joined.extend_from_slice(&data);
            self.input = Bytes::from(joined);
        }
    }

    /// The encoded body has ended.
    pub(crate) fn end_input(&mut self) {
        self.end_of_input = true;
    }

    /// Whether everything has been decoded and handed out.
    pub(crate) fn is_done(&self) -> bool {
        self.finished && self.output.is_empty()
    }

    /// The next decoded frame (at most [`MAX_FRAME`] bytes); `None` when more input is
    /// needed, or when [`Self::is_done`].
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            if !self.output.is_empty() {
                let len = self.output.len().min(MAX_FRAME);
                return Ok(Some(self.output.split_to(len)));
            }
            if !self.input.is_empty() {
                // One `write` fills at most the decoder's 32 KiB buffer (plus what it held).
                let taken = self.decoder.write(&self.input).map_err(BodyError::Gzip)?;
                if taken == 0 {
                    return Err(BodyError::Gzip(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "data after the end of the gzip stream",
                    )));
                }
                self.input.advance(taken);
                self.encoded += taken as u64;
                self.take_output()?;
                continue;
            }
            if self.end_of_input && !self.finished {
                self.finished = true;
                self.decoder.try_finish().map_err(BodyError::Gzip)?;
                self.take_output()?;
                continue;
            }
            return Ok(None);
        }
    }

    /// Moves what the decoder wrote into `output`, checking the ratio.
    fn take_output(&mut self) -> Result<(), BodyError> {
        let decoded = std::mem::take(self.decoder.get_mut());
        self.decoded += decoded.len() as u64;
        if self.decoded > RATIO_FROM && self.decoded > self.encoded.saturating_mul(MAX_RATIO) {
            return Err(BodyError::GzipRatio {
                encoded: self.encoded,
                decoded: self.decoded,
            });
        }
        self.output = Bytes::from(decoded);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Feeds `encoded` in `chunk`-sized pieces; returns the frames or the error.
    fn decode(encoded: &[u8], chunk: usize) -> Result<Vec<Bytes>, BodyError> {
        let mut gunzip = Gunzip::new();
        let mut frames = Vec::new();
        for piece in encoded.chunks(chunk) {
            gunzip.push(Bytes::copy_from_slice(piece));
            while let Some(frame) = gunzip.next_frame()? {
                frames.push(frame);
            }
        }
        gunzip.end_input();
        while let Some(frame) = gunzip.next_frame()? {
            frames.push(frame);
        }
        assert!(gunzip.is_done());
        Ok(frames)
    }

    #[test]
    fn frames_are_bounded_and_the_body_is_whole() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let frames = decode(&gzip(&data), 1 << 20).unwrap();
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME));
        assert_eq!(frames.concat(), data);
    }

    #[test]
    fn a_small_body_of_zeros_passes_and_a_large_one_is_stopped() {
        let small = vec![0u8; RATIO_FROM as usize];
        assert_eq!(decode(&gzip(&small), 4096).unwrap().concat(), small);
        let large = vec![0u8; 3 * RATIO_FROM as usize];
        let error = decode(&gzip(&large), 1 << 20).unwrap_err();
        assert!(matches!(error, BodyError::GzipRatio { .. }), "{error:?}");
    }

    #[test]
    fn corrupt_and_trailing_data_are_errors() {
        let mut encoded = gzip(b"hello");
        encoded.extend_from_slice(b"junk");
        assert!(matches!(decode(&encoded, 3), Err(BodyError::Gzip(_))));
        assert!(matches!(
            decode(b"not gzip at all", 4),
            Err(BodyError::Gzip(_))
        ));
        let truncated = &gzip(b"hello world")[..12];
        assert!(matches!(decode(truncated, 5), Err(BodyError::Gzip(_))));
    }
}

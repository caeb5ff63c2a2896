//! [`KeyLogRecorder`]: the TLS secrets of a client's connections, kept in memory in
//! SSLKEYLOGFILE format so that a packet capture can carry them (a pcapng Decryption Secrets
//! Block, or a key log file beside a pcap) and Wireshark can decrypt exactly the traced
//! requests.
//!
//! rustls hands every secret to the [`rustls::KeyLog`] of the client configuration, once per
//! secret and handshake:
//!
//! ```
//! use std::sync::Arc;
//! use nettrace::tls::KeyLogRecorder;
//! use rustls::KeyLog;
//!
//! let recorder = Arc::new(KeyLogRecorder::default());
//! // config.key_log = recorder.clone(); (rustls::ClientConfig)
//! recorder.log("CLIENT_TRAFFIC_SECRET_0", &[0xab; 32], &[0x01; 32]);
//! assert!(recorder.snapshot().starts_with("CLIENT_TRAFFIC_SECRET_0 abab"));
//! ```
use std::{
    fmt,
    sync::{Mutex, PoisonError},
};

/// Default bound of a [`KeyLogRecorder`]: 256 KiB of key log text. A TLS 1.3 handshake logs
/// five lines of about 200 bytes (1 KiB), a TLS 1.2 one a single line, so this holds the
/// secrets of some 250 TLS 1.3 handshakes per trace.
pub const DEFAULT_KEY_LOG_LIMIT: usize = 256 * 1024;

/// Keeps TLS secrets in memory as SSLKEYLOGFILE lines (`LABEL <client_random hex> <secret
/// hex>`), up to a bound in bytes of text. Once the bound is reached, new lines are dropped
/// (and counted, see [`dropped`](Self::dropped)): the secrets of the oldest connections, which
/// the capture's packets usually begin with, are kept.
///
/// Handle with care: the text decrypts the recorded connections.
pub struct KeyLogRecorder {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    text: String,
    dropped: u64,
}

impl KeyLogRecorder {
    /// A recorder keeping at most `limit` bytes of key log text.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            state: Mutex::new(State::default()),
        }
    }

    /// The bound in bytes of key log text.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The lines kept so far, in SSLKEYLOGFILE format (each line ends with `\n`).
    pub fn snapshot(&self) -> String {
        self.lock().text.clone()
    }

    /// Lines dropped because the bound was reached, since the last [`clear`](Self::clear).
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Forgets every line kept and the dropped count (a new trace begins).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.text = String::new();
        state.dropped = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is valid after any panic: a line is appended whole or not at all.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for KeyLogRecorder {
    /// A recorder bounded by [`DEFAULT_KEY_LOG_LIMIT`].
    fn default() -> Self {
        Self::new(DEFAULT_KEY_LOG_LIMIT)
    }
}

impl fmt::Debug for KeyLogRecorder {
    /// Sizes only: the secrets are not for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("KeyLogRecorder")
            .field("limit", &self.limit)
            .field("bytes", &state.text.len())
            .field("dropped", &state.dropped)
            .finish()
    }
}

impl rustls::KeyLog for KeyLogRecorder {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line_len = label.len() + 1 + 2 * client_random.len() + 1 + 2 * secret.len() + 1;
        let mut state = self.lock();
        if state.text.len() + line_len > self.limit {
            state.dropped += 1;
            return;
        }
        let text = &mut state.text;
        text.push_str(label);
        text.push(' ');
        push_hex(text, client_random);
        text.push(' ');
        push_hex(text, secret);
        text.push('\n');
    }
}

/// Appends `bytes` in lowercase hex.
fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use rustls::KeyLog;

    use super::*;

    #[test]
    fn lines_are_sslkeylogfile_format() {
        let recorder = KeyLogRecorder::default();
        recorder.log("CLIENT_RANDOM", &[0x00, 0x1f, 0xa0], &[0xff, 0x10]);
        recorder.log("EXPORTER_SECRET", &[0x01], &[0x02]);
        assert_eq!(
            recorder.snapshot(),
            "CLIENT_RANDOM 001fa0 ff10\nEXPORTER_SECRET 01 02\n"
        );
        assert_eq!(recorder.dropped(), 0);
    }

    #[test]
    fn lines_beyond_the_bound_are_dropped_whole_and_counted() {
        // "L 01 02\n" is 8 bytes: two fit in 20, the third does not.
        let recorder = KeyLogRecorder::new(20);
        for _ in 0..3 {
            recorder.log("L", &[1], &[2]);
        }
        assert_eq!(recorder.snapshot(), "L 01 02\nL 01 02\n");
        assert_eq!(recorder.dropped(), 1);
        // A shorter line still fits after a longer one was dropped.
        recorder.log("LONGER", &[1], &[2]);
        recorder.log("", &[], &[]);
        assert_eq!(recorder.dropped(), 2);
        assert_eq!(recorder.snapshot(), "L 01 02\nL 01 02\n  \n");

        recorder.clear();
        assert_eq!(recorder.snapshot(), "");
        assert_eq!(recorder.dropped(), 0);
        recorder.log("L", &[1], &[2]);
        assert_eq!(recorder.snapshot(), "L 01 02\n");
    }

    #[test]
    fn debug_shows_no_secret() {
        let recorder = KeyLogRecorder::default();
        recorder.log("CLIENT_RANDOM", &[0xaa; 32], &[0xbb; 48]);
        let shown = format!("{recorder:?}");
        assert!(!shown.contains("aa") && !shown.contains("bb"), "{shown}");
        assert!(shown.contains("dropped: 0"), "{shown}");
    }
}

//! The TLS options of `nettrace get` as curl users know them: `-k/--insecure`, `--cert` and
//! `--key`, `SSLKEYLOGFILE`, and `--tls-keys` without a packet capture.
//!
//! Key logs (NSS key log format, what Wireshark reads):
//! - `SSLKEYLOGFILE=PATH`: the secrets of every connection are appended to PATH, as curl does.
//! - `--tls-keys` without `--pcap`: written to `FILE.keys` beside `--output FILE`, else to
//!   `nettrace.keys` in the current folder (replaced at each run). With `--pcap`, the secrets
//!   go beside the captures instead (`DIR/<iface>.keys` and inside the pcapng).
//!
//! Both files are created with mode 0600: the secrets decrypt the traced connections.
//!
//! ```text
//! SSLKEYLOGFILE=/tmp/keys nettrace get https://self-signed.test/ -k --cert me.pem --key me.key
//! ```
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use anyhow::{Context, Result};
use nettrace::{
    client::HttpClientConfig,
    tls::{ClientIdentity, roots_from_pem_file},
};

use crate::args::GetArgs;

/// Sets the TLS settings of `config` from `args` and the environment.
pub(crate) fn apply(args: &GetArgs, config: &mut HttpClientConfig) -> Result<()> {
    if let Some(path) = &args.cacert {
        config.tls.roots = Some(roots_from_pem_file(path)?);
    }
    config.tls.insecure = args.insecure;
    if let Some(cert) = &args.cert {
        let key = args.key.as_deref().unwrap_or(cert);
        config.tls.client_identity = Some(ClientIdentity::from_pem_files(cert, key)?);
    }
    let mut files = Vec::new();
    if let Some(path) = std::env::var_os("SSLKEYLOGFILE").filter(|p| !p.is_empty()) {
        files.push(open(Path::new(&path), true)?);
    }
    if let Some(path) = key_log_path(args) {
        files.push(open(&path, false)?);
    }
    if !files.is_empty() {
        config.tls.key_log = Some(Arc::new(KeyLogFiles(files)));
    }
    Ok(())
}

/// Where `--tls-keys` writes the key log when there is no capture to put it beside.
fn key_log_path(args: &GetArgs) -> Option<PathBuf> {
    if !args.tls_keys || !args.pcap.is_empty() {
        return None;
    }
    Some(match &args.output {
        Some(output) => {
            let mut name = output.clone().into_os_string();
            name.push(".keys");
            PathBuf::from(name)
        }
        None => PathBuf::from("nettrace.keys"),
    })
}

/// Opens a key log file (mode 0600 when created), appending or replacing it.
fn open(path: &Path, append: bool) -> Result<Mutex<File>> {
    let mut options = OpenOptions::new();
    options.create(true).mode(0o600);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    let file = options
        .open(path)
        .with_context(|| format!("opening the TLS key log {}", path.display()))?;
    Ok(Mutex::new(file))
}

/// Writes each secret as one NSS key log line to every file.
struct KeyLogFiles(Vec<Mutex<File>>);

impl std::fmt::Debug for KeyLogFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyLogFiles({})", self.0.len())
    }
}

impl nettrace::tls::KeyLog for KeyLogFiles {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let mut line =
            String::with_capacity(label.len() + 2 * (client_random.len() + secret.len()) + 3);
        line.push_str(label);
        line.push(' ');
        line.extend(client_random.iter().map(|b| format!("{b:02x}")));
        line.push(' ');
        line.extend(secret.iter().map(|b| format!("{b:02x}")));
        line.push('\n');
        for file in &self.0 {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            // A failed write loses secrets, not the request: nothing else to do with it.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

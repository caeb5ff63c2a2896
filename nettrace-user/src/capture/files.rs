//! A capture's files in a folder: `<iface>.pcap`, `<iface>.pcapng`, and `<iface>.keys` (the
//! TLS secrets in SSLKEYLOGFILE format) when there are secrets.
use std::{
    io,
    path::{Path, PathBuf},
};

use super::PacketCapture;

impl PacketCapture {
    /// Writes the capture into `dir` (created if missing) as `<iface>.pcap` and
    /// `<iface>.pcapng`, plus `<iface>.keys` when it holds TLS secrets. Returns the paths
    /// written; an error names the file it concerns.
    pub fn write_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
        let base = dir.join(&self.interface_name);
        let pcap = base.with_extension("pcap");
        self.write_to_file(&pcap).map_err(|e| with_path(e, &pcap))?;
        let pcapng = base.with_extension("pcapng");
        self.write_pcapng_to_file(&pcapng)
            .map_err(|e| with_path(e, &pcapng))?;
        let mut written = vec![pcap, pcapng];
        if !self.tls_key_log.is_empty() {
            let keys = base.with_extension("keys");
            self.write_key_log_to_file(&keys)
                .map_err(|e| with_path(e, &keys))?;
            written.push(keys);
        }
        Ok(written)
    }

    /// What the capture misses, one sentence each, for whoever writes or shows it: packets
    /// dropped after the total size limit, packets lost to a full ring. Empty when complete.
    pub fn shortfalls(&self) -> Vec<String> {
        let mut shortfalls = Vec::new();
        if self.truncated {
            shortfalls.push(format!(
                "capture on {} reached its total size limit; later packets were dropped",
                self.interface_name
            ));
        }
        if self.lost_packets > 0 {
            shortfalls.push(format!(
                "capture on {} lost {} packets (the packet ring buffer was full)",
                self.interface_name, self.lost_packets
            ));
        }
        shortfalls
    }
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

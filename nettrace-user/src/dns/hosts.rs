//! [`HostsTable`]: the static name-to-address table of `/etc/hosts`, consulted before DNS.
//!
//! Format (hosts(5)): an address, then one or more names, separated by blanks; `#` starts a
//! comment. Names match case-insensitively and with or without a trailing dot; a name listed
//! several times collects all its addresses in file order. Lines whose address does not parse
//! (including IPv6 addresses with a `%zone`, which [`IpAddr`] cannot hold) are ignored.
//!
//! ```
//! use nettrace::dns::HostsTable;
//!
//! let hosts = HostsTable::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n");
//! assert_eq!(hosts.lookup("LOCALHOST.").unwrap().len(), 2);
//! assert!(hosts.lookup("example.com").is_none());
//! ```
use std::{collections::HashMap, fs, io, net::IpAddr, path::Path};

/// Static host names and their addresses (the contents of `/etc/hosts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostsTable {
    by_name: HashMap<String, Vec<IpAddr>>,
}

impl HostsTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the text of a hosts file; malformed lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut table = Self::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                table.insert(name, ip);
            }
        }
        table
    }

    /// Reads and parses a hosts file.
    pub fn from_file(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string(path)?))
    }

    /// Adds an address for `name` (after those it already has; duplicates are ignored).
    pub fn insert(&mut self, name: &str, ip: IpAddr) {
        let addrs = self.by_name.entry(normalize(name)).or_default();
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }

    /// The addresses of `name`, in file order; `None` if the table does not list it.
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.by_name
            .get(&normalize(name))
            .map(Vec::as_slice)
            .filter(|addrs| !addrs.is_empty())
    }

    /// True when the table lists no name.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The lookup key of a name: lower case, without the trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_comments_and_skips_bad_lines() {
        let hosts = HostsTable::parse(
            "# comment\n\
             127.0.0.1\tlocalhost\n\
             192.0.2.10 web.example  web # alias\n\
             not-an-ip bad.example\n\
             fe80::1%eth0 zoned.example\n\
             2001:db8::10 web.example\n\
             192.0.2.10 WEB.example\n",
        );
        assert_eq!(
            hosts.lookup("web.example").unwrap(),
            [
                "192.0.2.10".parse::<IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );
        assert_eq!(hosts.lookup("Web").unwrap().len(), 1);
        assert_eq!(hosts.lookup("localhost.").unwrap().len(), 1);
        assert!(hosts.lookup("bad.example").is_none());
        assert!(hosts.lookup("zoned.example").is_none());
        assert!(hosts.lookup("comment").is_none());
        assert!(HostsTable::parse("").is_empty());
    }
}

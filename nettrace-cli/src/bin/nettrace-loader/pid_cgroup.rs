//! `trace --pid P`: P and its descendants, alone in a cgroup of their own.
//!
//! The cgroup programs see every socket of a cgroup (and of the cgroups below it), so tracing
//! P's own cgroup would also trace every other process there (the root cgroup holds most of
//! a system without systemd). Instead, [`MovedProcess::move_in`] creates a child cgroup
//! `nettrace-loader-<loader pid>` of P's cgroup C and moves P into it (all its threads: cgroup
//! v2 moves whole thread groups), then the descendants P already has that share C; the
//! loader traces that child cgroup alone. Processes P forks later are born there, so the
//! trace holds exactly P and its descendants. When tracing ends, whatever runs in the child
//! cgroup (P, and its descendants still alive) is moved back to C and the child is removed
//! (`kill -9` of the loader leaves them in it).
//!
//! Why not filter events by process ID in userspace: a socket's process would have to be
//! placed in P's family from `/proc` when its events arrive, by which time a short-lived
//! child (a `curl` run by a script) may be gone, and every socket of the shared cgroup would
//! be registered and reported meanwhile. A cgroup is the kernel's own notion of "these
//! processes and their children": nothing is missed and nothing else is seen.
//!
//! It refuses, naming C, when P cannot be moved (a kernel thread: `EINVAL`; C a threaded or
//! delegated cgroup the loader may not move out of: `EBUSY`, `EOPNOTSUPP`, `EPERM`); the
//! user may then trace all of C with `--cgroup C`. Descendants of P living in other cgroups
//! are left there, untraced, and named in a warning. Sockets P opened before are not seen.
//!
//! ```ignore
//! let moved = MovedProcess::move_in(pid)?; // P now in C/nettrace-loader-<loader pid>
//! tracer.trace_cgroup(moved.path())?;
//! // ... until P ends; dropping `moved` moves everything back to C.
//! ```
use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::cgroup;

/// Rounds of moving P's descendants before giving up on a family that keeps forking.
const MOVE_ROUNDS: usize = 20;

/// P (and its descendants) moved out of their cgroup into a child cgroup; moved back when
/// dropped.
pub(crate) struct MovedProcess {
    pid: u32,
    /// P's cgroup before.
    original: PathBuf,
    /// The child cgroup of `original` that holds P's family now.
    group: PathBuf,
}

impl MovedProcess {
    /// Moves process `pid` and the descendants that share its cgroup into a fresh child
    /// cgroup of it, or says why it cannot (naming the cgroup).
    pub(crate) fn move_in(pid: u32) -> Result<Self> {
        let own = std::process::id();
        if pid == own {
            bail!("--pid {pid} is the loader itself");
        }
        if pid == 1 {
            bail!("--pid 1 would be every process; trace its cgroup with --cgroup instead");
        }
        let original = cgroup::of_pid(pid)?;
        let group = original.join(format!("nettrace-loader-{own}"));
        match fs::create_dir(&group) {
            Ok(()) => {}
            // A leftover of a killed loader with the same pid is reused.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot trace process {pid} alone: creating cgroup {} failed; \
                         tracing all of its cgroup {} would be: --cgroup {}",
                        group.display(),
                        original.display(),
                        original.display()
                    )
                });
            }
        }
        // From here on, `Drop` moves back whatever was moved and removes `group`.
        let moved = Self {
            pid,
            original,
            group,
        };
        if let Err(e) = write_pid(&moved.group, pid) {
            let others = fs::read_to_string(moved.original.join("cgroup.procs"))
                .map(|procs| {
                    procs
                        .lines()
                        .filter(|l| l.trim() != pid.to_string())
                        .count()
                })
                .unwrap_or(0);
            bail!(
                "cannot trace process {pid} alone: moving it out of its cgroup {} failed ({e}); \
                 that cgroup holds {others} other process(es), so it is not traced in their \
                 place (use --cgroup {} to trace all of it)",
                moved.original.display(),
                moved.original.display()
            );
        }
        moved.move_descendants()?;
        Ok(moved)
    }

    /// The cgroup to trace.
    pub(crate) fn path(&self) -> &Path {
        &self.group
    }

    /// The cgroup the process was in.
    pub(crate) fn original(&self) -> &Path {
        &self.original
    }

    /// Moves the descendants of P that share its former cgroup, until none is left there
    /// (a child forked meanwhile by one not yet moved is found in the next round; children
    /// of moved ones are born in the new cgroup). Warns about those in other cgroups.
    fn move_descendants(&self) -> Result<()> {
        let own = std::process::id();
        let mut elsewhere: Vec<(u32, PathBuf)> = Vec::new();
        for _ in 0..MOVE_ROUNDS {
            let mut left = 0;
            for child in descendants(&process_table(), self.pid, own) {
                let Ok(path) = cgroup::of_pid(child) else {
                    continue; // Gone.
                };
                if path == self.original {
                    left += 1;
                    match write_pid(&self.group, child) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => bail!(
                            "cannot trace process {} alone: moving its descendant {child} out \
                             of cgroup {} failed ({e})",
                            self.pid,
                            self.original.display()
                        ),
                    }
                } else if path != self.group && !elsewhere.iter().any(|(pid, _)| *pid == child) {
                    elsewhere.push((child, path));
                }
            }
            if left == 0 {
                for (child, path) in elsewhere {
                    eprintln!(
                        "nettrace-loader: descendant {child} of process {} is in another \
                         cgroup ({}) and is not traced",
                        self.pid,
                        path.display()
                    );
                }
                return Ok(());
            }
        }
        bail!(
            "cannot trace process {} alone: its descendants in cgroup {} keep forking",
            self.pid,
            self.original.display()
        )
    }
}

impl Drop for MovedProcess {
    /// Moves every process of the child cgroup back (P and the descendants born there) and
    /// removes it.
    fn drop(&mut self) {
        for _ in 0..MOVE_ROUNDS {
            let procs = fs::read_to_string(self.group.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<u32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                match write_pid(&self.original, pid) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => eprintln!(
                        "nettrace-loader: process {pid} not moved back to cgroup {} ({e}); it \
                         stays in {}",
                        self.original.display(),
                        self.group.display()
                    ),
                }
            }
        }
        if let Err(e) = fs::remove_dir(&self.group) {
            eprintln!(
                "nettrace-loader: cgroup {} not removed ({e})",
                self.group.display()
            );
        }
    }
}

/// Moves process `pid` into `group` (`cgroup.procs`).
fn write_pid(group: &Path, pid: u32) -> io::Result<()> {
    fs::write(group.join("cgroup.procs"), format!("{pid}\n"))
}

/// Every process's parent, from `/proc/*/stat` (processes that end meanwhile are skipped).
fn process_table() -> HashMap<u32, u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_in_stat(&stat)?))
        })
        .collect()
}

/// The parent's pid in a `/proc/PID/stat` line: `pid (comm) state ppid ...`, where comm may
/// hold spaces and parentheses.
fn parent_in_stat(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Whether process `pid` runs: it exists and is not a zombie (ended, not yet reaped by its
/// parent).
pub(crate) fn is_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| state_in_stat(&stat))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

/// The state letter in a `/proc/PID/stat` line.
fn state_in_stat(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().next()?.chars().next()
}

/// The descendants of `root` in `parents` (child -> parent), without `skip` and its own.
fn descendants(parents: &HashMap<u32, u32>, root: u32, skip: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&child, &parent) in parents {
        children.entry(parent).or_default().push(child);
    }
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            // A pid is its own parent only in a corrupt table: no loop either way.
            if child != skip && child != root && !found.contains(&child) {
                found.push(child);
                todo.push(child);
            }
        }
    }
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent_past_a_strange_command_name() {
        assert_eq!(parent_in_stat("42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("42 (curl) R 1 1"), Some(1));
        assert_eq!(parent_in_stat("garbage"), None);
        assert_eq!(state_in_stat("42 (a) Z) Z 7 42"), Some('Z'));
        assert!(is_running(std::process::id()));
    }

    #[test]
    fn descendants_follow_every_generation_but_skip_the_loader() {
        // 10 -> 11 -> 12, 10 -> 13 (the loader) -> 14, 20 unrelated.
        let parents = HashMap::from([(10, 1), (11, 10), (12, 11), (13, 10), (14, 13), (20, 1)]);
        assert_eq!(descendants(&parents, 10, 13), vec![11, 12]);
        assert_eq!(descendants(&parents, 12, 13), Vec::<u32>::new());
        // A corrupt table with a cycle ends.
        let cycle = HashMap::from([(10, 11), (11, 10)]);
        assert_eq!(descendants(&cycle, 10, 0), vec![11]);
    }
}

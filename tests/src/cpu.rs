//! On-CPU time of threads and processes for the benchmarks: threads from
//! `/proc/PID/task/*/schedstat` (nanoseconds, where `stat` counts ticks of 10 ms; missing or
//! unreadable entries count as zero, as a thread may end between listing and reading), whole
//! processes from their CPU-time clock (which keeps the time of ended threads). Also which
//! CPUs a thread may run on, and pinning it to one (a per-CPU lane is the CPU's, whichever).
use std::{collections::BTreeMap, path::Path, time::Duration};

/// Whose threads: this process or another one.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    /// The calling process.
    This,
    /// Another process, by ID.
    Id(u32),
}

impl Process {
    fn tasks(self) -> String {
        match self {
            Self::This => "/proc/self/task".to_owned(),
            Self::Id(pid) => format!("/proc/{pid}/task"),
        }
    }
}

/// Every thread of `process`: its name and on-CPU time so far, by thread ID.
pub fn threads(process: Process) -> BTreeMap<u32, (String, Duration)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(process.tasks()) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        threads.insert(tid, (name.trim_end().to_owned(), schedstat(&path)));
    }
    threads
}

/// On-CPU time of the threads of `process` named `name`, together.
pub fn named_threads(process: Process, name: &str) -> Duration {
    threads(process)
        .into_values()
        .filter(|(thread, _)| thread == name)
        .map(|(_, time)| time)
        .sum()
}

/// On-CPU time of `process` so far, ended threads included (its CPU-time clock); zero when
/// the clock cannot be read (the process is gone, or belongs to another user).
pub fn process(process: Process) -> Duration {
    let clock = match process {
        Process::This => libc::CLOCK_PROCESS_CPUTIME_ID,
        Process::Id(pid) => {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                return Duration::ZERO;
            };
            let mut clock: libc::clockid_t = 0;
            // SAFETY: `clock` is a valid, writable clockid_t; the call only fills it in.
            if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
                return Duration::ZERO;
            }
            clock
        }
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The calling thread's on-CPU time so far.
pub fn this_thread() -> Duration {
    schedstat(Path::new("/proc/thread-self"))
}

/// The first field of `dir/schedstat`: time spent on the CPU, in nanoseconds.
fn schedstat(dir: &Path) -> Duration {
    let nanos = std::fs::read_to_string(dir.join("schedstat"))
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// The CPUs the calling thread may run on, in order.
pub fn allowed() -> Vec<usize> {
    // SAFETY: a zeroed `cpu_set_t` is an empty set; sched_getaffinity and CPU_ISSET only read
    // and write the set passed, which lives on this stack for the calls.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            libc::sched_getaffinity(0, size, &mut set),
            0,
            "reading the CPUs allowed: {}",
            std::io::Error::last_os_error()
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu` (one of [`allowed`]).
pub fn pin(cpu: usize) {
    // SAFETY: as in `allowed`; CPU_SET and sched_setaffinity only read and write the set
    // passed, which lives on this stack for the calls.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            libc::sched_setaffinity(0, size, &set),
            0,
            "pinning to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_is_among_the_process_threads_and_counts_up() {
        let before = this_thread();
        let mut x = 0u64;
        // Some work, bounded, so that the thread's on-CPU time moves.
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let after = this_thread();
        assert!(after > before, "{after:?} after {before:?}");
        let all = threads(Process::This);
        assert!(!all.is_empty());
        assert!(process(Process::This) >= after);
        let id = std::process::id();
        assert!(process(Process::Id(id)) >= after);
        assert_eq!(process(Process::Id(u32::MAX)), Duration::ZERO);
    }
}

//! The servers of a run as child processes: each in its own process group (so a
//! master and its workers stop together), waited for on its port, measured through
//! `/proc` (memory and CPU of the whole process tree), and stopped when dropped.

use std::collections::HashMap;
use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A server the benchmark started.
pub struct Proc {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output in `log`, and returns once `port` accepts on
    /// loopback. A process that exits first, or never listens, is an error that
    /// quotes the end of its log.
    pub fn start(name: &str, mut cmd: Command, port: u16, log: &Path) -> Result<Proc, String> {
        let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        if let Ok(mut groups) = GROUPS.lock() {
            groups.push(child.id());
        }
        let mut proc = Proc {
            port,
            child,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = proc.child.try_wait() {
                return Err(format!(
                    "{name} exited at start ({status}):\n{}",
                    proc.log_tail()
                ));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(proc);
            }
            thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "{name} did not listen on {port} within 30 s:\n{}",
            proc.log_tail()
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Memory and CPU of this server now, over all its processes.
    pub fn usage(&self) -> Usage {
        usage_of(self.pid())
    }

    /// Starts its peak RSS (`VmHWM`) afresh from what it holds now (Linux's
    /// `clear_refs` 5), so that a mode's peak is not an earlier mode's.
    pub fn reset_peak(&self) -> Result<(), String> {
        let path = format!("/proc/{}/clear_refs", self.pid());
        fs::write(&path, "5").map_err(|e| format!("{path}: {e}"))
    }
}

/// The process groups of the servers running now, for `stop_all_on_signal`.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Ctrl-C or SIGTERM stops every server this run started before the harness
/// exits: each runs in its own process group, which a terminal's Ctrl-C does
/// not reach, and the harness's drops do not run on a signal.
pub fn stop_all_on_signal() {
    thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
        for pid in &groups {
            kill_group("-TERM", *pid);
        }
        thread::sleep(Duration::from_secs(1));
        for pid in &groups {
            kill_group("-KILL", *pid);
        }
        eprintln!("oneaccess-loadbench: interrupted; its servers are stopped");
        std::process::exit(130);
    });
}

fn kill_group(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The whole group: nginx's and Apache's workers stop with their master.
        let pid = self.pid();
        if let Ok(mut groups) = GROUPS.lock() {
            groups.retain(|g| *g != pid);
        }
        kill_group("-TERM", pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        kill_group("-KILL", pid);
        let _ = self.child.wait();
    }
}

/// Memory and CPU of a process tree at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    /// Proportional set size summed over the processes: memory shared between a
    /// master and its workers is counted once, so one process and many compare.
    pub pss_kib: u64,
    /// Peak resident set size (`VmHWM`) of the root process.
    pub root_hwm_kib: u64,
    /// CPU time, user + system, in clock ticks (1/100 s).
    pub cpu_ticks: u64,
    /// Of which in user space, and in the kernel (`utime`, `stime`).
    pub user_ticks: u64,
    pub sys_ticks: u64,
    /// Context switches of the live threads (each thread's `voluntary_` and
    /// `nonvoluntary_ctxt_switches`: a process's own line counts its main
    /// thread only).
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

impl Usage {
    /// What `self`, taken later, adds to `before`.
    pub fn since(&self, before: &Usage) -> Usage {
        Usage {
            pss_kib: self.pss_kib,
            root_hwm_kib: self.root_hwm_kib,
            cpu_ticks: self.cpu_ticks.saturating_sub(before.cpu_ticks),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            sys_ticks: self.sys_ticks.saturating_sub(before.sys_ticks),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(before.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(before.involuntary_switches),
        }
    }

    /// Context switches, both kinds.
    pub fn switches(&self) -> u64 {
        self.voluntary_switches + self.involuntary_switches
    }
}

/// Memory and CPU of process `root` and its descendants now.
pub fn usage_of(root: u32) -> Usage {
    let mut usage = Usage::default();
    for pid in tree(root) {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        usage.pss_kib += field_kib(&dir.join("smaps_rollup"), "Pss:");
        if pid == root {
            usage.root_hwm_kib = field_kib(&dir.join("status"), "VmHWM:");
        }
        let (user, sys) = user_sys_ticks(pid);
        usage.user_ticks += user;
        usage.sys_ticks += sys;
        usage.cpu_ticks += user + sys;
        let (voluntary, involuntary) = switches(pid);
        usage.voluntary_switches += voluntary;
        usage.involuntary_switches += involuntary;
    }
    usage
}

/// Context switches of process `pid`, summed over its threads
/// (`/proc/PID/task/*/status`): (voluntary, involuntary). A thread that ended
/// takes its count with it.
fn switches(pid: u32) -> (u64, u64) {
    let mut out = (0, 0);
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let text = fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let (v, n) = switches_of_status(&text);
        out.0 += v;
        out.1 += n;
    }
    out
}

/// The two context-switch lines of a `status` file.
fn switches_of_status(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// `root` and every descendant, from the parent ids in `/proc/*/stat`.
pub fn tree(root: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse().ok()))
            {
                parents.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = parents.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces):
/// index 0 is the state, 1 the parent pid, 11 utime, 12 stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// CPU time of one process (not its children), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let (user, sys) = user_sys_ticks(pid);
    user + sys
}

/// CPU time of one process (not its children) in user space and in the kernel,
/// in clock ticks.
fn user_sys_ticks(pid: u32) -> (u64, u64) {
    stat_fields(pid)
        .map(|f| {
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            (n(11), n(12))
        })
        .unwrap_or((0, 0))
}

fn field_kib(path: &Path, name: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The resident set size (`VmRSS`) of one process now, in KiB; 0 once it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    field_kib(&PathBuf::from(format!("/proc/{pid}/status")), "VmRSS:")
}

/// The open file descriptors of one process now (`/proc/PID/fd`): sockets,
/// files, pipes, epoll and event fds alike.
pub fn open_fds(pid: u32) -> Result<usize, String> {
    let dir = format!("/proc/{pid}/fd");
    fs::read_dir(&dir)
        .map(|d| d.count())
        .map_err(|e| format!("{dir}: {e}"))
}

/// Samples a server's memory four times a second while a load runs, keeping the
/// highest proportional set size seen.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<u64>,
}

impl PeakSampler {
    pub fn start(root: u32) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(usage_of(root).pss_kib);
                thread::sleep(Duration::from_millis(250));
            }
            peak.max(usage_of(root).pss_kib)
        });
        PeakSampler { stop, handle }
    }

    /// The peak, in KiB.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The first of `candidates` that exists, else `name` on the PATH.
pub fn find_binary(name: &str, candidates: &[&str]) -> Result<PathBuf, String> {
    for c in candidates {
        if Path::new(c).is_file() {
            return Ok(PathBuf::from(c));
        }
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
        .ok_or_else(|| format!("{name} is not installed (./scripts/setup.sh installs it)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_context_switch_lines() {
        let status = "Name:\tnginx\nThreads:\t1\nvoluntary_ctxt_switches:\t120\n\
                      nonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches_of_status(status), (120, 7));
        assert_eq!(switches_of_status("Name:\tx\n"), (0, 0));
    }

    #[test]
    fn reads_its_own_rss_and_open_files() {
        let me = std::process::id();
        assert!(rss_kib(me) > 0);
        // Other tests open files meanwhile: no exact count.
        let f = fs::File::open("/proc/self/status").unwrap();
        assert!(open_fds(me).unwrap() >= 1);
        drop(f);
        assert!(open_fds(u32::MAX).is_err());
    }

    #[test]
    fn the_split_adds_up_and_never_runs_backwards() {
        // Counts are not asserted: this machine's kernel reported no context
        // switches for any process while this was written.
        let me = std::process::id();
        let before = usage_of(me);
        thread::sleep(Duration::from_millis(20));
        let after = usage_of(me);
        assert_eq!(after.cpu_ticks, after.user_ticks + after.sys_ticks);
        let d = after.since(&before);
        assert_eq!(d.cpu_ticks, d.user_ticks + d.sys_ticks);
        assert_eq!(d.switches(), d.voluntary_switches + d.involuntary_switches);
        let back = before.since(&after);
        assert_eq!(back.voluntary_switches, 0);
        assert_eq!(back.user_ticks, 0);
    }
}

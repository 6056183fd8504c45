//! The pinned mode (`--pin`): the proxy under test on one CPU, everything else
//! (wrk, the upstream app, the simulator, Redis, this harness) on another, so that
//! a proxy's figures are its own cost, not the cost of being preempted by the
//! load generator. Which CPUs ([`plan`]) and how ([`Pinning::apply_to`],
//! [`Pinning::pin_harness`]): CPU affinity, which children and threads inherit.

use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The two CPUs of a pinned run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinning {
    /// Where the proxy under test runs, all its processes and threads.
    pub proxy: usize,
    /// Where the rest runs: wrk, the upstream app, the simulator, Redis and the
    /// harness itself.
    pub rest: usize,
}

impl fmt::Display for Pinning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pinned: each proxy (all its processes and threads) on CPU {}; wrk, the upstream \
             app, the simulator, Redis and the harness on CPU {}",
            self.proxy, self.rest
        )
    }
}

/// The CPUs of a pinned run among those this process may use: the first for the
/// rest, the second for the proxy (the first is the one most likely to take the
/// machine's interrupts, which belong with the rest). One CPU is an error: there is
/// no "other core" to move the load generator to.
pub fn plan(allowed: &[usize]) -> Result<Pinning, String> {
    match allowed {
        [rest, proxy, ..] => Ok(Pinning {
            proxy: *proxy,
            rest: *rest,
        }),
        _ => Err(format!(
            "--pin needs at least 2 CPUs (one for the proxy under test, one for the load \
             generator and the rest), and this process may use {}: {allowed:?}",
            allowed.len()
        )),
    }
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Result<Vec<usize>, String> {
    let status =
        fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or("/proc/self/status has no Cpus_allowed_list")?;
    parse_cpu_list(list.trim())
}

/// A kernel CPU list such as `0-2,5` (as in `/proc/PID/status`).
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("not a CPU list: {list:?}");
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        let from: usize = from.trim().parse().map_err(|_| bad())?;
        let to: usize = to.trim().parse().map_err(|_| bad())?;
        if to < from {
            return Err(bad());
        }
        out.extend(from..=to);
    }
    Ok(out)
}

impl Pinning {
    /// Moves the calling thread to the rest's CPU. Called first thing on the main
    /// thread: every thread and child it makes afterwards (the runtime, wrk, the
    /// upstream, the simulator, Redis) inherits the mask.
    pub fn pin_harness(&self) -> Result<(), String> {
        set_affinity(self.rest)
            .map_err(|e| format!("cannot pin the harness to CPU {}: {e}", self.rest))
    }

    /// Makes `cmd`'s process start on the proxy's CPU; its workers and threads
    /// inherit the mask.
    pub fn apply_to(&self, cmd: &mut Command) {
        let cpu = self.proxy;
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed: `set_affinity` makes one system
        // call on a set built on the stack, and allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || set_affinity(cpu));
        }
    }
}

/// Restricts the calling thread to `cpu` (`sched_setaffinity(0, …)`).
fn set_affinity(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is plain bits, valid zeroed; CPU_SET writes inside the
    // set (`cpu` is below its size, checked above); the pointer and size given to
    // the system call are those of this stack value.
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    #[allow(unsafe_code)]
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs allowed to every thread of process `pid` and its descendants, each
/// distinct list once (`/proc/PID/task/*/status`): to check that a pinned
/// server, workers and threads included, stayed where it was put.
pub fn cpus_of_tree(pids: &[u32]) -> Vec<String> {
    let mut lists: Vec<String> = Vec::new();
    for pid in pids {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let text = fs::read_to_string(t.path().join("status")).unwrap_or_default();
            if let Some(l) = text
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            {
                let l = l.trim().to_string();
                if !lists.contains(&l) {
                    lists.push(l);
                }
            }
        }
    }
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cpus_one_for_the_proxy_one_for_the_rest() {
        assert_eq!(plan(&[0, 1]), Ok(Pinning { proxy: 1, rest: 0 }));
        // More CPUs: still one each, the first two allowed (a cgroup or taskset
        // may leave holes).
        assert_eq!(plan(&[2, 5, 7]), Ok(Pinning { proxy: 5, rest: 2 }));
    }

    #[test]
    fn fewer_than_two_cpus_is_an_error_that_says_so() {
        for allowed in [&[][..], &[3][..]] {
            let err = plan(allowed).unwrap_err();
            assert!(err.contains("--pin needs at least 2 CPUs"), "{err}");
        }
    }

    #[test]
    fn reads_kernel_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Ok(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-4,7"), Ok(vec![0, 2, 3, 4, 7]));
        assert_eq!(parse_cpu_list("3"), Ok(vec![3]));
        assert!(parse_cpu_list("1-x").is_err());
        assert!(parse_cpu_list("4-2").is_err());
        assert!(!allowed_cpus().unwrap().is_empty());
    }

    #[test]
    fn a_pinned_command_runs_on_the_proxy_cpu_only() {
        let allowed = allowed_cpus().unwrap();
        // On one CPU the plan is refused; pin to that CPU anyway to test the call.
        let cpu = *allowed.last().unwrap();
        let pinning = Pinning {
            proxy: cpu,
            rest: allowed[0],
        };
        let mut cmd = Command::new("grep");
        cmd.args(["Cpus_allowed_list", "/proc/self/status"]);
        pinning.apply_to(&mut cmd);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.split(':').nth(1).map(str::trim),
            Some(cpu.to_string().as_str()),
            "{text}"
        );
        // And its threads, read from outside.
        let mut child = Command::new("sleep");
        child.arg("5");
        pinning.apply_to(&mut child);
        let mut child = child.spawn().unwrap();
        let lists = cpus_of_tree(&[child.id()]);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(lists, vec![cpu.to_string()]);
    }
}

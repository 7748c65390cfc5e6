//! A throwaway server never outlives the process that started it: interrupted with
//! Ctrl-C (SIGINT) or SIGTERM, the process stops the server, deletes its directory and
//! then dies of the signal; killed outright (SIGKILL), its guard process cleans up after
//! it.
//!
//! The process is this test binary run again ([`helper_process`]) with [`CHILD_ROLE`]
//! set: it starts a server, prints its data directory and waits. The test reads the
//! postmaster's pid from `postmaster.pid`, signals the process, and checks that no
//! postmaster of that directory remains and that the directory is gone.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::{require_server_binaries, TempPostgres};
use crate::support::{helper_process, test_path};

/// Makes [`throwaway_server_process`] start a server and wait.
const CHILD_ROLE: &str = "PGLANE_DEVDB_CHILD";

/// What the child prints once its server runs, followed by the data directory.
const STARTED: &str = "pglane devdb child data=";

/// Not a test: the interrupted process's `main`. Passes at once in a normal test run.
#[test]
fn throwaway_server_process() {
    if std::env::var_os(CHILD_ROLE).is_none() {
        return;
    }
    let pg = TempPostgres::start().expect("a throwaway server");
    println!("{STARTED}{}", pg.data());
    // Bounded, so a child whose test died before signalling it still goes away.
    std::thread::sleep(Duration::from_secs(120));
    drop(pg);
}

#[test]
fn ctrl_c_stops_the_throwaway_server_and_deletes_its_directory() {
    interrupt_and_check("INT", 2, Some("Ctrl-C"));
}

#[test]
fn sigterm_stops_the_throwaway_server_and_deletes_its_directory() {
    interrupt_and_check("TERM", 15, Some("SIGTERM"));
}

#[test]
fn sigkill_leaves_no_throwaway_server_behind() {
    interrupt_and_check("KILL", 9, None);
}

/// Starts a child that starts a server, sends it `signal` (number `signo`), and checks
/// the cleanup; `announced` is what the child's signal handler says while cleaning up
/// (`None` for SIGKILL, which no handler sees: the guard process cleans up).
fn interrupt_and_check(signal: &str, signo: i32, announced: Option<&str>) {
    require_server_binaries();
    let entry = test_path(module_path!(), "throwaway_server_process");
    let mut child = helper_process(&entry, CHILD_ROLE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let (started, stderr) = watch_output(&mut child);
    let data = match started.recv_timeout(Duration::from_secs(120)) {
        Ok(data) => PathBuf::from(data),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child never started its server; its stderr:\n{}",
                stderr.lock().unwrap().join("\n")
            );
        }
    };
    let dir = data.parent().expect("the server's directory").to_path_buf();
    let postmaster = postmaster_pid(&data);
    assert!(alive(postmaster), "postmaster {postmaster} is not running");

    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal} {}", child.id());
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(
        status.signal() == Some(signo) || status.code() == Some(128 + signo),
        "the child should end as SIG{signal} does; it ended with {status}"
    );

    // The handler cleans up before the process dies; the guard process (SIGKILL) just
    // after. Either way, within a bound.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (alive(postmaster) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(postmaster),
        "postmaster {postmaster} is still running"
    );
    assert!(!dir.exists(), "{} is still there", dir.display());
    if let Some(announced) = announced {
        let log = stderr.lock().unwrap().join("\n");
        assert!(
            log.contains(&format!("pglane: {announced}: stopping 1 throwaway")),
            "the signal handler did not clean up; the child's stderr:\n{log}"
        );
    }
}

/// Reads the child's output on threads: the data directory once the server runs, and
/// every stderr line.
fn watch_output(child: &mut Child) -> (mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, data)) = line.split_once(STARTED) {
                let _ = tx.send(data.trim().to_string());
            }
        }
    });
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    (rx, log)
}

fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end within {timeout:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The postmaster's pid: the first line of `postmaster.pid` in the data directory.
fn postmaster_pid(data: &Path) -> u32 {
    let pidfile = data.join("postmaster.pid");
    let text = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("reading {}: {e}", pidfile.display()));
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", pidfile.display()))
}

/// Whether process `pid` runs (a zombie, exited but not yet reaped by its parent, does
/// not: the postmaster's parent is init, which may reap late inside a container).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

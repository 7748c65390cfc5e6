//! Making sure a throwaway server never outlives the process that started it.
//!
//! A [`TempPostgres`](super::TempPostgres) stops its server and deletes its directory on
//! drop, but a process rarely drops everything: Ctrl-C and SIGTERM end it at once, and a
//! server kept in a `static` (as a test suite's shared server is) is never dropped at
//! all. `pg_ctl` starts the postmaster in a session of its own, so it survives all of
//! these, with a data directory of about 40 MB. Two guards cover them:
//!
//! - **A registry and a signal handler.** Every live server is registered; the first
//!   start installs a handler for SIGINT and SIGTERM that stops every registered server,
//!   deletes its directory, and then lets the signal end the process as it would have
//!   (a shell reports status 130 or 143).
//! - **A reaper per server**, for the ends no handler sees (SIGKILL, an `exit` that skips
//!   destructors, a static never dropped): a small `sh` process, in a process group of
//!   its own and deaf to terminal signals, that waits for its stdin to close. Only this
//!   process holds the other end of that pipe, and the kernel closes it however the
//!   process ends; the reaper then stops the server and deletes the directory. When the
//!   server is dropped normally, the reaper finds nothing left to do.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};

use signal_hook::consts::{SIGINT, SIGTERM};

/// A live server, as the signal handler and the reaper see it.
#[derive(Debug)]
struct Live {
    /// The server's directory (its data directory is `dir/data`).
    dir: PathBuf,
    /// How to stop it: a command line for `pg_ctl stop`.
    stop: Vec<String>,
    /// The reaper, whose stdin is the pipe only this process holds.
    reaper: Option<Child>,
}

/// Servers started by this process and not yet dropped.
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<Live>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reaper's script: `$1` is the directory to delete, the rest the command that stops
/// the server. It ignores terminal signals (the process it guards handles those, and a
/// Ctrl-C reaches the whole foreground process group), waits for EOF on stdin, then
/// cleans up.
const REAPER: &str = r#"trap '' INT TERM HUP QUIT
while read -r _; do :; done
dir="$1"; shift
"$@" >/dev/null 2>&1
rm -rf "$dir"
"#;

/// Registers the server in `dir`, stopped by `stop` (a command line), and makes sure
/// the signal handler is installed.
pub(super) fn register(dir: &Path, stop: Vec<String>) {
    install_signal_handler();
    let reaper = Command::new("sh")
        .arg("-c")
        .arg(REAPER)
        .arg("pglane-devdb-reaper")
        .arg(dir)
        .args(&stop)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let reaper = match reaper {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!(
                "pglane: cannot start the cleanup guard of {} ({e}); if this process is \
                 killed, stop that server and delete the directory by hand",
                dir.display()
            );
            None
        }
    };
    live().push(Live {
        dir: dir.to_path_buf(),
        stop,
        reaper,
    });
}

/// Forgets the server in `dir` once it is stopped and deleted: its reaper is released
/// (it finds nothing left to do) and waited for.
pub(super) fn forget(dir: &Path) {
    let gone: Vec<Live> = {
        let mut live = live();
        let (gone, kept) = std::mem::take(&mut *live)
            .into_iter()
            .partition(|l| l.dir == dir);
        *live = kept;
        gone
    };
    for l in gone {
        release(l.reaper);
    }
}

/// Closes a reaper's stdin and waits for it to finish.
fn release(reaper: Option<Child>) {
    if let Some(mut child) = reaper {
        drop(child.stdin.take());
        let _ = child.wait();
    }
}

static HANDLER: Once = Once::new();

/// Installs, once per process, the handler that cleans up on SIGINT and SIGTERM.
fn install_signal_handler() {
    HANDLER.call_once(|| {
        let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("pglane: cannot watch for Ctrl-C and SIGTERM ({e})");
                return;
            }
        };
        let watcher = std::thread::Builder::new()
            .name("pglane-devdb-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    stop_all_and_die(signal);
                }
            });
        if let Err(e) = watcher {
            eprintln!("pglane: cannot watch for Ctrl-C and SIGTERM ({e})");
        }
    });
}

/// Stops every registered server, deletes its directory, and ends the process the way
/// `signal` would have.
fn stop_all_and_die(signal: i32) -> ! {
    // Held until the process ends: a server started from now on waits here instead of
    // starting unguarded.
    let mut live = live();
    let name = if signal == SIGINT {
        "Ctrl-C"
    } else {
        "SIGTERM"
    };
    if !live.is_empty() {
        eprintln!(
            "pglane: {name}: stopping {} throwaway PostgreSQL server(s)",
            live.len()
        );
    }
    std::thread::scope(|s| {
        for l in live.iter_mut() {
            s.spawn(move || {
                stop(&l.stop);
                let _ = std::fs::remove_dir_all(&l.dir);
                release(l.reaper.take());
            });
        }
    });
    // Die of the signal itself, so the parent sees the conventional status; should that
    // fail, exit with the status a shell would report.
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    std::process::exit(128 + signal)
}

/// Runs a stop command line, ignoring its outcome (the server may be down already).
fn stop(command: &[String]) {
    if let Some((program, args)) = command.split_first() {
        let _ = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

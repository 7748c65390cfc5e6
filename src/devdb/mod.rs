//! A throwaway PostgreSQL server for demos, tests and fault injection (feature
//! `test-util`).
//!
//! [`database_url`] answers the URL to use: `DATABASE_URL` if set, else the local
//! default, else, when nothing answers there but PostgreSQL's server binaries are
//! installed, a private server started in a temporary directory for the life of the
//! process. [`TempPostgres`] is that server; fault tests also use it directly to stop,
//! restart and reconfigure a server without disturbing anyone else.
//!
//! A throwaway server never outlives its process: it is stopped and its directory
//! deleted when it is dropped, on Ctrl-C and SIGTERM (the first server started installs
//! a handler that cleans up, then lets the signal end the process), and, through a small
//! guard process, when the process is killed or exits without dropping it.

mod cleanup;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use crate::admin::DEFAULT_DATABASE_URL;

/// A PostgreSQL server in a temporary directory, on its own port, stopped and deleted on
/// drop (and when the process is interrupted or killed: see the [module](self) docs). As
/// root, the server runs as the `postgres` user (initdb refuses root).
#[derive(Debug)]
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl TempPostgres {
    /// Creates and starts a server (trust auth, user `postgres`, database `postgres`).
    pub fn start() -> Result<Self, String> {
        let pg = Self::init(&[])?;
        pg.start_server()?;
        Ok(pg)
    }

    /// Creates a data directory without starting it; `extra_conf` lines are appended to
    /// `postgresql.conf`.
    pub fn init(extra_conf: &[&str]) -> Result<Self, String> {
        let bin = server_binaries().ok_or_else(|| {
            "PostgreSQL server binaries not found: no `initdb` on the PATH or under \
             /usr/lib/postgresql/*/bin (Debian/Ubuntu: `apt-get install postgresql`)"
                .to_string()
        })?;
        let pg = Self::create(bin)?;
        let port = pg.port;
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 200\n",
            pg.dir.display()
        );
        for line in extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = Path::new(&pg.data()).join("postgresql.conf");
        let mut current = std::fs::read_to_string(&conf_path).map_err(|e| e.to_string())?;
        current.push_str(&conf);
        std::fs::write(&conf_path, current).map_err(|e| e.to_string())?;
        Ok(pg)
    }

    /// A server whose data directory is a base backup of `primary`, configured as its
    /// streaming standby (`pg_basebackup -R`), not yet started.
    pub fn standby_of(primary: &TempPostgres) -> Result<Self, String> {
        let pg = Self::create(primary.bin.clone())?;
        pg.base_backup_of(primary)?;
        Ok(pg)
    }

    /// An empty server directory on a free port, registered for cleanup at once, so
    /// that from here on every way out (an error below, a drop, a signal, the process
    /// ending) deletes it.
    fn create(bin: PathBuf) -> Result<Self, String> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "pglane-pg-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let pg = TempPostgres { dir, bin, port };
        cleanup::register(&pg.dir, pg.command_line("pg_ctl", &pg.stop_args()));
        pg.chown()?;
        Ok(pg)
    }

    /// Replaces this (stopped) server's data directory with a base backup of `primary`
    /// and makes it `primary`'s streaming standby, keeping its port: how a failed
    /// primary rejoins as a standby of the server promoted in its place.
    pub fn rebuild_as_standby_of(&self, primary: &TempPostgres) -> Result<(), String> {
        let data = self.dir.join("data");
        std::fs::remove_dir_all(&data).map_err(|e| format!("removing {}: {e}", data.display()))?;
        self.base_backup_of(primary)
    }

    fn base_backup_of(&self, primary: &TempPostgres) -> Result<(), String> {
        self.run(
            "pg_basebackup",
            &[
                "-D",
                &self.data(),
                "-R",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ],
        )?;
        let conf_path = Path::new(&self.data()).join("postgresql.conf");
        let mut current = std::fs::read_to_string(&conf_path).map_err(|e| e.to_string())?;
        current.push_str(&format!(
            "\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.dir.display()
        ));
        std::fs::write(&conf_path, current).map_err(|e| e.to_string())
    }

    /// Writes a file into the data directory, owned by the server's user and with
    /// permissions `mode` (a server key must be `0o600`), and returns its path. Made for
    /// certificates and keys named in `init`'s `extra_conf` (`ssl_cert_file = 'server.crt'`
    /// is read relative to the data directory).
    pub fn write_data_file(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(&self.data()).join(name);
        std::fs::write(&path, contents).map_err(|e| format!("writing {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        self.chown()?;
        Ok(path)
    }

    /// Replaces `pg_hba.conf` (read at start, or at once with [`reload`](Self::reload)).
    pub fn write_hba(&self, contents: &str) -> Result<(), String> {
        self.write_data_file("pg_hba.conf", contents.as_bytes(), 0o600)
            .map(|_| ())
    }

    /// Makes the running server re-read its configuration files.
    pub fn reload(&self) -> Result<(), String> {
        self.run("pg_ctl", &["-D", &self.data(), "reload"])
            .map(|_| ())
    }

    /// The server's log so far (`log_connections = on` in `init`'s `extra_conf` makes
    /// it list every connection, for counting reconnect attempts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `postgres` as user `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The data directory.
    pub fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-w", "-t", "60", "start"],
        )
        .map(|_| ())
    }

    /// Stops the server (`mode`: `smart`, `fast` or `immediate`).
    pub fn stop_server(&self, mode: &str) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
        )
        .map(|_| ())
    }

    /// Restarts the server (`mode` as for [`stop_server`](Self::stop_server)).
    pub fn restart_server(&self, mode: &str) -> Result<(), String> {
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "restart",
            ],
        )
        .map(|_| ())
    }

    /// Promotes a standby to primary.
    pub fn promote(&self) -> Result<(), String> {
        self.run("pg_ctl", &["-D", &self.data(), "-w", "-t", "60", "promote"])
            .map(|_| ())
    }

    fn chown(&self) -> Result<(), String> {
        if is_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres", &self.dir.display().to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            check("chown", out)?;
        }
        Ok(())
    }

    /// Runs a server binary, as `postgres` when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let line = self.command_line(program, &args);
        let out = Command::new(&line[0])
            .args(&line[1..])
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("running {}: {e}", self.bin.join(program).display()))?;
        check(program, out)
    }

    /// The command line that runs a server binary: through `runuser -u postgres` when
    /// we are root (initdb refuses root, and the files must belong to `postgres`).
    fn command_line(&self, program: &str, args: &[String]) -> Vec<String> {
        let exe = self.bin.join(program).display().to_string();
        let mut line = if is_root() {
            vec![
                "runuser".into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
                exe,
            ]
        } else {
            vec![exe]
        };
        line.extend(args.iter().cloned());
        line
    }

    /// `pg_ctl` arguments that stop the server at once, without a shutdown checkpoint:
    /// a throwaway server's data is not worth the wait.
    fn stop_args(&self) -> Vec<String> {
        [
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "-t",
            "20",
            "stop",
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let args = self.stop_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = self.run("pg_ctl", &args);
        let _ = std::fs::remove_dir_all(&self.dir);
        cleanup::forget(&self.dir);
    }
}

fn check(what: &str, out: Output) -> Result<Output, String> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The directory of PostgreSQL's server binaries (`initdb`, `pg_ctl`, `pg_basebackup`),
/// which [`TempPostgres`] needs: `initdb`'s directory on the `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin`. `None` when they are not installed.
pub fn server_binaries() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("initdb");
            if candidate.exists() {
                // Follow a symlink (Debian links /usr/local/bin/initdb) to find pg_ctl too.
                let real = std::fs::canonicalize(&candidate).unwrap_or(candidate);
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Whether something answers at `url` within `timeout`.
pub async fn reachable(url: &str, timeout: Duration) -> bool {
    let Ok(config) = url.parse::<crate::ConnectOptions>() else {
        return false;
    };
    matches!(
        tokio::time::timeout(timeout, config.connect()).await,
        Ok(Ok(_))
    )
}

/// The database to use, and the throwaway server behind it if one had to be started
/// (keep it alive as long as the URL is used). `DATABASE_URL` wins when set; a URL that
/// does not answer is an error naming it, never silently replaced.
pub async fn database_url() -> Result<(String, Option<TempPostgres>), String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok((url, None));
    }
    if reachable(DEFAULT_DATABASE_URL, Duration::from_secs(3)).await {
        return Ok((DEFAULT_DATABASE_URL.to_string(), None));
    }
    eprintln!(
        "pglane: nothing answers at {DEFAULT_DATABASE_URL}; starting a throwaway PostgreSQL server"
    );
    let pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!("{e}\n(or start PostgreSQL at {DEFAULT_DATABASE_URL}, or set DATABASE_URL)")
        })?;
    Ok((pg.url(), Some(pg)))
}

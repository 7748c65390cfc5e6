//! `pglane`: the operator's command-line tool. Migrates a schema, shows job counts, lists,
//! retries and cancels jobs, and prunes history, straight against the database: no engine
//! or actix system needs to be running.
//!
//! ```text
//! pglane migrate
//! pglane --schema billing stats
//! pglane list --state failed --limit 20
//! pglane retry 42
//! ```

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use pglane::admin::{self, JobState, JobSummary, QueueCounts, DEFAULT_DATABASE_URL};
use pglane::IntoPgConfig;
use tokio_postgres::Client;

/// Operate a pglane job queue: migrate, inspect, retry, cancel, prune.
#[derive(Parser)]
#[command(name = "pglane", version)]
struct Cli {
    /// The database. Multi-host URLs and key=value strings work too.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true,
          default_value = DEFAULT_DATABASE_URL)]
    database_url: String,

    /// The schema holding pglane's tables.
    #[arg(long, global = true, env = "PGLANE_SCHEMA", default_value = "pglane")]
    schema: String,

    /// Longest any one statement may run, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    statement_timeout: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the schema or bring it up to this version (safe to run repeatedly).
    Migrate,
    /// Jobs per queue by state, and how long the oldest due job has waited.
    Stats,
    /// Jobs, newest first.
    List {
        /// Only jobs in this state: available, scheduled, running, completed, failed,
        /// cancelled.
        #[arg(long)]
        state: Option<JobState>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run a failed or cancelled job again, with fresh attempts.
    Retry {
        /// The job's id.
        id: i64,
    },
    /// Cancel a job that has not started yet.
    Cancel {
        /// The job's id.
        id: i64,
    },
    /// Delete finished jobs (completed, failed, cancelled) older than a cut-off.
    Prune {
        /// Delete jobs that finished more than this many seconds ago.
        #[arg(long, default_value_t = 86_400)]
        older_than: u64,
    },
    /// Serve the web dashboard (no engine needed): overview, jobs, lanes, actions.
    Dashboard {
        /// Address to listen on. Anyone who can reach it can act on the jobs unless
        /// `--read-only` is given: keep it on localhost or behind a proxy with auth.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: String,
        /// Show everything, allow no action.
        #[arg(long)]
        read_only: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Dashboard { bind, read_only } = &cli.command {
        // actix-web runs in an actix system of its own.
        return match actix_web::rt::System::new().block_on(dashboard(&cli, bind, *read_only)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pglane: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pglane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pglane: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pglane dashboard`: checks the schema, then serves the dashboard at the root.
async fn dashboard(
    cli: &Cli,
    bind: &str,
    read_only: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = connect(&cli.database_url, cli.statement_timeout).await?;
    admin::ensure_migrated(&client, &cli.schema).await?;
    drop(client);
    let dash = pglane::dashboard::Dashboard::connect(cli.database_url.as_str(), &cli.schema)?
        .read_only(read_only);
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().service(dash.clone().scope("")))
            .workers(2)
            .bind(bind)?;
    for addr in server.addrs() {
        println!(
            "pglane dashboard for schema {} at http://{addr}/",
            cli.schema
        );
    }
    server.run().await?;
    Ok(())
}

async fn run(cli: Cli) -> pglane::Result<ExitCode> {
    let schema = cli.schema.as_str();
    let mut client = connect(&cli.database_url, cli.statement_timeout).await?;
    if !matches!(cli.command, Command::Migrate) {
        admin::ensure_migrated(&client, schema).await?;
    }
    match cli.command {
        Command::Migrate => match pglane::migrate_with(&mut client, schema).await?[..] {
            [] => println!(
                "schema {schema} is up to date (version {})",
                pglane::SCHEMA_VERSION
            ),
            ref v => println!("schema {schema}: applied migrations {v:?}"),
        },
        Command::Stats => print_stats(schema, &admin::queue_counts(&client, schema).await?),
        Command::List { state, limit } => {
            print_jobs(&admin::list(&client, schema, state, limit).await?)
        }
        Command::Retry { id } => {
            return Ok(report(
                admin::retry(&client, schema, id).await?,
                format!("job {id} is queued to run again"),
                format!("job {id} is not failed or cancelled: nothing to retry"),
            ));
        }
        Command::Cancel { id } => {
            return Ok(report(
                admin::cancel(&client, schema, id).await?,
                format!("job {id} cancelled"),
                format!("job {id} was not cancelled: it is running, finished, or unknown"),
            ));
        }
        Command::Dashboard { .. } => unreachable!("served in main"),
        Command::Prune { older_than } => {
            let older_than = Duration::from_secs(older_than);
            let n = admin::prune(&client, schema, older_than).await?;
            println!("pruned {n} finished jobs older than {}", human(older_than));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects with a connect timeout and a statement timeout, so a stuck server or a lock
/// wait cannot hang the tool.
async fn connect(url: &str, statement_timeout_s: u64) -> pglane::Result<Client> {
    let mut config = url.into_pg_config()?;
    let pg = config.pg_config_mut();
    pg.connect_timeout(Duration::from_secs(5));
    if pg.get_application_name().is_none() {
        pg.application_name("pglane cli");
    }
    let client = config.connect().await?;
    admin::set_statement_timeout(&client, Duration::from_secs(statement_timeout_s)).await?;
    Ok(client)
}

/// Prints the outcome of retry or cancel; exits 1 when nothing was changed, for scripts.
fn report(done: bool, yes: String, no: String) -> ExitCode {
    if done {
        println!("{yes}");
        ExitCode::SUCCESS
    } else {
        eprintln!("{no}");
        ExitCode::FAILURE
    }
}

fn print_stats(schema: &str, queues: &[QueueCounts]) {
    if queues.is_empty() {
        println!("schema {schema}: no jobs");
        return;
    }
    println!(
        "{:<16} {:>10} {:>10} {:>8} {:>10} {:>8} {:>10}  oldest wait",
        "queue", "available", "scheduled", "running", "completed", "failed", "cancelled"
    );
    for q in queues {
        let s = q.states;
        let wait = q.oldest_wait.map_or_else(|| "-".to_string(), human);
        println!(
            "{:<16} {:>10} {:>10} {:>8} {:>10} {:>8} {:>10}  {wait}",
            q.queue, s.available, s.scheduled, s.running, s.completed, s.failed, s.cancelled
        );
    }
}

fn print_jobs(jobs: &[JobSummary]) {
    if jobs.is_empty() {
        println!("no jobs");
        return;
    }
    println!(
        "{:>10}  {:<9}  {:<24} {:<12} {:>5} {:>9}  {:<12}  last error",
        "id", "state", "kind", "queue", "prio", "attempts", "run at"
    );
    for j in jobs {
        let error = j.last_error.as_deref().unwrap_or("");
        let error: String = error.chars().take(60).collect();
        let line = format!(
            "{:>10}  {:<9}  {:<24} {:<12} {:>5} {:>9}  {:<12}  {}",
            j.id,
            j.state.as_str(),
            j.kind,
            j.queue,
            j.priority,
            format!("{}/{}", j.attempt, j.max_attempts),
            relative(j.run_at),
            error.replace('\n', " ")
        );
        println!("{}", line.trim_end());
    }
}

/// `3m ago` or `in 20s`, from this machine's clock.
fn relative(t: SystemTime) -> String {
    match t.duration_since(SystemTime::now()) {
        Ok(ahead) => format!("in {}", human(ahead)),
        Err(e) => format!("{} ago", human(e.duration())),
    }
}

/// A short human duration: `850ms`, `12s`, `5m`, `3h`, `2d`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["pglane", "list", "--state", "failed", "--schema", "s"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::List {
                state: Some(JobState::Failed),
                limit: 50
            }
        ));
        assert_eq!(cli.schema, "s");
        assert!(Cli::try_parse_from(["pglane", "list", "--state", "done"]).is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(75)), "1m");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 5)), "2d");
    }
}

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
use pglane::{CancelOutcome, IntoPgConfig};
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
    /// Cancel a job: at once if it has not started; if it is running (in any process),
    /// its worker is told, its handler may clean up, and it ends `cancelled`.
    Cancel {
        /// The job's id.
        id: i64,
        /// Why, recorded in the job's history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete finished jobs (completed, failed, cancelled) older than a cut-off.
    Prune {
        /// Delete jobs that finished more than this many seconds ago.
        #[arg(long, default_value_t = 86_400)]
        older_than: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pglane: {e}");
            ExitCode::FAILURE
        }
    }
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
        Command::Cancel { id, reason } => {
            let by = format!("pglane cli ({})", std::env::var("USER").unwrap_or_default());
            return match admin::cancel(&client, schema, id, reason.as_deref(), &by).await {
                Ok(CancelOutcome::Requested) => {
                    println!("job {id} is running: cancel requested, its worker was told");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(_) => {
                    println!("job {id} cancelled");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ pglane::Error::NotCancellable { .. }) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e),
            };
        }
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

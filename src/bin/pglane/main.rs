//! `pglane`: the operator's command-line tool. Migrates a schema, shows job counts, lists,
//! shows, retries and cancels jobs, and prunes history, straight against the database:
//! no engine or actix system needs to be running.
//!
//! ```text
//! pglane migrate
//! pglane --schema billing stats
//! pglane list --state failed --limit 20
//! pglane show 42
//! pglane retry 42
//! ```

mod print;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use pglane::admin::{self, JobState, DEFAULT_DATABASE_URL};
use pglane::{CancelOutcome, IntoPgConfig};
use tokio_postgres::Client;

/// Exit statuses, as `--help` states them.
const DONE: u8 = 0;
const NOTHING_CHANGED: u8 = 1;
const DATABASE_OR_CONFIG: u8 = 3;

const EXIT_CODES: &str = "Exit status:
  0  done
  1  nothing changed or nothing found (retry/cancel of a job in the wrong state or
     unknown, show of an unknown id)
  2  usage error (bad command or option)
  3  database or configuration error (cannot connect, bad URL, schema not migrated…)";

/// Operate a pglane job queue: migrate, inspect, retry, cancel, prune.
#[derive(Parser)]
#[command(name = "pglane", version, after_help = EXIT_CODES)]
struct Cli {
    /// The database: a postgres:// URL or key=value string; multi-host and TLS
    /// parameters (sslmode, sslrootcert, sslcert, sslkey) work too.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true,
          default_value = DEFAULT_DATABASE_URL)]
    database_url: String,

    /// The schema holding pglane's tables.
    #[arg(
        long,
        global = true,
        env = "PGLANE_SCHEMA",
        hide_env_values = true,
        default_value = "pglane"
    )]
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
    Migrate {
        /// Print the SQL instead of running it, for sqlx, refinery, Flyway…: run it in
        /// one transaction. Needs no database.
        #[arg(long)]
        print_sql: bool,
        /// With --print-sql: only the migrations after this version (the schema's
        /// current one), to add as the next step of an existing migration history.
        #[arg(long, default_value_t = 0, requires = "print_sql")]
        after: i32,
    },
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
    /// One job: its args, state history and errors.
    Show {
        /// The job's id.
        id: i64,
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
    /// Periodic jobs: cron, time zone, policy for missed ticks, active or not (a
    /// schedule no running engine declares is inactive), last and next run.
    Schedules,
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
            Ok(()) => ExitCode::from(DONE),
            Err(e) => {
                eprintln!("pglane: {e}");
                ExitCode::from(DATABASE_OR_CONFIG)
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
            return ExitCode::from(DATABASE_OR_CONFIG);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pglane: {e}");
            ExitCode::from(DATABASE_OR_CONFIG)
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

async fn run(cli: Cli) -> pglane::Result<u8> {
    let schema = cli.schema.as_str();
    if let Command::Migrate {
        print_sql: true,
        after,
    } = cli.command
    {
        print!("{}", pglane::migration_sql(schema, after)?);
        return Ok(DONE);
    }
    let mut client = connect(&cli.database_url, cli.statement_timeout).await?;
    if !matches!(cli.command, Command::Migrate { .. }) {
        admin::ensure_migrated(&client, schema).await?;
    }
    let now = SystemTime::now();
    match cli.command {
        Command::Migrate { .. } => match pglane::migrate_with(&mut client, schema).await?[..] {
            [] => println!(
                "schema {schema} is up to date (version {})",
                pglane::SCHEMA_VERSION
            ),
            ref v => println!("schema {schema}: applied migrations {v:?}"),
        },
        Command::Stats => println!(
            "{}",
            print::stats(schema, &admin::queue_counts(&client, schema).await?)
        ),
        Command::List { state, limit } => println!(
            "{}",
            print::jobs(&admin::list(&client, schema, state, limit).await?, now)
        ),
        Command::Show { id } => match admin::show(&client, schema, id).await? {
            Some(job) => println!("{}", print::job(&job, now)),
            None => return Ok(missing(id)),
        },
        Command::Retry { id } => {
            if admin::retry(&client, schema, id).await? {
                println!("job {id} is queued to run again");
            } else {
                return unchanged(
                    &client,
                    schema,
                    id,
                    "only failed or cancelled jobs can be retried",
                )
                .await;
            }
        }
        Command::Cancel { id, reason } => {
            let by = format!("pglane cli ({})", std::env::var("USER").unwrap_or_default());
            match admin::cancel(&client, schema, id, reason.as_deref(), &by).await {
                Ok(CancelOutcome::Requested) => {
                    println!("job {id} is running: cancel requested, its worker was told")
                }
                Ok(_) => println!("job {id} cancelled"),
                Err(e @ pglane::Error::NotCancellable { .. }) => {
                    return match admin::show(&client, schema, id).await? {
                        None => Ok(missing(id)),
                        Some(_) => {
                            eprintln!("{e}; nothing changed");
                            Ok(NOTHING_CHANGED)
                        }
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Command::Schedules => println!(
            "{}",
            print::schedules(&admin::schedules(&client, schema).await?, now)
        ),
        Command::Dashboard { .. } => unreachable!("served in main"),
        Command::Prune { older_than } => {
            let older_than = Duration::from_secs(older_than);
            let n = admin::prune(&client, schema, older_than).await?;
            println!(
                "pruned {n} finished jobs older than {}",
                print::human(older_than)
            );
        }
    }
    Ok(DONE)
}

/// Says why retry or cancel changed nothing: the job does not exist, or its state.
async fn unchanged(client: &Client, schema: &str, id: i64, rule: &str) -> pglane::Result<u8> {
    match admin::show(client, schema, id).await? {
        None => Ok(missing(id)),
        Some(job) => {
            eprintln!("job {id} is {}: {rule}; nothing changed", job.summary.state);
            Ok(NOTHING_CHANGED)
        }
    }
}

fn missing(id: i64) -> u8 {
    eprintln!("job {id} does not exist (never enqueued, or pruned)");
    NOTHING_CHANGED
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
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains("3  database or configuration error"),
            "{help}"
        );
    }
}

//! The `framehouse` binary: parses the command line, then either loads settings and
//! hands over to the `server` crate, or runs a client command (`cli` crate).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use server::settings::{DatabaseOverride, Overrides, Role, Settings};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "framehouse",
    version,
    about = "Self-hosted media platform for images and video"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalArgs {
    /// TOML configuration file (overridden by FRAMEHOUSE_… variables and flags).
    #[arg(long, global = true, env = "FRAMEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory: SQLite file, local objects, temp files [default: ./data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://… [default: SQLite in the data dir].
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and run workers and the scheduler.
    Serve {
        /// Roles to run: all, or a comma-separated list of api, worker, scheduler.
        #[arg(long)]
        roles: Option<String>,
    },
    /// Print the effective configuration (secrets masked).
    Config,
    /// Run database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (e.g. the first admin).
    Create {
        #[arg(long)]
        username: String,
        /// The password; prefer --password-stdin so it stays out of shell history.
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        email: Option<String>,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
    },
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    let cli = Cli::parse();
    if let Command::Client(command) = cli.command {
        // A client of some server: no settings, no tracing, its own exit codes.
        let runtime = tokio::runtime::Runtime::new()?;
        std::process::exit(runtime.block_on(cli::run(command)));
    }
    let roles = match &cli.command {
        Command::Serve { roles: Some(text) } => {
            Some(Role::parse_list(text).map_err(|e| anyhow::anyhow!(e))?)
        }
        _ => None,
    };
    let overrides = Overrides {
        listen: cli.global.listen.clone(),
        data_dir: cli.global.data_dir.clone(),
        roles,
        database: cli
            .global
            .database_url
            .clone()
            .map(|url| DatabaseOverride { url }),
    };
    let settings = Settings::load(cli.global.config.as_deref(), &overrides)
        .context("loading configuration")?;
    init_tracing();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli.command, settings))
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => {
            let app = server::Application::build(settings).await?;
            let shutdown = CancellationToken::new();
            server::cancel_on_signal(shutdown.clone());
            app.run_until_stopped(shutdown).await
        }
        Command::Config => {
            print!("{}", settings.to_masked_toml());
            Ok(())
        }
        Command::Migrate => {
            let db = server::kernel::db::Db::connect(&settings.database_url(), 1).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(_) => unreachable!("client commands return before settings load"),
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    password,
                    password_stdin,
                    email,
                    admin,
                },
        } => {
            let password = match (password, password_stdin) {
                (Some(p), _) => p,
                (None, true) => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text)?;
                    text.trim_end_matches(['\r', '\n']).to_string()
                }
                (None, false) => anyhow::bail!("give --password or --password-stdin"),
            };
            let db = server::kernel::db::Db::connect(&settings.database_url(), 2).await?;
            db.migrate().await?;
            let new = server::identity::NewUser {
                username,
                password: Some(password),
                email,
                // The operator typed it: as good as verified for linking sign-ins.
                email_verified: true,
                is_admin: admin,
            };
            let user = server::identity::create_user(&db, &settings.auth, new)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", user.id);
            Ok(())
        }
    }
}

/// libvips allocates image buffers from many threads; glibc gives each thread an arena of
/// its own and keeps what is freed in it, so the resident size grows to several times
/// the working set (measured under transform load: 875 MiB with the default, 485 MiB
/// with two arenas). Must run before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FRAMEHOUSE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = std::env::var("FRAMEHOUSE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

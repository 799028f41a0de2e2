//! `reel serve`: the services binary, plus title import and account creation.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use reel_services::{AppState, Config};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ServeAction {
    /// Register a published title (its `title.json`) in the catalog, with its keys.
    Import {
        /// Where the title was published: `file://PATH`, a folder, or `s3://bucket/prefix`.
        url: String,
        /// The title's keys (a CPIX file, as `reel run` writes with `keys_out`).
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Create an account. The password is read from REEL_PASSWORD, else from standard input.
    Account {
        email: String,
        /// viewer or admin (content ops).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// mobile, basic, standard or premium.
        #[arg(long, default_value = "standard")]
        plan: String,
        /// Succeed without change when the account already exists.
        #[arg(long)]
        exists_ok: bool,
    },
}

pub fn run(config: Config, action: Option<ServeAction>) -> Result<()> {
    let json_logs = action.is_none();
    let filter = tracing_subscriber::EnvFilter::try_from_env("REEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if json_logs {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let state = AppState::open(&config).await?;
        match action {
            None => reel_services::serve(state).await?,
            Some(ServeAction::Import { url, keys }) => {
                let cpix = match &keys {
                    Some(path) => Some(
                        std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    ),
                    None => None,
                };
                let origin = keys
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let report = reel_services::catalog::import_title(
                    &state,
                    &url,
                    cpix.as_deref().map(|c| (c, origin.as_str())),
                )
                .await?;
                println!(
                    "imported title {} ({} renditions, {} keys) from {url}",
                    report["id"].as_str().unwrap_or("?"),
                    report["renditions"],
                    report["keys"]
                );
            }
            Some(ServeAction::Account {
                email,
                role,
                plan,
                exists_ok,
            }) => {
                let password = match std::env::var("REEL_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        let mut line = String::new();
                        std::io::stdin()
                            .read_line(&mut line)
                            .context("cannot read the password from standard input")?;
                        line.trim_end_matches(['\r', '\n']).to_string()
                    }
                };
                if password.is_empty() {
                    bail!("no password: set REEL_PASSWORD or give it on standard input");
                }
                let account = match reel_services::auth::create_account(
                    &state, &email, &password, &role, &plan,
                )
                .await
                {
                    Err(reel_services::ServiceError::Conflict(_)) if exists_ok => {
                        println!("account {email} already exists");
                        return Ok(());
                    }
                    other => other?,
                };
                println!(
                    "created {} account {} on the {} plan",
                    role,
                    account["email"].as_str().unwrap_or("?"),
                    plan
                );
            }
        }
        Ok(())
    })
}

//! `feria`: serve (default), migrate, openapi, platform create, ledger verify, media
//! migrate, seed, bench-baseline.

use anyhow::Context;
use feria::config::{LedgerCommand, MediaCommand, PlatformCommand};
use feria::{Command, Server};

/// mimalloc instead of the system allocator: under a burst of sign-ins glibc kept the
/// freed 19 MiB argon2 blocks of every thread (its mmap threshold grows past them), and the
/// server stayed hundreds of megabytes larger than its work needs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = match feria::config_file::parse() {
        Ok(cli) => cli,
        // clap's own rendering and exit status (help, version, a bad flag).
        Err(feria::config_file::ConfigFileError::Cli(error)) => error.exit(),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    };
    let config = cli.settings.resolve();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", feria::openapi::spec_json()?);
            Ok(())
        }
        Command::Migrate => {
            feria::telemetry::init(config.log_format);
            actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                let applied = db.migrate().await.context("applying migrations")?;
                println!(
                    "{} migration(s) applied on {}{}",
                    applied.len(),
                    db.backend(),
                    if applied.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", applied.join(", "))
                    }
                );
                Ok(())
            })
        }
        Command::Platform {
            command:
                PlatformCommand::Create {
                    name,
                    domain,
                    owner_email,
                },
        } => {
            let _telemetry =
                feria::telemetry::init_to(config.log_format, feria::telemetry::LogTo::Stderr, None);
            actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                db.migrate().await.context("applying migrations")?;
                let created =
                    feria_auth::bootstrap::create_platform(&db, &name, &domain, &owner_email)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("{}", feria_kernel::ApiError::from(e).message)
                        })?;
                println!("{}", serde_json::to_string_pretty(&created)?);
                Ok(())
            })
        }
        Command::Ledger {
            command: LedgerCommand::Verify,
        } => {
            let _telemetry =
                feria::telemetry::init_to(config.log_format, feria::telemetry::LogTo::Stderr, None);
            let report = actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                let mut conn = db.conn().await.context("connecting to the database")?;
                feria_billing::ledger::verify(&mut conn)
                    .await
                    .context("reading the ledger")
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.is_ok() {
                Ok(())
            } else {
                eprintln!("the ledger does not verify");
                std::process::exit(1)
            }
        }
        Command::Media {
            command: MediaCommand::Migrate,
        } => {
            let _telemetry =
                feria::telemetry::init_to(config.log_format, feria::telemetry::LogTo::Stderr, None);
            let report = actix_web::rt::System::new().block_on(async move {
                let store = config
                    .media_store()
                    .context("configuring the media store")?;
                if !store.is_object_store() {
                    anyhow::bail!(
                        "MEDIA_STORE is `file`: name the object store to copy {} into \
                         (MEDIA_STORE=s3://bucket[/prefix], with MEDIA_S3_ENDPOINT and the \
                         AWS_* credentials it needs)",
                        config.media_dir.display()
                    );
                }
                store.check().await.with_context(|| {
                    format!("the media store {} cannot be used", store.describe())
                })?;
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                let mut conn = db.conn().await.context("connecting to the database")?;
                feria_platforms::media::migrate::copy_directory_to_store(
                    &mut conn,
                    &config.media_dir,
                    &store,
                )
                .await
                .context("reading the media rows")
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "{} image(s): {} copied, {} already there, {} failed",
                report.rows,
                report.copied,
                report.already_present,
                report.failed.len()
            );
            if report.is_ok() {
                Ok(())
            } else {
                eprintln!("some images were not migrated (see `failed`)");
                std::process::exit(1)
            }
        }
        Command::Seed(args) => {
            feria::telemetry::init(config.log_format);
            let report = actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                // Contracts' mail goes beside the server's, not into it (S4 reads codes
                // from the server's mail directory).
                let mailer = feria_kernel::mail::Mailer::directory(
                    config.data_dir.join("seed-mail"),
                    &config.mail_from,
                )
                .context("the seed's mail directory")?;
                feria_seed::seed(&db, &args, &config.fees, &mailer).await
            })?;
            eprintln!("seeded in {:.1} s", report.total_seconds);
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::BenchBaseline(args) => {
            feria::telemetry::init(config.log_format);
            let report = actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                feria_seed::baseline(&db, &args).await
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Serve => {
            let telemetry = feria::telemetry::init_to(
                config.log_format,
                feria::telemetry::LogTo::Stdout,
                config.otlp.as_ref(),
            );
            let served = actix_web::rt::System::new().block_on(async move {
                let server = Server::build(config).await?;
                server.run().await.context("serving")
            });
            // After the runtime: the exporter's client blocks while it sends the last spans.
            telemetry.shutdown();
            served
        }
    }
}

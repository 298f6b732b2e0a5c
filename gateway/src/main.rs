//! `feria`: serve (default), migrate, openapi, platform create, ledger verify, media
//! migrate, seed, bench-baseline.

use anyhow::Context;
use feria::config::{KeysCommand, LedgerCommand, MediaCommand, PlatformCommand, SecretsCommand};
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
        Command::Secrets {
            command: SecretsCommand::GenerateKey,
        } => {
            println!("{}", feria_kernel::sealed::generate_key());
            Ok(())
        }
        Command::Secrets {
            command: SecretsCommand::Rotate,
        } => {
            let _telemetry =
                feria::telemetry::init_to(config.log_format, feria::telemetry::LogTo::Stderr, None);
            actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                db.migrate().await.context("applying migrations")?;
                let keys =
                    feria::secrets::keyring(&config.secret_keys, db.backend(), &config.data_dir)?;
                let mut conn = db.conn().await.context("connecting to the database")?;
                let webhooks = feria_events::endpoints::seal_secrets(&mut conn, &keys, true)
                    .await
                    .map_err(|e| anyhow::anyhow!("resealing webhook secrets: {e}"))?;
                let receipt_keys = feria_onchain_entitlements::receipt::seal_keys(&mut conn, &keys)
                    .await
                    .map_err(|e| anyhow::anyhow!("resealing receipt signing keys: {e}"))?;
                // What the old key sealed (and any clear value) must not linger on disk.
                conn.scrub(&[
                    feria_events::endpoints::SEALED_TABLE,
                    feria_onchain_entitlements::receipt::SEALED_TABLE,
                ])
                .await
                .context("rewriting the tables of the sealed secrets")?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "key": keys.current_id(),
                        "webhook_secrets": webhooks,
                        "receipt_keys": receipt_keys,
                    }))?
                );
                Ok(())
            })
        }
        Command::Keys {
            command: KeysCommand::Rotate { platform, mode },
        } => {
            let _telemetry =
                feria::telemetry::init_to(config.log_format, feria::telemetry::LogTo::Stderr, None);
            let modes = match mode.as_str() {
                "live" => vec![feria_kernel::Mode::Live],
                "test" => vec![feria_kernel::Mode::Test],
                "both" => vec![feria_kernel::Mode::Live, feria_kernel::Mode::Test],
                other => anyhow::bail!("--mode is live, test or both, not `{other}`"),
            };
            let platform_id: feria_kernel::PlatformId = platform
                .parse()
                .map_err(|_| anyhow::anyhow!("`{platform}` is not a platform id (plat_...)"))?;
            actix_web::rt::System::new().block_on(async move {
                let db = feria_kernel::Db::connect(&config.db_config())
                    .await
                    .context("connecting to the database")?;
                db.migrate().await.context("applying migrations")?;
                let keys =
                    feria::secrets::keyring(&config.secret_keys, db.backend(), &config.data_dir)?;
                let mut conn = db.conn().await.context("connecting to the database")?;
                feria_platforms::platform::get(&mut conn, &platform_id)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", feria_kernel::ApiError::from(e).message))?;
                let mut rotated = serde_json::Map::new();
                for mode in modes {
                    let tenant = feria_kernel::Tenant::new(platform_id.clone(), mode);
                    let kid = feria_onchain_entitlements::receipt::rotate(
                        &mut conn,
                        &tenant,
                        &keys,
                        config.onchain.receipt_ttl,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("rotating the {mode} receipt key: {e}"))?;
                    rotated.insert(mode.to_string(), kid.into());
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "platform": platform_id.to_string(),
                        "signing_keys": rotated,
                        "old_keys_published_for_secs": config.onchain.receipt_ttl.as_secs(),
                    }))?
                );
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

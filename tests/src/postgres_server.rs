//! A private PostgreSQL server for one test: its own cluster in a temporary directory, on
//! its own port, that the test may stop (as a crash or a clean shutdown) and start again
//! without disturbing the shared server every other test uses.
//!
//! It needs the PostgreSQL server programs (`initdb`, `pg_ctl`; Debian's `postgresql`
//! package, which `.ci/run` installs). PostgreSQL refuses to run as root, so under root the
//! programs run as the `postgres` user.
//!
//! [`PostgresServer::start_new_tls`] makes a cluster that accepts TLS connections only,
//! for the tests of `DATABASE_URL`'s sslmode (tests/tests/postgres_tls.rs);
//! [`PostgresServer::start_new_primary`] and [`PostgresServer::start_replica_of`] a
//! primary and its streaming replica (tests/tests/read_replicas.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

/// How [`PostgresServer::stop`] stops the server.
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// `pg_ctl stop -m immediate`: every process killed at once, as in a crash; the next
    /// start runs crash recovery.
    Crash,
    /// `pg_ctl stop -m fast`: open sessions are terminated, then a clean shutdown.
    Fast,
}

/// A server certificate (with any intermediates after it) and its private key, PEM; a
/// test makes them (with rcgen) and [`PostgresServer::start_new_tls`] installs them.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A running private cluster; stopped and removed on drop.
pub struct PostgresServer {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
    // Holds the cluster's directory; removed after the server has stopped (see `Drop`).
    dir: Option<tempfile::TempDir>,
}

impl PostgresServer {
    /// Creates a cluster (trust authentication, loopback only) and starts it.
    pub fn start_new() -> PostgresServer {
        PostgresServer::start_with(None)
    }

    /// Creates a cluster with `settings` (lines of `postgresql.conf`, such as
    /// `shared_preload_libraries = 'pg_stat_statements'`) and starts it.
    pub fn start_new_with_settings(settings: &str) -> PostgresServer {
        let server = PostgresServer::create(None);
        server.append_settings(settings);
        server.start();
        server
    }

    /// Creates a cluster that speaks TLS only and starts it: `ssl = on` with this PEM
    /// certificate (chain) and key, and a pg_hba.conf of `hostssl` lines alone, so a
    /// plaintext connection is refused with "no pg_hba.conf entry ... no encryption".
    pub fn start_new_tls(tls: &ServerTls) -> PostgresServer {
        PostgresServer::start_with(Some(tls))
    }

    /// Creates a cluster that streaming replicas can follow (`wal_level = replica`, WAL
    /// senders, replication connections from loopback trusted) and starts it; see
    /// [`PostgresServer::start_replica_of`].
    pub fn start_new_primary() -> PostgresServer {
        let server = PostgresServer::create(None);
        std::fs::write(
            server.data_dir.join("pg_hba.conf"),
            "local all all trust\n\
             host all all 127.0.0.1/32 trust\n\
             host all all ::1/128 trust\n\
             local replication all trust\n\
             host replication all 127.0.0.1/32 trust\n\
             host replication all ::1/128 trust\n",
        )
        .expect("pg_hba.conf is writable");
        server.append_settings(
            "wal_level = replica\nmax_wal_senders = 10\nwal_keep_size = '256MB'\n",
        );
        server.start();
        server
    }

    /// A streaming replica (hot standby) of `primary`, made from a base backup of it
    /// (`pg_basebackup -R`, which writes `standby.signal` and `primary_conninfo`) and
    /// started on its own port. `primary` must come from
    /// [`PostgresServer::start_new_primary`].
    pub fn start_replica_of(primary: &PostgresServer) -> PostgresServer {
        let server = PostgresServer::empty();
        server.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &server.data_dir.display().to_string(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-c",
                "fast",
            ],
        );
        server.start();
        server
    }

    /// Runs `sql` with `psql` on `database` of this cluster; its rows, unaligned, one a
    /// line.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U", "postgres", "-d", database, "-X", "-A", "-t", "-c", sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn append_settings(&self, settings: &str) {
        let conf = self.data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push('\n');
        text.push_str(settings);
        std::fs::write(&conf, text).expect("postgresql.conf is writable");
    }

    fn start_with(tls: Option<&ServerTls>) -> PostgresServer {
        let server = PostgresServer::create(tls);
        server.start();
        server
    }

    /// A new cluster (initdb), TLS configured if asked, not started.
    fn create(tls: Option<&ServerTls>) -> PostgresServer {
        let server = PostgresServer::empty();
        server.run(
            "initdb",
            &[
                "-D",
                &server.data_dir.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        if let Some(tls) = tls {
            server.configure_tls(tls);
        }
        server
    }

    /// A temporary directory (owned by the user that runs the cluster) and a free port,
    /// with no cluster yet.
    fn empty() -> PostgresServer {
        let bin_dir = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "the PostgreSQL server programs (initdb, pg_ctl) are not installed: \
                 install Debian's postgresql package"
            )
        });
        let run_as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("feria-pg-")
            .tempdir()
            .expect("temporary directory for the cluster");
        let data_dir = dir.path().join("data");
        if run_as_postgres {
            // The cluster's files belong to the user that runs it.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the cluster directory to postgres"
            );
        }
        let port = free_port();
        PostgresServer {
            bin_dir,
            data_dir,
            port,
            run_as_postgres,
            dir: Some(dir),
        }
    }

    /// Writes the certificate and key beside the configuration, turns `ssl` on and
    /// replaces pg_hba.conf (the Unix socket stays open to the kit's own programs).
    fn configure_tls(&self, tls: &ServerTls) {
        let write = |name: &str, contents: &str| {
            let path = self.data_dir.join(name);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        let cert = write("server.crt", &tls.cert_pem);
        let key = write("server.key", &tls.key_pem);
        write(
            "pg_hba.conf",
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl all all ::1/128 trust\n",
        );
        let conf = self.data_dir.join("postgresql.conf");
        let mut settings = std::fs::read_to_string(&conf).expect("postgresql.conf");
        settings
            .push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, settings).expect("postgresql.conf is writable");
        // PostgreSQL refuses a key others may read, or that belongs to another user.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        if self.run_as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .args([&cert, &key])
                .status()
                .expect("chown runs");
            assert!(status.success(), "cannot give the TLS files to postgres");
        }
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the admin URL of the cluster.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let socket_dir = self.socket_dir();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            socket_dir.display()
        );
        let log = self.dir().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                &self.data_dir.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
            ],
        );
    }

    /// Stops the server; it stays stopped until [`PostgresServer::start`].
    pub fn stop(&self, mode: StopMode) {
        let mode = match mode {
            StopMode::Crash => "immediate",
            StopMode::Fast => "fast",
        };
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-t",
                "60",
                "-m",
                mode,
                "-D",
                &self.data_dir.display().to_string(),
            ],
        );
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|dir| dir.path())
            .expect("the cluster directory exists until drop")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir().to_path_buf()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Whatever state the test left it in; an already stopped server makes pg_ctl fail,
        // which is fine here.
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data_dir)
            .output();
        drop(self.dir.take());
    }
}

/// The newest installed PostgreSQL's program directory.
fn find_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on loopback")
}

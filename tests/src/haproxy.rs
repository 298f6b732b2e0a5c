//! HAProxy (Debian's `haproxy`) in front of Feria servers, for one test: its own
//! configuration in a temporary directory, the frontend on a free port of loopback, run
//! in the foreground and killed (and reaped) on drop.
//!
//! One server behind it (tests/tests/behind_proxy.rs: the client's address in
//! `X-Forwarded-For`) or several, round robin, health-checked
//! (gateway/tests/chaos.rs, which includes this file with `#[path]`: the gateway's tests
//! cannot depend on the kit, which depends on the gateway).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs it.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// What the proxy does beyond passing requests on, round robin.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Appends the client's address to `X-Forwarded-For` (`option forwardfor`).
    pub forward_for: bool,
    /// Checks each server with `GET` of this path every 200 ms and sends nothing to one
    /// that failed its last check (`fall 1 rise 1`); a request whose connection fails is
    /// sent to another server (`retries 3`, `option redispatch`).
    pub health_check: Option<String>,
}

/// A running HAProxy; killed on drop.
pub struct HaProxy {
    child: Child,
    /// `http://127.0.0.1:PORT`, its frontend.
    pub url: String,
    dir: tempfile::TempDir,
}

impl HaProxy {
    /// Starts HAProxy in front of `servers` (`host:port` each) and waits until its
    /// frontend listens. Panics with the package to install when HAProxy is missing.
    pub fn start(servers: &[String], options: &Options) -> HaProxy {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: the tests' load balancer is Debian's HAProxy \
             (apt-get install haproxy)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port on loopback");
        let dir = tempfile::Builder::new()
            .prefix("feria-haproxy-")
            .tempdir()
            .expect("a temporary directory for haproxy");
        let check = match &options.health_check {
            Some(_) => " check inter 200ms fall 1 rise 1",
            None => "",
        };
        let servers: String = servers
            .iter()
            .enumerate()
            .map(|(n, address)| format!("    server node{n} {address}{check}\n"))
            .collect();
        let forward_for = if options.forward_for {
            "    option forwardfor\n"
        } else {
            ""
        };
        let health_check = match &options.health_check {
            Some(path) => format!("    option httpchk GET {path}\n"),
            None => String::new(),
        };
        let config = format!(
            "global\n    maxconn 1000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 3\n    option redispatch 1\n\
             frontend front\n    bind 127.0.0.1:{port}\n{forward_for}    default_backend feria\n\
             backend feria\n    balance roundrobin\n{health_check}{servers}"
        );
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, config).expect("haproxy.cfg is writable");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("haproxy.log");
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("haproxy.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {HAPROXY}: {e}"));
        let mut proxy = HaProxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        proxy.wait_until_listening(port);
        proxy
    }

    fn wait_until_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("haproxy.log"))
                    .unwrap_or_default();
                panic!("haproxy exited ({status}): {log}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "haproxy does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

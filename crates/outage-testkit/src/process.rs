//! Child-process plumbing shared by the service handles.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the service).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the loopback interface can bind an ephemeral port")
}

/// Finds a service binary: `$ENV_VAR` if set, else each name on `PATH`, else
/// `~/.cargo/bin`. Panics with set-up instructions when it is missing, so a
/// test that needs a service fails loudly instead of skipping.
pub fn find_binary(env_var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    // Python tools `scripts/test` installs (check-jsonschema).
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools-venv/bin"));
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found (looked for {names:?} on PATH, in ~/.cargo/bin and target/tools-venv/bin; or set {env_var}). \
         Run `scripts/test`, which installs every service the tests need.",
        names[0]
    )
}

/// Polls `ready` every 50 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running child whose output goes to `log`; killed on drop.
pub(crate) struct Service {
    pub name: &'static str,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Service {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Service {
        let out = fs::File::create(&log).expect("the temp dir is writable");
        let err = out.try_clone().expect("a file handle can be cloned");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Service {
            name,
            child: Some(child),
            log,
        }
    }

    /// The last lines of the service's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Panics with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} exited with {status}; its output:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
        }
    }

    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let ok = wait_until(timeout, || {
            self.assert_running();
            ready()
        });
        if !ok {
            panic!(
                "{} not ready after {timeout:?}; its output:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

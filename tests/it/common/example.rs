//! Running a compiled example as a user runs it: a clean environment, its
//! printed lines, and a child that is killed on every path out of a test.
//!
//! Cargo builds examples for a plain `cargo test`; when only one test is
//! selected (`cargo test --test it MODULE`), build the example first:
//! `cargo build --all-features --example NAME`.

use std::io::Read;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

/// How long a child may take to start listening or to print.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Variables that configure the examples; removed before `vars` are set.
const CONFIGURATION: &[&str] = &[
    "AUTH_TYPE",
    "JWT_ISS",
    "JWT_AUD",
    "JWT_ALG",
    "JWT_DECODE_KEY_B64",
    "JWT_ROLE_CLAIM",
    "RUST_LOG",
    "LISTEN_ADDR",
    "MCP_ALLOWED_HOSTS",
    "MCP_RESOURCE_URL",
    "MCP_SCOPES",
    "CUSTOMGPT_PRIVATE_KEY_PEM",
    "CUSTOMGPT_ISSUER",
    "CUSTOMGPT_AUDIENCE",
    "JWKS_CA_FILE",
    "MEINGPT_ORIGIN",
];

/// `<target>/debug/examples/NAME`, next to this test's
/// `<target>/debug/deps/TEST-<hash>`; fails if it is missing or older than
/// the crate, `examples/common` or `sources` (paths relative to the crate
/// root).
pub fn example_binary(name: &str, sources: &[&str]) -> PathBuf {
    let hint = format!(
        "run `cargo build --all-features --example {name}` (or a plain `cargo test`, which builds examples)"
    );
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the {name} example is not built ({} is missing): {hint}",
        binary.display()
    );

    fn newest(path: &Path, newest_seen: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                newest(&entry.path(), newest_seen);
            }
        } else if let Ok(modified) = meta.modified()
            && newest_seen.as_ref().is_none_or(|(t, _)| modified > *t)
        {
            *newest_seen = Some((modified, path.to_owned()));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest_source = None;
    for path in ["src", "Cargo.toml", "examples/common"]
        .iter()
        .chain(sources)
    {
        newest(&root.join(path), &mut newest_source);
    }
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .expect("binary modification time");
    if let Some((changed, source)) = newest_source {
        assert!(
            changed <= built,
            "{} is older than {}: {hint}",
            binary.display(),
            source.display()
        );
    }
    binary
}

/// A loopback port nobody listens on, for a child to bind a moment later.
///
/// Taken below the kernel's ephemeral range (32768 and up on Linux), where
/// the outgoing connections of tests running in parallel take their local
/// ports: a port from `127.0.0.1:0` could be reused as one of those before
/// the child binds it. Each call in this process takes a new port.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1_000) as u16 * 12;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (start + offset) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The example's command with a clean environment (no `MEINGPT_*`, no
/// issuer or example variables, no `RUST_LOG`), then `vars` on top.
pub fn command(binary: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MEINGPT_") {
            command.env_remove(&name);
        }
    }
    for name in CONFIGURATION {
        command.env_remove(name);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A running example; killed and reaped on every path out of a test,
/// panics included.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_closed: Arc<AtomicBool>,
}

impl Running {
    /// Starts `command` and streams its stdout lines (read on a thread, so
    /// a silent child cannot block the test); stderr is collected on
    /// another, so a chatty child cannot block on a full pipe.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let collected = stderr.clone();
        let stderr_closed = Arc::new(AtomicBool::new(false));
        let closed = stderr_closed.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]);
                collected.lock().unwrap().push_str(&text);
            }
            closed.store(true, Ordering::SeqCst);
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_closed,
        }
    }

    /// Reads stdout lines until `done` says the output so far is complete;
    /// returns everything printed so far.
    pub fn read_until(&mut self, mut done: impl FnMut(&[String]) -> bool) -> &[String] {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "the example printed too little within {PATIENCE:?}: {:#?}",
                        self.seen
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    let stderr = self.stderr();
                    panic!(
                        "the example closed stdout early: {:#?}\nstderr: {stderr}",
                        self.seen
                    )
                }
            }
        }
        &self.seen
    }

    /// Reads stdout until the child closes it, at most [`PATIENCE`];
    /// returns everything printed.
    pub fn read_to_end(&mut self) -> &[String] {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the example did not close stdout within {PATIENCE:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return &self.seen,
            }
        }
    }

    /// Reads until a line starts with `prefix`; returns the rest of it.
    pub fn value_of(&mut self, prefix: &str) -> String {
        let lines = self.read_until(|seen| value_of(seen, prefix).is_some());
        value_of(lines, prefix).expect("just seen")
    }

    /// Whether the child still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the child to exit and its stderr to be read to the end, at
    /// most [`PATIENCE`].
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait")
                && self.stderr_closed.load(Ordering::SeqCst)
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rest of the first line that starts with `prefix`.
pub fn value_of(lines: &[String], prefix: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix(prefix))
        .map(str::to_owned)
}

/// Runs `command` and asserts it exits non-zero at once with one stderr
/// line starting `error:`, without panicking or printing anything on stdout
/// (no token, no listening address); returns that line.
pub fn assert_refused(command: Command) -> String {
    let described = format!("{command:?}");
    let mut running = Running::spawn(command);
    let status = running.wait_exit();
    let stdout = running.read_to_end().to_vec();
    let stderr = running.stderr();
    assert!(!status.success(), "{described}: exited with {status}");
    assert!(
        stdout.is_empty(),
        "{described}: printed on stdout: {stdout:#?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{described}: stderr is not one line: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("error: "),
        "{described}: stderr is not an error: {stderr:?}"
    );
    lines[0].to_owned()
}

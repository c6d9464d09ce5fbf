//! The `meingpt-gateway` binary as a child process with a clean
//! environment; killed and reaped on every path out of a test.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::PATIENCE;

/// A command for the binary with only `vars` in its environment.
pub fn command(args: &[&str], vars: &[(&str, &str)]) -> Command {
    with_only(
        Command::new(env!("CARGO_BIN_EXE_meingpt-gateway")),
        args,
        vars,
    )
}

/// Like [`command`], with the soft limit on open files set to `limit`
/// (through `sh -c 'ulimit -Sn …'`).
pub fn command_with_open_file_limit(limit: u32, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("ulimit -Sn {limit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_meingpt-gateway"));
    with_only(shell, args, vars)
}

/// `command` with `args`, only `vars` (and `RUST_LOG=info`) in its
/// environment, piped output, started in the package directory.
fn with_only(mut command: Command, args: &[&str], vars: &[(&str, &str)]) -> Command {
    command
        .args(args)
        .env_clear()
        .env("RUST_LOG", "info")
        .envs(vars.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the binary to its end: exit status, stdout, stderr.
pub fn run_to_end(args: &[&str], vars: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut running = Running::spawn(command(args, vars));
    let status = running.wait_exit();
    (status, running.stdout(), running.stderr())
}

/// A running gateway binary.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    stderr_lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("the binary starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (send, stderr_lines) = mpsc::channel();
        let mut readers = Vec::new();
        let mut out = child.stdout.take().unwrap();
        let collected = stdout.clone();
        readers.push(std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buffer) {
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        }));
        let err = child.stderr.take().unwrap();
        let collected = stderr.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push_str(&line);
                collected.lock().unwrap().push('\n');
                let _ = send.send(line);
            }
        }));
        Self {
            child,
            stdout,
            stderr,
            stderr_lines,
            readers,
        }
    }

    /// Starts the binary and waits for `meingpt-gateway listening on URL`;
    /// returns the URL.
    pub fn start(args: &[&str], vars: &[(&str, &str)]) -> (Self, String) {
        let mut running = Self::spawn(command(args, vars));
        let base = running.wait_for_listening();
        (running, base)
    }

    /// Waits for the listening line; returns its URL.
    pub fn wait_for_listening(&mut self) -> String {
        let line =
            self.wait_for_stderr_line(|line| line.starts_with("meingpt-gateway listening on "));
        line.trim_start_matches("meingpt-gateway listening on ")
            .to_owned()
    }

    /// Waits for a stderr line `matches` accepts.
    pub fn wait_for_stderr_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no such line from the gateway; stderr so far:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Waits until stdout holds `needle`; returns all of stdout.
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stdout = self.stdout();
            if stdout.contains(needle) {
                return stdout;
            }
            assert!(
                Instant::now() < deadline,
                "stdout never held {needle:?}: {stdout}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit and for both pipes to be read to their end.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The real binary as a process, for `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::TestDatabase;

/// A `portico serve` process, killed with SIGKILL when dropped.
pub struct Process {
    pub child: Child,
    pub url: String,
    pub stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Process {
    pub fn start(config: &Path, data_dir: &Path, database: &TestDatabase) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .env("PORTICO_DATABASE_URL", &database.url)
            .env("PORTICO_LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start portico");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let mut stdout = BufReader::new(stdout);
        stdout.read_line(&mut first).expect("banner");
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        Self {
            child,
            url,
            stdout: Some(stdout),
        }
    }

    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        self.child.wait().expect("reaped");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

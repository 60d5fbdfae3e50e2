//! The test binary run again as a child process that plays one part (a daemon, a worker, a
//! nameserver) and can be killed with SIGKILL: the child runs one ignored test, which reads
//! its part from an environment variable and reports in lines `ROLE: WORD ...` on stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Runs the ignored test `test` of this binary in a child process with `variable=value`.
///
/// # Panics
///
/// If the child cannot start.
pub fn spawn_role(test: &str, variable: &str, value: &str) -> Child {
    spawn_role_with(&[], test, variable, value)
}

/// As [`spawn_role`], with the child run by the command `wrapper` (such as `prlimit`).
///
/// # Panics
///
/// If the child cannot start.
pub fn spawn_role_with(wrapper: &[&str], test: &str, variable: &str, value: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(variable, value)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's output up to its next `ROLE:` line, which must say `word`; returns
/// what follows `word`. The test harness may have printed its own text before it on the same
/// line.
///
/// # Panics
///
/// If the child ends first, or says something else.
pub fn expect_said(child: &mut Child, word: &str) -> String {
    let stdout = child.stdout.as_mut().expect("the child's stdout is piped");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the child process ended before saying {word}"
        );
        if let Some((_, said)) = line.split_once("ROLE: ") {
            let said = said.trim();
            let rest = said
                .strip_prefix(word)
                .unwrap_or_else(|| panic!("expected {word}, the child said {said}"));
            return rest.trim().to_owned();
        }
    }
}

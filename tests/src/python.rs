//! Python Pyro5 5.17 for the interoperability tests: the interpreter of the virtual
//! environment `.ci/run` makes (`target/pyro5-venv`), or the one `RPC_PYRO5_PYTHON` names.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A Python interpreter that imports Pyro5 5.17, if this machine has one.
pub fn pyro5_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("RPC_PYRO5_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyro5-venv/bin/python"),
    };
    let output = Command::new(&python)
        .args(["-c", "import Pyro5; print(Pyro5.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{} cannot run: {error}", python.display()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || version != "5.17" {
        return Err(format!(
            "{} has no Pyro5 5.17 (found `{version}`); run `python3 -m venv target/pyro5-venv && target/pyro5-venv/bin/pip install Pyro5==5.17`",
            python.display()
        ));
    }
    Ok(python)
}

/// The Python interpreter, or `None` after saying SKIPPED; under `CI=true` a missing Pyro5
/// fails the test instead.
///
/// # Panics
///
/// When `CI=true` and there is no Pyro5.
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    crate::or_skip(test, "Python Pyro5", pyro5_python())
}

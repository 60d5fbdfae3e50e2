//! `nameserver serve --secret-file`: the client commands change names only with the same
//! secret (`--secret-file`), and look names up without it.

mod support;

use support::{command as client, serve};

#[test]
fn only_a_client_with_the_secret_registers_and_anyone_looks_up() {
    let dir = std::env::temp_dir().join(format!("nameserver-cli-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "the operators' secret for this test\n").unwrap();
    let wrong_file = dir.join("wrong");
    std::fs::write(&wrong_file, "somebody else's secret, long enough\n").unwrap();
    let (_served, port) = serve(&["--secret-file".as_ref(), secret_file.as_os_str()]);
    let with_secret = secret_file.to_str().unwrap();

    let register = ["register", "cli.secret", "PYRO:calc@127.0.0.1:4000"];
    let (ok, text) = client(port, &register);
    assert!(
        !ok && text.contains("secret"),
        "registered without the secret: {text}"
    );
    let (ok, text) = client(
        port,
        &[
            &register[..],
            &["--secret-file", wrong_file.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(!ok && text.contains("authentication failed"), "{text}");
    let (ok, text) = client(
        port,
        &[&register[..], &["--secret-file", with_secret]].concat(),
    );
    assert!(ok, "{text}");

    let (ok, text) = client(port, &["lookup", "cli.secret"]);
    assert!(ok && text.contains("PYRO:calc@127.0.0.1:4000"), "{text}");
    // A library client without the secret looks it up too.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let found = runtime
        .block_on(async {
            support::client(port)
                .await
                .lookup("cli.secret".into())
                .await
        })
        .unwrap();
    assert_eq!(found.to_string(), "PYRO:calc@127.0.0.1:4000");
    let (ok, text) = client(port, &["remove", "cli.secret"]);
    assert!(
        !ok && text.contains("secret"),
        "removed without the secret: {text}"
    );
    let (ok, text) = client(
        port,
        &["remove", "cli.secret", "--secret-file", with_secret],
    );
    assert!(ok, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! A Rust proxy calling the Python currency worker of `examples/python/currency_worker.py`:
//! the typed `WorkerProxy` of the Rust worker's own trait, speaking Pyro5's protocol.
//!
//! Run the worker with `python examples/python/currency_worker.py 9100`, then
//! `cargo run -p rpc-examples --example currency_python_client -- PYRO:currency.worker@127.0.0.1:9100`
//! (add `--json` for Pyro5's JSON serializer).

use rpc_core::{CallError, Config, Error, Format, Proxy, Uri};
use rpc_examples::currency::WorkerProxy;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|arg| arg == "--json");
    args.retain(|arg| arg != "--json");
    let uri: Uri = args
        .first()
        .map_or("PYRO:currency.worker@127.0.0.1:9100", String::as_str)
        .parse()?;
    let format = if json { Format::Json } else { Format::Serpent };
    let config = Config::default().pyro5_format(Some(format));
    let worker = WorkerProxy::from_proxy(Proxy::with_config(uri, config));
    for pair in ["EUR/USD", "USD/JPY", "XXX/YYY"] {
        match worker.get_rate(pair.to_owned()).await {
            Ok(rate) => println!("{pair} = {rate}"),
            // Python raises where Rust returns `Err`: the exception, with its traceback.
            Err(CallError::Rpc(Error::PythonException(exception))) => {
                println!("{pair}: Python raised {exception}");
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

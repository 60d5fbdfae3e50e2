#[rpc_core::service]
pub trait Store {
    async fn get(&self, key: Option<&str>, keys: Vec<(u8, &[u8])>) -> Option<String>;
}

fn main() {}

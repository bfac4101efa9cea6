//! Published test vectors, read in place (`../shared/vectors`, or `PORTICO_VECTORS`).

use std::path::PathBuf;

use serde_json::Value as Json;

pub fn vectors() -> PathBuf {
    std::env::var_os("PORTICO_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"))
}

pub fn wycheproof(file: &str) -> Json {
    let path = vectors().join("wycheproof").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set PORTICO_VECTORS to the vectors folder)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vector JSON")
}

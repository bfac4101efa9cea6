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

/// Every vector (a JSON file) under `merkle/testdata/<kind>`, with its path, in a stable order.
pub fn merkle(kind: &str) -> Vec<(PathBuf, Json)> {
    let root = vectors().join("merkle/testdata").join(kind);
    let mut files = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (set PORTICO_VECTORS to the vectors folder)",
                folder.display()
            )
        });
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("vector file");
            let json = serde_json::from_str(&text).expect("vector JSON");
            (path, json)
        })
        .collect()
}

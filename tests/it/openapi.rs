//! The OpenAPI document and Swagger UI.

use std::path::Path;

use portico::config::Config;

use crate::helpers::TestApp;

fn example_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("portico.example.toml"))
        .expect("portico.example.toml")
}

/// Fails when the code's document differs from the committed `openapi.json`. To accept a change:
/// `cargo run -- openapi --config portico.example.toml > openapi.json`.
#[test]
fn the_committed_document_matches_the_code() {
    let config = Config::from_toml_str(&example_config()).expect("example config");
    let catalog = config.validate().expect("valid example config");
    let generated =
        serde_json::to_string_pretty(&portico::api::openapi::document(&catalog)).expect("json");
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
            .expect("openapi.json is committed");
    assert!(
        generated.trim_end() == committed.trim_end(),
        "openapi.json is out of date; regenerate it with \
         `cargo run -- openapi --config portico.example.toml > openapi.json`"
    );
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_with_the_configured_endpoints() {
    let app = TestApp::spawn_with(&example_config()).await;
    let reply = app.get("/api/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), "application/json");
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = &document["paths"];
    let temperature = &paths["/api/v1/boiler/temperature"];
    assert!(
        temperature["get"].is_object()
            && temperature["put"].is_object()
            && temperature["post"].is_object()
    );
    let value = &temperature["put"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        ["value"];
    assert_eq!(value["type"], "number");
    assert_eq!(value["maximum"], 150.0);
    assert!(
        paths["/api/v1/boiler/serial"]["put"].is_null(),
        "read-only: no write operation"
    );
    assert!(
        paths["/api/v1/boiler/setpoint"]["get"].is_null(),
        "write-only: no read operation"
    );
    assert!(paths["/api/v1/datapoints"]["get"].is_object());
    assert!(paths["/healthz"]["get"].is_object());
    let codes = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("codes");
    assert_eq!(codes.len(), portico::api::error::ErrorCode::ALL.len());
}

#[tokio::test]
async fn swagger_ui_is_served_from_this_server_only() {
    let app = TestApp::spawn().await;
    let page = app.get("/api/docs").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'self'")
    );
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no outside URLs"
    );
    for (asset, kind) in [
        ("/api/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/api/docs/swagger-ui.css", "text/css"),
        ("/api/docs/swagger-initializer.js", "text/javascript"),
    ] {
        assert!(page.text.contains(asset), "{asset} is referenced");
        let reply = app.get(asset).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert_eq!(reply.header("content-type"), kind);
        assert!(reply.text.len() > 100);
    }
    let initializer = app.get("/api/docs/swagger-initializer.js").await.text;
    assert!(
        initializer.contains("url: \"/api/openapi.json\"")
            && initializer.contains("validatorUrl: null")
    );
}

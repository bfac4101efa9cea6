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
        serde_json::to_string_pretty(&portico::api::openapi::document(&config, &catalog))
            .expect("json");
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

fn example_document() -> serde_json::Value {
    let config = Config::from_toml_str(&example_config()).expect("example config");
    let catalog = config.validate().expect("valid example config");
    serde_json::to_value(portico::api::openapi::document(&config, &catalog)).expect("json")
}

fn operations(document: &serde_json::Value) -> Vec<(String, String, &serde_json::Value)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            out.push((path.clone(), method.clone(), operation));
        }
    }
    out
}

/// The error table's codes are documented wherever they can arise: the server's limits on
/// every operation, a refused token on every operation that takes one, `not_found` wherever the
/// path names something, and the body's problems wherever there is a body.
#[test]
fn every_operation_documents_the_problems_its_requests_can_get() {
    let document = example_document();
    let problem = |response: &serde_json::Value| {
        response["content"]["application/problem+json"]["schema"]["$ref"]
            == "#/components/schemas/ProblemOut"
    };
    let all = operations(&document);
    assert!(all.len() > 70, "{} operations", all.len());
    for (path, method, operation) in all {
        let responses = &operation["responses"];
        let at = format!("{method} {path}");
        assert!(problem(&responses["503"]), "{at}: 503 busy");
        if path.contains('{') {
            assert!(problem(&responses["404"]), "{at}: 404 not_found");
        }
        let own_errors = responses
            .as_object()
            .expect("responses")
            .iter()
            .any(|(s, r)| {
                s.starts_with('4')
                    && r["content"]
                        .as_object()
                        .is_some_and(|c| c.keys().any(|m| m != "application/problem+json"))
            });
        if own_errors {
            continue;
        }
        let bearer = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        if bearer {
            for status in ["400", "401", "403"] {
                assert!(problem(&responses[status]), "{at}: {status} for a token");
            }
        }
        if operation["requestBody"].is_object() {
            for status in ["408", "413", "415"] {
                assert!(problem(&responses[status]), "{at}: {status} for a body");
            }
        }
    }
}

/// Each event stream documents its events as OpenAPI 3.2's `itemSchema` does: `event`, `id`,
/// and `data`, whose JSON is described by `contentSchema`.
#[test]
fn event_streams_document_each_event_and_its_data() {
    let document = example_document();
    for path in [
        "/api/v1/events/stream",
        "/api/v1/datapoints/{key}/events",
        "/api/v1/portals/{portalid}/events",
    ] {
        let event = &document["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"];
        assert_eq!(
            event["required"],
            serde_json::json!(["event", "data"]),
            "{path}"
        );
        let data = &event["properties"]["data"];
        assert_eq!(data["contentMediaType"], "application/json", "{path}");
        assert!(data["contentSchema"]["$ref"].is_string(), "{path}");
    }
}

/// A path segment that cannot be what the route wants names nothing there: a 404 problem
/// document, never the framework's plain-text 400.
#[tokio::test]
async fn an_unreadable_path_segment_is_a_404_problem() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/datapoints/%FF%FE",
        "/realms/%C3%28/.well-known/openid-configuration",
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert_eq!(reply.header("content-type"), "application/problem+json");
        assert_eq!(reply.json()["code"], "not_found", "{path}");
    }
}

/// Every link names an operation of the document and only parameters that operation has.
#[test]
fn links_lead_from_each_creation_to_operations_that_exist() {
    let document = example_document();
    let all = operations(&document);
    let mut links = 0;
    for (_, _, operation) in &all {
        let Some(found) = operation["responses"]["201"]["links"].as_object() else {
            continue;
        };
        for (name, link) in found {
            links += 1;
            let target = all
                .iter()
                .find(|(_, _, o)| o["operationId"] == link["operationId"])
                .unwrap_or_else(|| panic!("link {name}: no operation {}", link["operationId"]));
            let names: Vec<&serde_json::Value> = target
                .2
                .get("parameters")
                .and_then(serde_json::Value::as_array)
                .map(|p| p.iter().map(|p| &p["name"]).collect())
                .unwrap_or_default();
            for parameter in link["parameters"].as_object().expect("parameters").keys() {
                assert!(
                    names.iter().any(|n| *n == parameter),
                    "link {name}: {} has no parameter {parameter}",
                    target.1
                );
            }
        }
    }
    assert!(links >= 28, "{links} links");
}

/// A surface the configuration turns off is not in the document: its routes answer 404.
#[test]
fn surfaces_turned_off_are_not_documented() {
    let on = "false serves none of its routes.\nenabled = true";
    let example = example_config();
    assert!(example.contains(on), "the example's [xrtc] section");
    let toml = example.replace(on, "false serves none of its routes.\nenabled = false");
    let config = Config::from_toml_str(&toml).expect("config");
    assert!(!config.xrtc.enabled);
    let catalog = config.validate().expect("valid config");
    let document =
        serde_json::to_value(portico::api::openapi::document(&config, &catalog)).expect("json");
    assert!(document["paths"]["/v1/item/set"].is_null());
    assert!(document["paths"]["/api/v1/portals/{portalid}/events"].is_null());
    assert!(document["paths"]["/api/v1/datapoints"].is_object());
    let tags: Vec<&serde_json::Value> = document["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| &t["name"])
        .collect();
    assert!(!tags.iter().any(|t| *t == "XRTC"), "{tags:?}");
}
